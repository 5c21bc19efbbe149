import Foundation
import Testing
import TestSupport

/// `rehost build RECIPE.yaml`: a recipe over the Xen fixture, built, its outputs read back with
/// debugfs, e2fsck and qemu-img, its record checked against `rehost digest` and sha256sum; and
/// bad recipes, each refused in one line naming the file and line, with nothing written.
struct BuildRecipeTests {
    static let recipe = """
        # A web server image from the Xen fixture.
        base: base/xen.img
        target: kvm
        clean: true
        customize:
          mkdir: [/opt/app]
          copy-in:
            - from: files/tool.sh
              to: /opt/app
          write:
            - path: /etc/motd
              content: |
                Built by rehost build.
          packages: [httpd, mod_ssl]
          firstboot-command: ["chkconfig httpd on"]
        outputs:
          - out/web.raw
          - {path: out/web.qcow2, format: qcow2}
        digest: all

        """

    /// A recipe directory: the fixture as base/xen.img, files/tool.sh, and the recipe.
    func recipeDirectory(_ text: String = recipe) throws -> TemporaryDirectory {
        let fixture = try Fixture.xenInstance()
        let directory = try TemporaryDirectory(prefix: "rehost-build")
        try FileManager.default.createDirectory(atPath: directory.file("base"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: directory.file("files"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: directory.file("out"), withIntermediateDirectories: true)
        try Command.run("cp", ["--sparse=always", fixture.imagePath, directory.file("base/xen.img")]).requireSuccess()
        try "#!/bin/sh\necho tool\n".write(toFile: directory.file("files/tool.sh"), atomically: true, encoding: .utf8)
        chmod(directory.file("files/tool.sh"), 0o750)
        try text.write(toFile: directory.file("recipe.yaml"), atomically: true, encoding: .utf8)
        return directory
    }

    func rootPartition(_ disk: String) throws -> String {
        return "\(disk)?offset=\(try DiskPartitions.firstLinuxOffset(disk))"
    }

    func json(_ bytes: [UInt8]) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
    }

    @Test func buildsTheRecipeInOnePassAndRecordsEveryStep() throws {
        let directory = try recipeDirectory()
        let recipePath = directory.file("recipe.yaml")
        let raw = directory.file("out/web.raw"), qcow2 = directory.file("out/web.qcow2"), recordPath = directory.file("out/recipe.build.json")

        // --dry-run: the plan, and nothing written.
        let dry = try Command.runRehost(["build", recipePath, "--dry-run", "--json"]).requireSuccess()
        let dryRecord = try json(dry.stdoutBytes)
        #expect(dryRecord["dryRun"] as? Bool == true)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.file("out")).isEmpty)

        let result = try Command.runRehost(["build", recipePath, "--json", "--quiet"]).requireSuccess()
        let printed = try json(result.stdoutBytes)
        let written = try json(Array(try Data(contentsOf: URL(fileURLWithPath: recordPath))))
        #expect(printed["recipeSHA256"] as? String == written["recipeSHA256"] as? String)
        #expect(written["recipeSHA256"] as? String == String(try Command.run("sha256sum", [recipePath]).requireSuccess().stdout.prefix(64)))
        #expect(written["rehostVersion"] as? String == "0.1.0")
        #expect(written["record"] as? String == recordPath)
        let base = try #require(written["base"] as? [String: Any])
        let baseSize = try #require(try FileManager.default.attributesOfItem(atPath: directory.file("base/xen.img"))[.size] as? Int)
        #expect(base["size"] as? Int == baseSize)
        #expect((base["mtime"] as? Int ?? 0) > 0)
        #expect(written["started"] is String && written["finished"] is String)

        // Every step, and what it did.
        let steps = try #require(written["steps"] as? [[String: Any]])
        #expect(steps.map { $0["step"] as? String ?? "" } == ["convert", "clean", "customize", "write"])
        #expect(!(try #require(steps[0]["changes"] as? [[String: Any]])).isEmpty, "the convert step lists its repairs")
        let cleanEdits = try #require(steps[1]["edits"] as? [[String: Any]]).map { "\($0["operation"] ?? "") \($0["path"] ?? "")" }
        #expect(cleanEdits.contains("bash-history /root/.bash_history"))
        let customizeEdits = try #require(steps[2]["edits"] as? [[String: Any]]).map { "\($0["operation"] ?? "") \($0["path"] ?? "")" }
        #expect(customizeEdits.contains("copy-in /opt/app/tool.sh"))
        #expect(customizeEdits.contains("write /etc/motd"))
        #expect(customizeEdits.contains { $0.hasPrefix("firstboot /var/lib/rehost-firstboot/scripts/") && $0.hasSuffix("-packages") })
        #expect(customizeEdits.allSatisfy { !$0.hasPrefix("bash-history") && !$0.hasPrefix("ssh-hostkeys") })
        #expect(!cleanEdits.contains { $0.hasPrefix("write ") || $0.hasPrefix("copy-in ") })

        // Every output, with digests equal to `rehost digest` and sha256sum.
        let outputs = try #require(written["outputs"] as? [[String: Any]])
        #expect(outputs.map { $0["path"] as? String ?? "" } == [raw, qcow2])
        let digestRun = try Command.runRehost(["digest", raw, qcow2]).requireSuccess()
        var rehostDigests: [String: String] = [:]
        for line in digestRun.stdout.split(separator: "\n") {
            let parts = line.split(separator: " ", maxSplits: 1)
            if parts.count == 2 { rehostDigests[String(parts[1].dropFirst())] = String(parts[0]) }
        }
        for output in outputs {
            let path = try #require(output["path"] as? String)
            #expect(output["diskDigest"] as? String == rehostDigests[path], "\(path)")
            #expect(output["sha256"] as? String == String(try Command.run("sha256sum", [path]).requireSuccess().stdout.prefix(64)), "\(path)")
        }
        #expect(rehostDigests[raw] != nil && rehostDigests[raw] == rehostDigests[qcow2])

        // The outputs, read back.
        let compare = try Command.run("qemu-img", ["compare", "-f", "raw", "-F", "qcow2", raw, qcow2])
        #expect(compare.status == 0, "\(compare.stdout)\(compare.stderr)")
        let root = try rootPartition(raw)
        #expect(try DebugfsStat.cat(root, "/etc/motd") == "Built by rehost build.\n")
        #expect(try DebugfsStat.cat(root, "/opt/app/tool.sh") == "#!/bin/sh\necho tool\n")
        #expect(try DebugfsStat.of(root, "/opt/app/tool.sh")?.mode == 0o750)
        #expect(try DebugfsStat.of(root, "/root/.bash_history") == nil, "cleaned")
        // clean's ssh-hostkeys queues 0001-ssh-hostkeys; the packages come next, then the command.
        let queued = try DebugfsStat.list(root, "/var/lib/rehost-firstboot/scripts")
        #expect(queued == ["0001-ssh-hostkeys", "0002-packages", "0003-command"])
        let packages = try DebugfsStat.cat(root, "/var/lib/rehost-firstboot/scripts/0002-packages")
        #expect(packages.contains("yum -y install httpd mod_ssl") && packages.contains("apt-get -y install httpd mod_ssl"))
        #expect(try DebugfsStat.cat(root, "/var/lib/rehost-firstboot/scripts/0003-command") == "#!/bin/sh\nchkconfig httpd on\n")
        let fsck = try Command.run("e2fsck", ["-fn", root])
        #expect(fsck.status == 0, "e2fsck: \(fsck.stdout)\(fsck.stderr)")
        let check = try Command.run("qemu-img", ["check", "-f", "qcow2", qcow2])
        #expect(check.status == 0, "\(check.stdout)\(check.stderr)")
        // The base is left alone.
        #expect(try GuestFilesFixture.sha256(directory.file("base/xen.img")) == (try GuestFilesFixture.sha256(try Fixture.xenInstance().imagePath)))
    }

    /// The other customize keys and the format options, each read back from the guest: append-line,
    /// delete (a file, and a fast symlink with its label in an attribute block), chmod, hostname, root-password from a recipe-relative file, ssh-inject, a first-boot
    /// script; a monolithicSparse VMDK; and a named record.
    @Test func everyCustomizeKeyReachesTheGuest() throws {
        let directory = try recipeDirectory("""
            name: web
            base: base/xen.img
            skip: [network]
            customize:
              append-line:
                - {path: /etc/hosts, line: "10.0.0.5 db"}
              delete: [/etc/resolv.conf, /etc/rc.local]
              chmod:
                - {path: /etc/fstab, mode: "0600"}
              hostname: web1
              root-password: file:files/pw
              ssh-inject:
                - {user: root, key: files/admin.pub}
              firstboot: [files/tool.sh]
            cloud-init:
              user-data: files/user-data
            outputs: [out/web.vmdk]
            format-options: {vmdk-subformat: monolithicSparse}

            """)
        try "s3cret\n".write(toFile: directory.file("files/pw"), atomically: true, encoding: .utf8)
        try "#cloud-config\nhostname: web1\n".write(toFile: directory.file("files/user-data"), atomically: true, encoding: .utf8)
        try "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIRehostTestKey admin@host\n".write(toFile: directory.file("files/admin.pub"), atomically: true, encoding: .utf8)
        let result = try Command.runRehost(["build", directory.file("recipe.yaml"), "--json", "--quiet"]).requireSuccess()
        let record = try json(result.stdoutBytes)
        #expect(record["record"] as? String == directory.file("out/web.build.json"))
        #expect(FileManager.default.fileExists(atPath: directory.file("out/web.build.json")))
        let steps = try #require(record["steps"] as? [[String: Any]])
        #expect(steps.map { $0["step"] as? String ?? "" } == ["convert", "customize", "cloud-init", "write"])
        let seeded = try #require(steps[2]["changes"] as? [[String: Any]]).map { $0["path"] as? String ?? "" }
        #expect(seeded.contains("/var/lib/cloud/seed/nocloud/user-data"), "\(seeded)")
        let repairs = try #require(steps[0]["changes"] as? [[String: Any]]).map { $0["repair"] as? String ?? "" }
        #expect(!repairs.contains("network") && !repairs.isEmpty, "skip: [network]")

        let vmdk = directory.file("out/web.vmdk")
        #expect(try Command.run("qemu-img", ["info", vmdk]).requireSuccess().stdout.contains("monolithicSparse"))
        let raw = directory.file("back.raw")
        try Command.run("qemu-img", ["convert", "-f", "vmdk", "-O", "raw", vmdk, raw]).requireSuccess()
        let root = try rootPartition(raw)
        #expect(try DebugfsStat.cat(root, "/etc/hosts").hasSuffix("web01\n10.0.0.5 db\n"))
        #expect(try DebugfsStat.of(root, "/etc/resolv.conf") == nil)
        // A fast symlink whose label sits in an attribute block (i_blocks > 0) is deleted too.
        #expect(try DebugfsStat.list(root, "/etc").contains("rc.local") == false)
        #expect(try DebugfsStat.of(root, "/etc/fstab")?.mode == 0o600)
        #expect(try DebugfsStat.cat(root, "/etc/sysconfig/network").contains("HOSTNAME=web1"))
        let shadow = try DebugfsStat.cat(root, "/etc/shadow")
        let hash = try #require(shadow.split(separator: "\n").first { $0.hasPrefix("root:") }.map { String($0.split(separator: ":")[1]) })
        let check = try Command.run("/usr/bin/python3", ["-c", "import crypt,sys; print(crypt.crypt('s3cret', sys.argv[1]) == sys.argv[1])", hash])
        #expect(check.stdout == "True\n", "root's hash is of the file's first line: \(hash) \(check.stderr)")
        #expect(try DebugfsStat.cat(root, "/root/.ssh/authorized_keys") == "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIRehostTestKey admin@host\n")
        #expect(try DebugfsStat.list(root, "/var/lib/rehost-firstboot/scripts") == ["0001-tool.sh"])
        #expect(try DebugfsStat.cat(root, "/var/lib/cloud/seed/nocloud/user-data") == "#cloud-config\nhostname: web1\n")
        let fsck = try Command.run("e2fsck", ["-fn", root])
        #expect(fsck.status == 0, "e2fsck: \(fsck.stdout)\(fsck.stderr)")
    }

    /// What only the guest can refuse (a zone it lacks) fails the build before any output, or the
    /// record, appears: one line naming the option.
    /// `firmware:` and `reproducible:` are convert's options: two builds of the same recipe in
    /// two directories give the same bytes, on the MBR disk the recipe asks for.
    @Test func firmwareAndReproducibleReachTheBuild() throws {
        let text = "base: base/xen.img\nfirmware: bios\nreproducible: true\noutputs: [out/vm.raw, out/vm.vmdk]\n"
        var digests: [[String]] = []
        for _ in 0..<2 {
            let directory = try recipeDirectory(text)
            let result = try Command.runRehost(["build", directory.file("recipe.yaml"), "--quiet"])
            #expect(result.status == 0, "\(result.stderr)")
            digests.append(try ["vm.raw", "vm.vmdk"].map { try ConvertFixtureTests.sha256(directory.file("out/\($0)")) })
            #expect(try DiskPartitions(disk: directory.file("out/vm.raw")).label == "dos")
        }
        #expect(digests[0] == digests[1], "\(digests)")
    }

    @Test func aProblemOnlyTheGuestSeesWritesNothing() throws {
        let directory = try recipeDirectory("base: base/xen.img\noutputs: [out/a.raw, out/a.qcow2]\ncustomize:\n  timezone: Mars/Olympus\n")
        let result = try Command.runRehost(["build", directory.file("recipe.yaml"), "--quiet"])
        #expect(result.status == 1)
        #expect(result.stderr == "rehost: error: --timezone Mars/Olympus: expected a zone the guest has in /usr/share/zoneinfo\n", "\(result.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.file("out")).isEmpty)
    }

    /// Each bad recipe: exit 1, one line `rehost: error: RECIPE:LINE: ...`, nothing written.
    @Test(arguments: [
        ("base: base/xen.img\noutputs: [out/a.raw]\ncolour: blue\n", 3, "unknown key \"colour\""),
        ("base: base/missing.img\noutputs: [out/a.raw]\n", 1, "no such file"),
        ("base: base/xen.img\noutputs:\n  - ../../escape.raw\n", 3, "outside the recipe's directory"),
        ("base: base/xen.img\nsize: [10G]\noutputs: [out/a.raw]\n", 2, "size: expected a single value"),
        ("base: base/xen.img\noutputs: [out/a.raw]\nfirmware: efi\n", 3, "firmware efi: expected bios, uefi, both, auto"),
        ("base: base/xen.img\noutputs:\n  - out/a.raw\n  - nodir/b.qcow2\n", 4, "no directory"),
        ("base: base/xen.img\noutputs: [out/a.raw]\ncustomize:\n  write:\n    - path: /etc/motd\n      text: hi\n", 6, "unknown key \"text\""),
        ("base: base/xen.img\noutputs: [out/a.raw]\ncustomize:\n  copy-in:\n    - {from: /etc/passwd, to: /root}\n", 5, "relative to its directory"),
    ] as [(String, Int, String)])
    func badRecipeIsOneLineNamingFileAndLine(text: String, line: Int, message: String) throws {
        let directory = try recipeDirectory(text)
        let recipePath = directory.file("recipe.yaml")
        let result = try Command.runRehost(["build", recipePath, "--quiet"])
        #expect(result.status == 1)
        let lines = result.stderr.split(separator: "\n")
        #expect(lines.count == 1, "\(result.stderr)")
        #expect(result.stderr.hasPrefix("rehost: error: \(recipePath):\(line): "), "\(result.stderr)")
        #expect(result.stderr.contains(message), "\(result.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.file("out")).isEmpty)
        #expect(!FileManager.default.fileExists(atPath: directory.file("../escape.raw")))
    }
}

/// The README's worked example, under qemu: a recipe queues a bootstrap script (and a package
/// install) for the first boot; the guest boots once and runs them; the bootstrap's report is then
/// read out of the image with `rehost cat`, `rehost copy-out` and `rehost ls`. The fixture has no
/// package manager, so the package script fails, says why, and stays queued for the next boot.
/// The init is FirstBootBootTests' (SysV runlevel 3: every S link of rc3.d, then power off).
struct BuildBootstrapBootTests {
    static let bootstrap = """
        #!/bin/sh
        # bootstrap.sh: runs once, at the first boot
        bb=/bin/busybox
        $bb mkdir -p /var/log/bootstrap
        echo "bootstrap: $((6 * 7)) checks passed" > /var/log/bootstrap/report.txt
        echo "kernel: $($bb uname -r)" >> /var/log/bootstrap/report.txt

        """

    static let recipe = """
        base: base/xen.img
        clean: [defaults, -ssh-hostkeys]
        customize:
          copy-in:
            - {from: guest/init, to: /sbin}
            - {from: guest/tee, to: /usr/bin}
            - {from: guest/rm, to: /usr/bin}
            - {from: guest/sync, to: /usr/bin}
          packages: [httpd]
          firstboot: [bootstrap.sh]
        outputs: [out/vm.qcow2]

        """

    @Test func bootstrapRunsAtFirstBootAndItsReportIsCopiedOut() throws {
        let fixture = try Fixture.xenInstance()
        let directory = try TemporaryDirectory(prefix: "rehost-build-boot")
        try Command.run("sh", ["-c", """
            set -e; d="$1"; mkdir -p "$d/base" "$d/guest" "$d/out" "$d/reports"
            cp --sparse=always "$2" "$d/base/xen.img"
            for tool in tee rm sync; do ln -s /bin/busybox "$d/guest/$tool"; done
            cat > "$d/guest/init"; chmod 755 "$d/guest/init"
            """, "sh", directory.path, fixture.imagePath], stdin: Array(FirstBootBootTests.initScript.utf8)).requireSuccess()
        try Self.bootstrap.write(toFile: directory.file("bootstrap.sh"), atomically: true, encoding: .utf8)
        chmod(directory.file("bootstrap.sh"), 0o755)
        try Self.recipe.write(toFile: directory.file("bootstrap.yaml"), atomically: true, encoding: .utf8)
        let disk = directory.file("out/vm.qcow2")
        try Command.runRehost(["build", directory.file("bootstrap.yaml"), "--quiet"], timeout: .seconds(600)).requireSuccess()
        #expect(try Command.runRehost(["ls", disk, "/var/lib/rehost-firstboot/scripts"]).requireSuccess().stdout == "0001-packages\n0002-bootstrap.sh\n")
        #expect(try Command.runRehost(["cat", disk, "/var/log/bootstrap/report.txt"]).status != 0, "no report before the boot")

        let log = directory.file("serial.log")
        let boot = try Command.run("/bin/bash", ["\(Fixture.repositoryRoot)/Fixtures/boot.sh", disk, "--format", "qcow2", "--bus", "virtio",
                                                 "--writable", "--log", log, "--timeout", "400"], timeout: .seconds(460))
        let serial = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(boot.status == 0, "boot: \(boot.stdout)\(boot.stderr)\n\(serial.suffix(2000))")
        #expect(serial.contains("rehost-firstboot: 0002-bootstrap.sh done"))

        let report = try Command.runRehost(["cat", disk, "/var/log/bootstrap/report.txt"]).requireSuccess().stdout
        #expect(report.hasPrefix("bootstrap: 42 checks passed\nkernel: "), "\(report)")
        try Command.runRehost(["copy-out", disk, "/var/log/bootstrap", "/var/log/rehost-firstboot.log", directory.file("reports")]).requireSuccess()
        #expect(try String(contentsOfFile: directory.file("reports/bootstrap/report.txt"), encoding: .utf8) == report)
        let firstbootLog = try String(contentsOfFile: directory.file("reports/rehost-firstboot.log"), encoding: .utf8)
        #expect(firstbootLog.contains("rehost build: no dnf, yum, apt-get or zypper to install: httpd"))
        #expect(firstbootLog.contains("rehost-firstboot: 0001-packages failed with status 1"))
        // The failed package install stays queued for the next boot; the bootstrap is gone.
        #expect(try Command.runRehost(["ls", disk, "/var/lib/rehost-firstboot/scripts"]).requireSuccess().stdout == "0001-packages\n")
    }
}
