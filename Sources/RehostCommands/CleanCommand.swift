import ArgumentParser
import GuestFixups
import ImageCore
import Pipeline

struct CleanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "clean",
        abstract: "Remove what an image should not carry to a new owner or machine, in place (like virt-sysprep).",
        discussion: """
            Runs named clean operations on the guest inside an image, in place, without root, mount or \
            loop device: shell histories, users' ~/.ssh (authorized_keys), SSH host keys, \
            /etc/machine-id, DHCP leases, udev's persistent-net rules, logs (truncated in place: files, \
            owners and modes kept), mail spools, /tmp and /var/tmp, package caches, the random seed, \
            cloud-init's instance state, the old cloud's metadata fetchers in /etc/rc.local, crash \
            dumps. `--list-operations` shows each with one line; `--operations` chooses \
            (`defaults`, `all`, names, `-name` to leave one out). Every operation reports each file it \
            removed or changed, and a second run changes nothing.

            Host keys: where the guest's own sshd start does not make missing keys (Debian's), a \
            first-boot job does (`ssh-keygen -A`), through the guest's init system.

            For a private migration, where the same people log in afterwards, keep their keys: \
            `--keep-user-ssh` (and `--operations -ssh-hostkeys` to keep the host's identity too).

            The edit is planned on the read-only image first; `--dry-run` prints that plan, every file \
            it would touch, and writes nothing. Then the guest's filesystems (the root, and a \
            separate /var an edit lands on) are edited in memory over the image (raw, qcow2, VDI, VHD, monolithicSparse VMDK) and written only once complete: on any \
            error the image is unchanged. gzip, OVA and other VMDK layouts are refused. An image in use \
            by a running qemu is refused.

            Examples:
              rehost clean --list-operations
              rehost clean --dry-run vm.qcow2
              rehost clean vm.qcow2
              rehost clean --operations defaults,-logfiles disk.raw
              rehost clean --keep-user-ssh --operations -ssh-hostkeys centos5.img
            """)

    @Argument(help: ArgumentHelp("The image to clean in place.", valueName: "disk"))
    var image: String?

    @Flag(name: .customLong("list-operations"), help: "List the clean operations, with [default] after those run by default, and exit.")
    var listOperations = false

    @Option(name: .customLong("operations"), help: ArgumentHelp("The operations to run, comma-separated: names, `defaults`, `all`, and -name to leave one out (default: defaults).", valueName: "list"))
    var operations: [String] = []

    @Flag(name: .customLong("keep-user-ssh"), help: "Keep root's and users' ~/.ssh (authorized_keys): for a private migration, not an image for others.")
    var keepUserSSH = false

    @Flag(name: .customLong("dry-run"), help: "List every file that would be removed or changed; write nothing.")
    var dryRun = false

    @Flag(help: "Print a JSON report on standard output instead of text.")
    var json = false

    @OptionGroup(title: "Input") var input: FileAccessOptions

    func validate() throws {
        if !listOperations && image == nil { throw ValidationError("expected the image to clean (or --list-operations)") }
    }

    func run() throws {
        if listOperations {
            for operation in CleanOperations.all {
                print("\(operation.name)\(operation.isDefault ? " [default]" : ""): \(operation.summary)")
            }
            return
        }
        try runReportingErrors {
            var chosen = try CleanOperations.select(operations)
            if keepUserSSH { chosen.removeAll { $0.name == "ssh-userdir" } }
            let report = try GuestPrep.run(image: image!, partition: input.partition, scratchDirectory: input.scratchDirectory,
                                           externalFiles: input.externalFiles, maxOutputSize: input.maxOutputBytes,
                                           clean: chosen, customize: CustomizeOptions(), dryRun: dryRun)
            if json { return try printJSON(report) }
            printPrepReport(report, verb: "clean")
        }
    }
}
