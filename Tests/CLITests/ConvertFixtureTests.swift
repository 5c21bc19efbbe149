import Foundation
import Testing
import TestSupport

/// The core job end to end, as an unprivileged user: convert the Xen fixture (its kernel has an
/// EFI stub, so by default the disk boots both ways: GPT with a BIOS boot partition and an ESP),
/// then read the disk back with e2fsprogs and util-linux, compare its tree with the source's, and
/// boot it in qemu under SeaBIOS from its own disk on IDE and on virtio. The MBR disk of
/// `--firmware bios` is read back too.
@Suite(.serialized)
struct ConvertFixtureTests {
    /// One conversion shared by the tests of this suite.
    struct Converted: Sendable {
        let fixture: FixtureImage
        let directory: String
        let disk: String
        let reportJSON: [UInt8]
        let inputDigestBefore: String
        let inputDigestAfter: String
        let stdout: String
        let stderr: String
        let status: Int32

        /// Where the root filesystem starts: the first Linux partition, behind the boot partitions.
        let rootOffset: UInt64
        var partition: String { "\(disk)?offset=\(rootOffset)" }
        var report: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(reportJSON))) as? [String: Any] ?? [:] }
        var changes: [[String: Any]] { report["changes"] as? [[String: Any]] ?? [] }
    }

    nonisolated(unsafe) static var shared: Converted?
    static let lock = NSLock()

    static func converted() throws -> Converted {
        lock.lock()
        defer { lock.unlock() }
        if let shared { return shared }
        let fixture = try Fixture.xenInstance()
        // One fixed directory, emptied at the start of each run, holds the shared conversion and the serial logs.
        let directory = "/tmp/rehost-convert-test"
        try? FileManager.default.removeItem(atPath: directory)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o777])
        let digestBefore = try sha256(fixture.imagePath)
        let disk = "\(directory)/centos5.raw"
        // One conversion writes the raw disk and, from it in the same pass, the hypervisor formats.
        let others = ["qcow2", "vmdk", "vdi"].map { "\(directory)/centos5.\($0)" }
        let result = try Command.runRehost(["convert", fixture.imagePath, "-o", disk] + others.flatMap { ["-o", $0] } + ["--json"],
                                           asUser: "nobody")
        let made = Converted(fixture: fixture, directory: directory, disk: disk, reportJSON: result.stdoutBytes,
                             inputDigestBefore: digestBefore, inputDigestAfter: try sha256(fixture.imagePath),
                             stdout: result.stdout, stderr: result.stderr, status: result.status,
                             rootOffset: (try? DiskPartitions.firstLinuxOffset(disk)) ?? 0)
        shared = made
        return made
    }

    static func sha256(_ path: String) throws -> String {
        try Command.run("sha256sum", [path]).requireSuccess().stdout.split(separator: " ").first.map(String.init) ?? ""
    }

    static func debugfs(_ request: String, _ image: String) throws -> String {
        try Command.run("debugfs", ["-R", request, image]).requireSuccess().stdout
    }

    @Test func convertsAsNobodyWithoutTouchingTheInput() throws {
        let c = try Self.converted()
        #expect(c.status == 0, "rehost convert failed: \(c.stderr)")
        #expect(c.inputDigestBefore == c.inputDigestAfter, "the input was modified")
        let attributes = try FileManager.default.attributesOfItem(atPath: c.disk)
        #expect((attributes[.ownerAccountID] as? NSNumber)?.intValue == 65534, "the output should belong to nobody")
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: c.directory).filter { $0.hasPrefix(".") }
        #expect(leftovers.isEmpty, "temporary files left behind: \(leftovers)")
    }

    /// The default for an EFI-stub kernel, said with its reason: a GPT disk with the BIOS boot
    /// partition, the ESP and the root, in that order, the root running to the backup table.
    @Test func partitionTableBootsBothWaysForAnEFIStubKernel() throws {
        let c = try Self.converted()
        #expect(c.report["firmware"] as? String == "both")
        #expect((c.report["firmwareReason"] as? String)?.hasPrefix("auto: the boot kernel \(c.fixture["KERNEL_PATH"] ?? "?") has an EFI stub") == true,
                "\(c.report["firmwareReason"] ?? "")")
        let table = try DiskPartitions(disk: c.disk)
        #expect(table.label == "gpt")
        #expect(table.partitions.map(\.type) == ["21686148-6449-6E6F-744E-656564454649", "C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
                                                 "0FC63DAF-8483-4772-8E79-3D69D8477DE4"])
        #expect(table.partitions.first?.start == 1 << 20)
        let size = try #require(try FileManager.default.attributesOfItem(atPath: c.disk)[.size] as? NSNumber).uint64Value
        let root = try #require(table.linux.first)
        #expect(root.start == c.rootOffset && root.start % (1 << 20) == 0)
        // Only the backup table (33 sectors, in the last MiB) follows the root.
        #expect(root.start + root.size <= size - 33 * 512 && size - (root.start + root.size) <= 1 << 20)
        #expect(try Command.run("sgdisk", ["-v", c.disk]).requireSuccess().stdout.contains("No problems found"))
    }

    /// `--firmware bios`: one bootable Linux partition at 1 MiB in an MBR, GRUB legacy's menu
    /// naming it (hd0,0), and no ESP in fstab.
    @Test func biosFirmwareGivesOneBootableLinuxPartitionAt1MiB() throws {
        let c = try Self.converted()
        let disk = "\(c.directory)/bios.raw"
        let result = try Command.runRehost(["convert", c.fixture.imagePath, "-o", disk, "--firmware", "bios", "--json"], asUser: "nobody")
        #expect(result.status == 0, "\(result.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(result.stdoutBytes)) as? [String: Any]
        #expect(report?["firmware"] as? String == "bios" && report?["firmwareReason"] == nil)
        let dump = try Command.run("sfdisk", ["--json", disk]).requireSuccess().stdout
        let json = try JSONSerialization.jsonObject(with: Data(dump.utf8)) as? [String: Any]
        let table = json?["partitiontable"] as? [String: Any]
        let partitions = table?["partitions"] as? [[String: Any]] ?? []
        #expect(table?["label"] as? String == "dos")
        #expect(partitions.count == 1)
        #expect((partitions.first?["start"] as? NSNumber)?.intValue == 2048)
        #expect(partitions.first?["type"] as? String == "83")
        #expect(partitions.first?["bootable"] as? Bool == true)
        let size = try FileManager.default.attributesOfItem(atPath: disk)[.size] as? NSNumber
        let sectors = (partitions.first?["size"] as? NSNumber)?.uint64Value ?? 0
        #expect((2048 + sectors) * 512 <= size?.uint64Value ?? 0)
        let root = "\(disk)?offset=1048576"
        #expect(try Command.run("e2fsck", ["-fn", root]).status == 0)
        #expect(try Self.debugfs("cat /boot/grub/grub.conf", root).contains("\troot (hd0,0)\n"))
        #expect(!(try Self.debugfs("cat /etc/fstab", root)).contains("/boot/efi"))
        try? FileManager.default.removeItem(atPath: disk)
    }

    @Test func filesystemIsCleanExt3WithTheSourceLabelAndUUID() throws {
        let c = try Self.converted()
        let fsck = try Command.run("e2fsck", ["-fn", c.partition])
        #expect(fsck.status == 0, "e2fsck -fn: \(fsck.stdout)\(fsck.stderr)")
        let header = try Command.run("dumpe2fs", ["-h", c.partition]).requireSuccess().stdout
        #expect(header.contains("Inode size:\t          128"))
        #expect(header.contains("has_journal"))
        for ext4Only in ["extent", "flex_bg", "64bit", "metadata_csum", "huge_file", "uninit_bg"] {
            #expect(!header.contains(" \(ext4Only)"), "ext4-only feature \(ext4Only) in \(header)")
        }
        #expect(header.contains("Filesystem UUID:          \(c.fixture["FS_UUID"] ?? "?")"))
        #expect(header.contains("Filesystem volume name:   \(c.fixture["FS_LABEL"] ?? "?")"))
    }

    @Test func repairedFilesReadBackWithDebugfs() throws {
        let c = try Self.converted()
        let inittab = try Self.debugfs("cat /etc/inittab", c.partition)
        #expect(inittab.contains("ttyS0"))
        #expect(!inittab.split(separator: "\n").contains { $0.contains("xvc0") && !$0.hasPrefix("#") })
        for tty in 1...6 { #expect(inittab.contains("tty\(tty)")) }
        #expect(try Self.debugfs("cat /etc/securetty", c.partition).split(separator: "\n").contains("ttyS0"))
        let modprobe = try Self.debugfs("cat /etc/modprobe.conf", c.partition)
        #expect(modprobe.contains("alias scsi_hostadapter virtio_blk"))
        #expect(modprobe.contains("alias eth0 virtio_net"))
        #expect(!modprobe.contains("xenblk") && !modprobe.contains("xennet"))
        let fstab = try Self.debugfs("cat /etc/fstab", c.partition)
        #expect(fstab.split(separator: "\n").contains { $0.hasPrefix("LABEL=/") && $0.contains("\t/\t") })
        #expect(!fstab.split(separator: "\n").contains { $0.hasPrefix("/dev/sd") })
        #expect(!(try Self.debugfs("cat /etc/sysconfig/network-scripts/ifcfg-eth0", c.partition)).contains("HWADDR"))
        #expect(try Self.debugfs("stat /etc/blkid/blkid.tab", c.partition).isEmpty)
        let grubCfg = try Self.debugfs("cat /boot/grub/grub.cfg", c.partition)
        #expect(grubCfg.contains("linux \(c.fixture["KERNEL_PATH"] ?? "?") ro root=LABEL=/"))
        #expect(grubCfg.contains("console=ttyS0"))
        #expect(!grubCfg.contains("el5xen"), "the Xen-only kernel must not be offered")
        let grubConf = try Self.debugfs("cat /boot/grub/grub.conf", c.partition)
        #expect(grubConf.contains("kernel /boot/vmlinuz-"))
        #expect(try Self.debugfs("stat /boot/grub/menu.lst", c.partition).contains("Fast link dest: \"grub.conf\""))
        #expect(try Self.debugfs("stat /etc/grub.conf", c.partition).contains("Fast link dest: \"../boot/grub/grub.conf\""))
        #expect(try Self.debugfs("stat /boot/grub/grub.cfg", c.partition).contains("Type: regular"))
        // The fixture is an SELinux guest: the files Rehost created carry their neighbours' labels.
        #expect(try Self.debugfs("ea_get /boot/grub/grub.cfg security.selinux", c.partition).contains("system_u:object_r:boot_t:s0"))
        #expect(try Self.debugfs("ea_get \(c.fixture["INITRD_PATH"] ?? "?").pre-rehost security.selinux", c.partition)
            .contains("system_u:object_r:boot_t:s0"))
    }

    @Test func treeDiffersFromTheSourceOnlyByTheDeclaredRepairs() throws {
        let c = try Self.converted()
        let source = try ExtTreeManifest.read(image: c.fixture.imagePath)
        let output = try ExtTreeManifest.read(image: c.disk, offset: c.rootOffset)
        let changed = Set(c.changes.compactMap { $0["path"] as? String })
        #expect(changed.contains("/etc/inittab") && changed.contains("/etc/fstab"), "the report lists the repairs: \(changed)")
        // A repair changes its file and the times of the directory holding it, nothing else.
        let parents = Set(changed.map { path in
            let parent = (path as NSString).deletingLastPathComponent
            return parent.isEmpty ? "/" : parent
        })
        // A directory the repairs create adds one link (its "..") to its parent.
        let createdDirectories = c.changes.filter { $0["action"] as? String == "created" && output.entries[$0["path"] as? String ?? ""]?.kind == .directory }
        let parentsOfCreatedDirectories = Set(createdDirectories.compactMap { ($0["path"] as? String).map { ($0 as NSString).deletingLastPathComponent } })
        let differences = ExtTreeManifest.differences(from: source, to: output, ignoringTimesOf: parents, ignoringPaths: changed)
            .filter { !($0.property == .linkCount && parentsOfCreatedDirectories.contains($0.path)) }
        #expect(differences.isEmpty, "undeclared differences:\n\(differences.map(\.description).joined(separator: "\n"))")
        #expect(source.entries.count > 150, "the fixture should be realistic, it has \(source.entries.count) entries")
    }

    @Test func convertingTheResultAgainChangesNothing() throws {
        let c = try Self.converted()
        let again = try Command.runRehost(["convert", c.disk, "-o", "\(c.directory)/again.raw", "--dry-run", "--json"], asUser: "nobody")
        #expect(again.status == 0, "\(again.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(again.stdoutBytes)) as? [String: Any]
        let changes = report?["changes"] as? [[String: Any]]
        #expect(changes?.isEmpty == true, "a converted guest needs no more repairs, got \(changes ?? [])")
        #expect(!FileManager.default.fileExists(atPath: "\(c.directory)/again.raw"), "--dry-run must write nothing")
    }

    @Test func everyFormatHoldsTheSameDisk() throws {
        let c = try Self.converted()
        let outputs = c.report["outputs"] as? [[String: Any]] ?? []
        #expect(outputs.map { $0["format"] as? String } == ["raw", "qcow2", "vmdk", "vdi"])
        for (format, qemuFormat) in [("qcow2", "qcow2"), ("vmdk", "vmdk"), ("vdi", "vdi")] {
            let path = "\(c.directory)/centos5.\(format)"
            let compare = try Command.run("qemu-img", ["compare", "-f", "raw", "-F", qemuFormat, c.disk, path])
            #expect(compare.status == 0, "\(path): \(compare.stdout)\(compare.stderr)")
            let check = try Command.run("qemu-img", ["check", "-f", qemuFormat, path])
            #expect(check.status == 0, "\(path): \(check.stdout)\(check.stderr)")
        }
    }

    @Test(arguments: [("raw", "ide"), ("raw", "virtio"), ("qcow2", "virtio"), ("vmdk", "ide"), ("vdi", "virtio")])
    func bootsUnderSeaBIOSFromItsOwnDisk(format: String, bus: String) throws {
        let c = try Self.converted()
        let log = "\(c.directory)/serial-\(format)-\(bus).log"
        let image = "\(c.directory)/centos5.\(format)"
        let boot = try Command.run("/bin/bash", ["\(Fixture.repositoryRoot)/Fixtures/boot.sh", image, "--format", format,
                                                 "--bus", bus, "--log", log, "--timeout", "240"],
                                   timeout: .seconds(300), asUser: "nobody")
        let serial = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(boot.status == 0, "no boot marker from \(format) on \(bus):\n\(boot.stdout)\(boot.stderr)")
        #expect(serial.contains("REHOST-BOOT-OK"))
        let device = bus == "virtio" ? "/dev/vda3" : "/dev/sda3"
        #expect(serial.contains("root-mount=\(device) / "), "the root should be mounted from \(device), behind the boot partitions")
        #expect(serial.contains("root=LABEL=/"))
    }
}
