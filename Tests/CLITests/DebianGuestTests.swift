import Foundation
import Testing
import TestSupport

/// Real Debian guests, installed by mmdebstrap and shaped like Xen PV domUs by
/// Fixtures/make-debian-guest.sh: systemd, Debian's kernel, an initrd the guest's own
/// initramfs-tools or dracut built with only xen-blkfront, /dev/xvda1 in fstab, a getty on hvc0.
/// The guest's own initrd does not find its root off Xen; converted by Rehost as `nobody`, the
/// guest boots from its own disk (for both firmwares, by default) to multi-user.target with no
/// failed unit and eth0 up, under SeaBIOS on virtio, IDE and AHCI, and under OVMF. The guests are built as root (the test command runs as root in CI) and cached.
@Suite(.serialized)
struct DebianGuestTests {
    static let directory = "/tmp/rehost-debian-guests"
    static let guests = [("bookworm", "initramfs-tools"), ("bookworm", "dracut"), ("bullseye", "initramfs-tools")]

    struct Guest: Sendable {
        let name: String
        let image: String
        let envFile: String
        let environment: [String: String]
    }

    nonisolated(unsafe) static var built: [String: Guest] = [:]
    static let lock = NSLock()

    static func guest(suite: String, tool: String) throws -> Guest {
        lock.lock()
        defer { lock.unlock() }
        let name = "debian-\(suite)-\(tool)"
        if let known = built[name] { return known }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o755])
        let make = try Command.run("/bin/bash", ["\(Fixture.repositoryRoot)/Fixtures/make-debian-guest.sh", directory,
                                                 "--suite", suite, "--initrd-tool", tool], timeout: .seconds(1800))
        if make.status != 0 {
            // Loud, never a silent skip: without root or the archive the real guests cannot be built.
            Issue.record("make-debian-guest.sh \(suite) \(tool) failed; the real-guest tests cannot run: \(make.stderr.suffix(600))")
            throw TestSupportError.commandFailed(commandLine: "make-debian-guest.sh", status: make.status, stderr: make.stderr)
        }
        let envFile = "\(directory)/\(name).env"
        let environment = Fixture.parseEnvironmentFile(try String(contentsOfFile: envFile, encoding: .utf8))
        try Command.run("chmod", ["a+r", "\(directory)/\(name).img"]).requireSuccess()
        let guest = Guest(name: name, image: "\(directory)/\(name).img", envFile: envFile, environment: environment)
        built[name] = guest
        return guest
    }

    /// An empty directory for one test's outputs under `directory`, writable by `nobody`.
    static func freshOutput(_ name: String) throws -> String {
        let output = "\(directory)/out-\(name)"
        try? FileManager.default.removeItem(atPath: output)
        try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o777])
        return output
    }

    /// The guest's own Xen-only initrd, booted with its kernel (-kernel/-initrd), does not find
    /// its root on virtio or IDE: the fixture really needs the repair.
    @Test(arguments: [("bookworm", "initramfs-tools"), ("bookworm", "dracut"), ("bullseye", "initramfs-tools")])
    func theGuestsOwnInitrdDoesNotFindRootOffXen(suite: String, tool: String) throws {
        let guest = try Self.guest(suite: suite, tool: tool)
        for bus in ["virtio", "ide"] {
            let log = "\(Self.directory)/\(guest.name)-unrepaired-\(bus).log"
            let check = try Command.run("/bin/bash", ["\(Fixture.repositoryRoot)/Fixtures/check-debian-guest.sh", guest.envFile,
                                                      "--initrd", "xen", "--bus", bus, "--log", log, "--timeout", "300"],
                                        timeout: .seconds(360))
            #expect(check.status == 1, "\(guest.name) unrepaired on \(bus) should not boot: \(check.stdout)\(check.stderr)")
            let serial = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            #expect(!serial.contains("REHOST-BOOT-OK"))
        }
    }

    @Test(arguments: [
        ("bookworm", "initramfs-tools", "virtio", "virtio"), ("bookworm", "initramfs-tools", "ide", "e1000"),
        ("bookworm", "initramfs-tools", "ahci", "e1000"),
        ("bookworm", "dracut", "virtio", "virtio"), ("bookworm", "dracut", "ide", "e1000"), ("bookworm", "dracut", "ahci", "e1000"),
        ("bullseye", "initramfs-tools", "virtio", "virtio"), ("bullseye", "initramfs-tools", "ide", "e1000"),
        ("bullseye", "initramfs-tools", "ahci", "e1000"),
    ])
    func convertedGuestBootsToMultiUserWithTheNetworkUp(suite: String, tool: String, bus: String, nic: String) throws {
        let guest = try Self.guest(suite: suite, tool: tool)
        let disk = "\(Self.directory)/\(guest.name)-\(bus).qcow2"
        try? FileManager.default.removeItem(atPath: disk)
        let output = try Self.freshOutput("\(guest.name)-\(bus)")
        let convert = try Command.runRehost(["convert", guest.image, "-o", "\(output)/disk.qcow2", "-q", "--json"],
                                            asUser: "nobody", timeout: .seconds(900))
        #expect(convert.status == 0, "\(convert.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(convert.stdoutBytes)) as? [String: Any]
        let initrdChanges = (report?["changes"] as? [[String: Any]] ?? []).filter { $0["repair"] as? String == "initrd" }
        #expect(initrdChanges.contains { $0["path"] as? String == guest.environment["INITRD_PATH"] && $0["action"] as? String == "edited" },
                "the initrd repair changed \(guest.environment["INITRD_PATH"] ?? "?"): \(initrdChanges)")

        if bus == "virtio" {
            // Converting the converted guest again changes nothing more, the initrd included.
            let again = try Command.runRehost(["convert", "\(output)/disk.qcow2", "-o", "\(output)/again.raw", "--dry-run", "--json"],
                                              asUser: "nobody", timeout: .seconds(900))
            #expect(again.status == 0, "\(again.stderr)")
            let changes = (try JSONSerialization.jsonObject(with: Data(again.stdoutBytes)) as? [String: Any])?["changes"] as? [[String: Any]]
            #expect(changes?.isEmpty == true, "\(changes ?? [])")
        }
        let log = "\(output)/serial.log"
        let boot = try Command.run("/bin/bash", ["\(Fixture.repositoryRoot)/Fixtures/boot.sh", "\(output)/disk.qcow2", "--bus", bus,
                                                 "--net", nic, "--memory", "1024", "--log", log, "--timeout", "600"],
                                   timeout: .seconds(660), asUser: "nobody")
        let serial = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(boot.status == 0, "\(guest.name) on \(bus): \(boot.stdout)\(boot.stderr)")
        #expect(serial.contains("REHOST-GUEST: state=running"), "multi-user.target reached with nothing failed: \(boot.stdout)")
        #expect(serial.contains("REHOST-GUEST: failed=none"), "\(boot.stdout)")
        #expect(serial.contains("REHOST-GUEST: device-timeouts=none"), "no wait for Xen devices: \(boot.stdout)")
        #expect(serial.contains("REHOST-GUEST: eth0=up 10.0.2."), "\(boot.stdout)")
        // Debian's kernel has an EFI stub: the disk boots both ways, the root behind the BIOS boot partition and the ESP.
        let device = bus == "virtio" ? "/dev/vda3" : "/dev/sda3"
        #expect(serial.contains("REHOST-GUEST: root=\(device) / "), "\(boot.stdout)")
        try? FileManager.default.removeItem(atPath: output)
    }
    /// The default firmware for a real guest: Debian's kernel has an EFI stub, so convert makes a
    /// disk for both firmwares (and says why). It boots under OVMF, which has no BIOS
    /// compatibility, through the ESP's GRUB; systemd mounts the ESP on /boot/efi (a failed mount
    /// would be a failed unit) and reaches multi-user.target with nothing failed.
    @Test func convertedGuestBootsUnderUEFIByDefault() throws {
        let guest = try Self.guest(suite: "bookworm", tool: "initramfs-tools")
        let output = try Self.freshOutput("\(guest.name)-uefi")
        let disk = "\(output)/disk.qcow2"
        let convert = try Command.runRehost(["convert", guest.image, "-o", disk, "-q", "--json"], asUser: "nobody", timeout: .seconds(900))
        #expect(convert.status == 0, "\(convert.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(convert.stdoutBytes)) as? [String: Any]
        #expect(report?["firmware"] as? String == "both")
        #expect((report?["firmwareReason"] as? String)?.contains("has an EFI stub") == true, "\(report?["firmwareReason"] ?? "")")
        let log = "\(output)/serial.log"
        let boot = try Command.run("/bin/bash", ["\(Fixture.repositoryRoot)/Fixtures/boot.sh", disk, "--firmware", "uefi", "--bus", "virtio",
                                                 "--net", "virtio", "--memory", "1024", "--log", log, "--timeout", "600"],
                                   timeout: .seconds(660), asUser: "nobody")
        // OVMF's screen output is not all UTF-8: read the log lossily.
        let serial = String(decoding: FileManager.default.contents(atPath: log) ?? Data(), as: UTF8.self)
        #expect(boot.status == 0, "\(guest.name) under OVMF: \(boot.stdout)\(boot.stderr)")
        #expect(serial.contains("REHOST-GUEST: state=running"), "\(boot.stdout)")
        #expect(serial.contains("REHOST-GUEST: failed=none"), "\(boot.stdout)")
        #expect(serial.contains("REHOST-GUEST: root=/dev/vda3 / "), "\(boot.stdout)")
        try? FileManager.default.removeItem(atPath: output)
    }

    /// A first-boot command on a systemd guest: run once by the rehost-firstboot unit before
    /// multi-user.target, its output on the serial console and in the guest's log, gone at the
    /// second boot; nothing fails, and the clean's default operations leave a guest that boots.
    @Test func firstBootCommandRunsOnceUnderSystemd() throws {
        let guest = try Self.guest(suite: "bookworm", tool: "initramfs-tools")
        let output = try Self.freshOutput("\(guest.name)-firstboot")
        let disk = "\(output)/disk.raw"
        let convert = try Command.runRehost(["convert", guest.image, "-o", disk, "-q", "--clean",
                                             "--firstboot-command", "echo FIRSTBOOT-$((6 * 7))"],
                                            asUser: "nobody", timeout: .seconds(900))
        #expect(convert.status == 0, "\(convert.stderr)")
        func boot(_ name: String) throws -> String {
            let log = "\(output)/serial-\(name).log"
            let result = try Command.run("/bin/bash", ["\(Fixture.repositoryRoot)/Fixtures/boot.sh", disk, "--bus", "virtio", "--net", "virtio",
                                                       "--memory", "1024", "--writable", "--log", log, "--timeout", "600"],
                                         timeout: .seconds(660), asUser: "nobody")
            let serial = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            #expect(result.status == 0, "\(name) boot: \(result.stdout)\(result.stderr)")
            #expect(serial.contains("REHOST-GUEST: state=running") && serial.contains("REHOST-GUEST: failed=none"),
                    "\(name) boot reached multi-user.target with nothing failed: \(result.stdout)")
            return serial
        }
        let first = try boot("first")
        #expect(first.contains("FIRSTBOOT-42"), "the command's output on the serial console")
        let root = "\(disk)?offset=\(try DiskPartitions.firstLinuxOffset(disk))"
        let log = try Command.run("debugfs", ["-R", "cat /var/log/rehost-firstboot.log", root]).requireSuccess().stdout
        #expect(log.contains("FIRSTBOOT-42"), "the output logged inside the guest")
        let second = try boot("second")
        #expect(!second.contains("FIRSTBOOT-42"), "the first-boot command ran again")
        try? FileManager.default.removeItem(atPath: output)
    }
}
