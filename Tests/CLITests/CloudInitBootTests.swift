import Foundation
import Testing
import TestSupport

/// cloud-init really reads what Rehost gives it: a real Debian 12 guest with Debian's cloud-init
/// (Fixtures/make-debian-guest.sh --cloud-init, built as root with mmdebstrap and cached), converted
/// as `nobody` and booted from its MBR under qemu. Once with the NoCloud seed inside the disk
/// (`convert --cloud-init`), once with a plain conversion and the seed on a `cidata` CD from
/// `rehost context --nocloud`, attached as a second virtio disk (read by the guest's own kernel
/// through the Joliet names). Each boot
/// must run the user data's bootcmd, write_files and runcmd, take the meta-data's hostname, name
/// NoCloud as its datasource, and leave no failed unit. A third boot takes an OpenNebula context CD
/// (`rehost context --iso`, label CONTEXT): cloud-init's OpenNebula datasource parses context.sh,
/// decodes the gzip+base64 user data and runs both parts of its multipart message.
@Suite(.serialized)
struct CloudInitBootTests {
    static let directory = "/tmp/rehost-debian-guests"

    /// The modules a minimal guest cannot run (no openssh, no locales) are turned off, so a failed
    /// unit would mean cloud-init itself failed.
    static let userData = """
        #cloud-config
        ssh_genkeytypes: []
        locale: false
        bootcmd:
          - "echo REHOST-CLOUD-INIT: bootcmd > /dev/ttyS0"
        write_files:
          - path: /etc/rehost-cloud-init
            content: "written-from-the-seed\\n"
        runcmd:
          - [sh, -c, 'echo "REHOST-CLOUD-INIT: runcmd hostname=$(hostname) file=$(cat /etc/rehost-cloud-init) datasource=$(cut -d" " -f1 /var/lib/cloud/instance/datasource)" > /dev/ttyS0']

        """

    static func guest() throws -> (image: String, name: String) {
        DebianGuestTests.lock.lock()
        defer { DebianGuestTests.lock.unlock() }
        let name = "debian-bookworm-initramfs-tools-cloud-init"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o755])
        let image = "\(directory)/\(name).img"
        let make = try Command.run("/bin/bash", ["\(Fixture.repositoryRoot)/Fixtures/make-debian-guest.sh", directory,
                                                 "--suite", "bookworm", "--initrd-tool", "initramfs-tools", "--cloud-init"],
                                   timeout: .seconds(1800))
        if make.status != 0 {
            Issue.record("make-debian-guest.sh --cloud-init failed; the cloud-init boot tests cannot run: \(make.stderr.suffix(600))")
            throw TestSupportError.commandFailed(commandLine: "make-debian-guest.sh --cloud-init", status: make.status, stderr: make.stderr)
        }
        try Command.run("chmod", ["a+r", image]).requireSuccess()
        return (image, name)
    }

    func workspace(_ label: String) throws -> String {
        let output = "\(Self.directory)/out-cloud-init-\(label)"
        try? FileManager.default.removeItem(atPath: output)
        try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o777])
        try Self.userData.write(toFile: "\(output)/user-data", atomically: true, encoding: .utf8)
        try "instance-id: rehost-\(label)\nlocal-hostname: rehost-\(label)\n".write(toFile: "\(output)/meta-data", atomically: true, encoding: .utf8)
        try Command.run("chmod", ["a+r", "\(output)/user-data", "\(output)/meta-data"]).requireSuccess()
        return output
    }

    func boot(_ output: String, seedDisk: String? = nil) throws -> (status: Int32, serial: String, stdout: String) {
        let log = "\(output)/serial.log"
        var arguments = ["\(Fixture.repositoryRoot)/Fixtures/boot.sh", "\(output)/disk.qcow2", "--bus", "virtio", "--net", "virtio",
                         "--memory", "1024", "--log", log, "--timeout", "600"]
        if let seedDisk { arguments += ["--seed-disk", seedDisk] }
        let boot = try Command.run("/bin/bash", arguments, timeout: .seconds(660), asUser: "nobody")
        return (boot.status, (try? String(contentsOfFile: log, encoding: .utf8)) ?? "", boot.stdout + boot.stderr)
    }

    func expectCloudInitRan(_ result: (status: Int32, serial: String, stdout: String), hostname: String, seed: String) {
        #expect(result.status == 0, "\(result.stdout)")
        #expect(result.serial.contains("REHOST-CLOUD-INIT: bootcmd"), "bootcmd ran: \(result.stdout)")
        #expect(result.serial.contains("REHOST-CLOUD-INIT: runcmd hostname=\(hostname) file=written-from-the-seed datasource=DataSourceNoCloud"),
                "runcmd ran with the meta-data's hostname and the seed's write_files: \(result.stdout)")
        #expect(result.serial.contains("Datasource DataSourceNoCloud [seed=\(seed)]"), "\(result.stdout)")
        #expect(result.serial.contains("REHOST-GUEST: state=running"), "\(result.stdout)")
        #expect(result.serial.contains("REHOST-GUEST: failed=none"), "\(result.stdout)")
    }

    @Test func seedInsideTheDiskReachesCloudInit() throws {
        let guest = try Self.guest()
        let output = try workspace("disk")
        let convert = try Command.runRehost(["convert", guest.image, "-o", "\(output)/disk.qcow2", "--cloud-init", "\(output)/user-data",
                                             "--meta-data", "\(output)/meta-data", "-q", "--json"], asUser: "nobody", timeout: .seconds(900))
        #expect(convert.status == 0, "\(convert.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(convert.stdoutBytes)) as? [String: Any]
        #expect((report?["warnings"] as? [String] ?? []).allSatisfy { !$0.contains("cloud-init") }, "the guest has cloud-init")
        expectCloudInitRan(try boot(output), hostname: "rehost-disk", seed: "/var/lib/cloud/seed/nocloud")
        try? FileManager.default.removeItem(atPath: output)
    }

    @Test func seedCDFromRehostContextReachesCloudInit() throws {
        let guest = try Self.guest()
        let output = try workspace("cd")
        let seed = "\(output)/seed.iso"
        try Command.runRehost(["context", "--nocloud", "--user-data", "none,\(output)/user-data", "--meta-data", "\(output)/meta-data",
                               "-o", seed], asUser: "nobody").requireSuccess()
        try Command.runRehost(["convert", guest.image, "-o", "\(output)/disk.qcow2", "-q"], asUser: "nobody", timeout: .seconds(900))
            .requireSuccess()
        // As a second virtio disk: the repaired initrd loads virtio_blk, so ds-identify (a systemd
        // generator, run before udev loads sr_mod for a CD-ROM drive) sees the cidata label.
        let result = try boot(output, seedDisk: seed)
        // cloud-init names the device it mounted; the guest's kernel read the ISO's Joliet names.
        expectCloudInitRan(result, hostname: "rehost-cd", seed: "/dev/vdb")
        try? FileManager.default.removeItem(atPath: output)
    }

    @Test func openNebulaContextCDReachesCloudInit() throws {
        let guest = try Self.guest()
        let output = try workspace("one")
        let config = "\(output)/config.yaml", script = "\(output)/part.sh", key = "\(output)/key.pub"
        try """
            #cloud-config
            ssh_genkeytypes: []
            locale: false
            runcmd:
              - [sh, -c, 'echo "REHOST-CLOUD-INIT: runcmd hostname=$(hostname) datasource=$(cut -d" " -f1 /var/lib/cloud/instance/datasource)" > /dev/ttyS0']

            """.write(toFile: config, atomically: true, encoding: .utf8)
        try "#!/bin/sh\necho 'REHOST-CLOUD-INIT: shellscript part ran' > /dev/ttyS0\n".write(toFile: script, atomically: true, encoding: .utf8)
        try "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHf0Jm3H1Y6m1bZ2wW0yT3mP8c6sYv4xN5qR7tU9vW0a test@rehost\n"
            .write(toFile: key, atomically: true, encoding: .utf8)
        try Command.run("chmod", ["a+r", config, script, key]).requireSuccess()
        let context = "\(output)/context.iso"
        try Command.runRehost(["context", "--ssh-key", key, "--user-data", "cloud-config,\(config)", "--user-data", "x-shellscript,\(script)",
                               "--set", "SET_HOSTNAME=rehost-one", "--iso", "-o", context], asUser: "nobody").requireSuccess()
        try Command.runRehost(["convert", guest.image, "-o", "\(output)/disk.qcow2", "-q"], asUser: "nobody", timeout: .seconds(900))
            .requireSuccess()
        let result = try boot(output, seedDisk: context)
        #expect(result.status == 0, "\(result.stdout)")
        #expect(result.serial.contains("REHOST-CLOUD-INIT: shellscript part ran"), "the x-shellscript part ran: \(result.stdout)")
        #expect(result.serial.contains("REHOST-CLOUD-INIT: runcmd hostname=rehost-one datasource=DataSourceOpenNebula"),
                "the cloud-config part ran, with SET_HOSTNAME: \(result.stdout)")
        #expect(result.serial.contains("REHOST-GUEST: state=running"), "\(result.stdout)")
        #expect(result.serial.contains("REHOST-GUEST: failed=none"), "\(result.stdout)")
        try? FileManager.default.removeItem(atPath: output)
    }
}
