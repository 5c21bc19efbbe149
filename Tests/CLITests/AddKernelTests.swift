import Foundation
import Testing
import TestSupport

/// A guest with only RHEL 5's kernel-xen (a Xen PV image) cannot boot off Xen until a kernel is
/// supplied: `--add-kernel` installs an RPM (built with rpmbuild the RHEL way) or Debian's own
/// kernel .deb without running their scriptlets, derives an initrd from the guest's nash one,
/// and the result boots with the new kernel.
@Suite(.serialized)
struct AddKernelTests {
    static let directory = "/tmp/rehost-add-kernel"

    nonisolated(unsafe) static var built: FixtureImage?
    static let lock = NSLock()

    /// The fixture as kernel-xen alone leaves it (make-xen-instance.sh --xen-only), built once.
    static func xenOnly() throws -> FixtureImage {
        lock.lock()
        defer { lock.unlock() }
        if let built { return built }
        let full = try Fixture.xenInstance()
        let image = "\(full.directory)/xen-only-instance.img"
        try Command.run("/bin/bash", ["\(Fixture.repositoryRoot)/Fixtures/make-xen-instance.sh", full.directory, "--xen-only"],
                        timeout: .seconds(600)).requireSuccess()
        let environment = Fixture.parseEnvironmentFile(try String(contentsOfFile: "\(full.directory)/xen-only-instance.env", encoding: .utf8))
        let made = FixtureImage(imagePath: image, directory: full.directory, environment: environment)
        built = made
        return made
    }

    static func prepareDirectory() throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o777])
    }

    static func kernelRPM() throws -> String {
        try prepareDirectory()
        let result = try Command.run("/bin/bash", ["\(Fixture.repositoryRoot)/Fixtures/make-kernel-rpm.sh", directory],
                                     timeout: .seconds(600)).requireSuccess()
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test func withoutAKernelTheGuestIsRefusedBeforeAnythingIsWritten() throws {
        let fixture = try Self.xenOnly()
        try Self.prepareDirectory()
        let output = "\(Self.directory)/refused.raw"
        let result = try Command.runRehost(["convert", fixture.imagePath, "-o", output], asUser: "nobody")
        #expect(result.status == 1)
        #expect(result.stderr.hasPrefix("rehost: error: no kernel in /boot boots on kvm: /boot/vmlinuz-2.6.18-398.el5xen: Xen PV image"),
                "\(result.stderr)")
        #expect(result.stderr.split(separator: "\n").count == 1)
        #expect(!FileManager.default.fileExists(atPath: output))
    }

    @Test func aPackageThatIsNotAKernelIsRefused() throws {
        let fixture = try Self.xenOnly()
        try Self.prepareDirectory()
        let fake = "\(Self.directory)/kernel-2.6.18-398.el5.x86_64.rpm"
        try Data("not an rpm at all\n".utf8).write(to: URL(fileURLWithPath: fake))
        let output = "\(Self.directory)/fake.raw"
        let result = try Command.runRehost(["convert", fixture.imagePath, "--add-kernel", fake, "-o", output], asUser: "nobody")
        #expect(result.status == 1)
        #expect(result.stderr.hasPrefix("rehost: error: \(fake):"), "\(result.stderr)")
        #expect(result.stderr.split(separator: "\n").count == 1)
        #expect(!FileManager.default.fileExists(atPath: output))
    }

    @Test(arguments: [("rpm", "virtio"), ("rpm", "ide"), ("deb", "virtio")])
    func theSuppliedKernelBoots(format: String, bus: String) throws {
        let fixture = try Self.xenOnly()
        let package = format == "rpm" ? try Self.kernelRPM() : try DebianKernel.current().package()
        let release = fixture["KERNEL_VERSION"] ?? "?"
        let disk = "\(Self.directory)/add-kernel-\(format)-\(bus).raw"
        try? FileManager.default.removeItem(atPath: disk)
        let convert = try Command.runRehost(["convert", fixture.imagePath, "--add-kernel", package, "-o", disk, "--json", "-q"],
                                            asUser: "nobody")
        #expect(convert.status == 0, "\(convert.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(convert.stdoutBytes)) as? [String: Any]
        let changes = (report?["changes"] as? [[String: Any]] ?? []).filter { $0["repair"] as? String == "add-kernel" }
        let paths = changes.compactMap { $0["path"] as? String }
        #expect(paths.contains("/boot/vmlinuz-\(release)") && paths.contains("/boot/initrd-\(release).img"), "\(paths)")
        // The guest's own kernels are Xen PV only; the supplied one has an EFI stub and decides.
        #expect(report?["firmware"] as? String == "both")
        #expect((report?["firmwareReason"] as? String)?.contains("/boot/vmlinuz-\(release) has an EFI stub") == true,
                "\(report?["firmwareReason"] ?? "")")

        let partition = "\(disk)?offset=\(try DiskPartitions.firstLinuxOffset(disk))"
        #expect(try Command.run("e2fsck", ["-fn", partition]).status == 0)
        let listing = try Command.run("debugfs", ["-R", "ls /lib/modules/\(release)", partition]).requireSuccess().stdout
        #expect(listing.contains("modules.dep.bin") && listing.contains("modules.alias.bin"), "\(listing)")
        let grubCfg = try Command.run("debugfs", ["-R", "cat /boot/grub/grub.cfg", partition]).requireSuccess().stdout
        #expect(grubCfg.contains("linux /boot/vmlinuz-\(release) ro"), "the new kernel is the default")
        #expect(!grubCfg.contains("el5xen"))
        if format == "rpm" {
            let hook = try Command.run("debugfs", ["-R", "cat /etc/rc.d/rc.local", partition]).requireSuccess().stdout
            #expect(hook.contains("/var/lib/rehost/register-packages.sh"), "rpm registers the kernel at first boot: \(hook)")
            let script = try Command.run("debugfs", ["-R", "cat /var/lib/rehost/register-packages.sh", partition]).requireSuccess().stdout
            #expect(script.contains("rpm -i --justdb --nodeps --noscripts"))
        } else {
            let warnings = report?["warnings"] as? [String] ?? []
            #expect(warnings.contains { $0.contains("dpkg -i /var/lib/rehost/packages/") }, "\(warnings)")
        }

        let log = "\(Self.directory)/serial-\(format)-\(bus).log"
        let boot = try Command.run("/bin/bash", ["\(Fixture.repositoryRoot)/Fixtures/boot.sh", disk, "--bus", bus, "--log", log,
                                                 "--timeout", "240"], timeout: .seconds(300), asUser: "nobody")
        let serial = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(boot.status == 0, "\(boot.stdout)\(boot.stderr)")
        #expect(serial.contains("cmdline=BOOT_IMAGE=/boot/vmlinuz-\(release) "), "booted with the supplied kernel")
        #expect(serial.contains("root-mount=\(bus == "virtio" ? "/dev/vda3" : "/dev/sda3") / "))
        try? FileManager.default.removeItem(atPath: disk)
    }
}
