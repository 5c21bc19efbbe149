import ArgumentParser
import ImageCore
import Pipeline

struct BuildCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "build",
        abstract: "Build images from a base image and a declarative recipe (convert, clean, customize, outputs) in one pass.",
        discussion: """
            Reads RECIPE.yaml: the base image, what to clean and customize in it, first-boot package \
            installs and scripts, and the outputs and their formats. It is `rehost convert` written down: \
            the base is converted and repaired for the target, then cleaned, then customized, and every \
            output is written in the same single pass. The base is never modified; each output appears \
            only when complete.

            Every path in the recipe (base, outputs, copy-in sources, first-boot scripts, key files) is \
            relative to the recipe's directory and may not leave it (no absolute paths, no \"..\" above \
            it); guest paths (copy-in to:, write path:, ...) are absolute paths in the guest. An unknown \
            key, a wrong type or a missing file is one error line, RECIPE:LINE: what is wrong, and \
            nothing is written.

            The result record, NAME.build.json beside the first output (NAME: the recipe's name:, else \
            its file name without extension), is written atomically after the outputs and printed with \
            --json: the recipe and its SHA-256, the rehost version, the base image's size and mtime, \
            every step (convert and its repairs, clean and customize and every file they touched, the \
            cloud-init seed, write) \
            and every output with its digests (blk-sha256 of the disk, as `rehost digest` prints it; \
            with digest: file or all, also the file's SHA-256).

            A recipe:

              name: web                       # web.build.json
              base: centos5.img               # or {path: disk.img, partition: 2}
              target: kvm                     # kvm | virtualbox | vmware | generic
              size: 10G
              clean: true                     # or [defaults, -logfiles]
              customize:
                mkdir: [/opt/app]
                copy-in:
                  - {from: app, to: /opt}     # host path into a guest dir
                write:
                  - path: /etc/motd
                    content: |
                      Built by rehost.
                append-line:
                  - {path: /etc/hosts, line: "10.0.0.5 db"}
                chmod:
                  - {path: /opt/app/run.sh, mode: "0755"}
                hostname: web1
                timezone: UTC
                root-password: file:secrets/pw  # or password:X, random
                ssh-inject:
                  - {user: root, key: keys/admin.pub}
                packages: [httpd, php]        # dnf/yum/apt-get/zypper
                firstboot: [scripts/setup.sh] # then these, once
                firstboot-command: ["chkconfig httpd on"]
              cloud-init: {user-data: cloud/user-data}   # as convert --cloud-init
              outputs:
                - out/web.qcow2
                - {path: out/web.vmdk, format: vmdk}
              format-options: {compress: zstd, vmdk-subformat: monolithicSparse}
              digest: all                     # disk (default) | file | all | none

            Other keys: firmware: bios|uefi|both|auto (as convert --firmware; auto by default), \
            reproducible: true (as convert --reproducible; SOURCE_DATE_EPOCH turns it on too), kernel: VERSION, skip: [repair, ...], clean: {operations: [...], keep-user-ssh: true}, \
            customize: chown: user:group, delete: [paths]; format-options: qcow2-compat, cluster-size, \
            compression-level, adapter, hw-version, vdi-variant, vhd-variant, vhdx-variant, \
            vhdx-block-size, uuid, ova-profile, manifest, \
            vm-name, cpus, memory (the `rehost convert` options of the same names).

            Examples:
              rehost build web.yaml
              rehost build web.yaml --dry-run        # check the recipe and print the plan
              rehost build web.yaml --json > record.json
            """)

    @Argument(help: ArgumentHelp("The recipe, a YAML file.", valueName: "recipe"))
    var recipe: String

    @Flag(name: .customLong("dry-run"), help: "Check the recipe and show the plan and every change; write nothing (no outputs, no record).")
    var dryRun = false

    @Flag(help: "Print the result record (JSON) on standard output instead of text.")
    var json = false

    @Flag(name: .shortAndLong, help: "No progress bar.")
    var quiet = false

    func run() throws {
        try runReportingErrors {
            let loaded = try BuildRecipe.load(recipe)
            // The recipe is an input too: its copy-in files and scripts end up in the image.
            try ReproducibleOutputs.configure(asked: loaded.reproducible, inputs: [loaded.base, recipe])
            let builder = Builder(recipe: loaded, version: Rehost.configuration.version)
            let progress: ProgressSink = (quiet || json) ? SilentProgress() : TerminalProgress()
            let record = try builder.run(dryRun: dryRun, progress: progress)
            if json { try printJSON(record); return }
            for step in record.steps {
                print("\(step.step): \(step.summary.escapedForTerminal())")
                for change in step.changes ?? [] { print("  \(change.repair): \(change.action.rawValue) \(change.path.escapedForTerminal())") }
                for edit in step.edits ?? [] {
                    print("  \(edit.operation): \(edit.action.rawValue) \(edit.path.escapedForTerminal())\((edit.detail.map { " (\($0))" } ?? "").escapedForTerminal())")
                }
                for output in step.outputs ?? [] {
                    let digest = [output.diskDigest.map { "blk-sha256 \($0)" }, output.sha256.map { "sha256:\($0)" }].compactMap { $0 }.joined(separator: " ")
                    print("  \(output.path.escapedForTerminal()) \(output.format.rawValue) \(ByteCount.format(output.virtualSize))\(digest.isEmpty ? "" : " " + digest)")
                }
            }
            for warning in record.warnings { print("warning: \(warning.escapedForTerminal())") }
            if let password = record.randomRootPassword, !dryRun { print("root password: \(password)") }
            if dryRun {
                print("dry run: \(loaded.file.escapedForTerminal()) is valid; nothing was written")
            } else if let path = record.record {
                print("record: \(path.escapedForTerminal()) (\(record.seconds) s)")
            }
        }
    }
}
