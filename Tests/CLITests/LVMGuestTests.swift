import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport

/// Guests whose filesystems are spread over partitions and LVM2 logical volumes, as RHEL/CentOS
/// installs lay them out: `/boot` on partition 1, `/` in VolGroup00/LogVol00 with a swap LV, and
/// (the second fixture) `/var` on partition 3. Converted as nobody, read back with e2fsprogs,
/// compared with the source filesystems, and booted in qemu (IDE for one, virtio for the other).
@Suite(.serialized)
struct LVMGuestTests {
    struct Converted: Sendable {
        let fixture: FixtureImage
        let disk: String
        let reportJSON: [UInt8]
        let stderr: String
        let status: Int32

        /// Where the merged root starts: the first Linux partition, behind the boot partitions.
        let rootOffset: UInt64
        var partition: String { "\(disk)?offset=\(rootOffset)" }
        var report: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(reportJSON))) as? [String: Any] ?? [:] }
        var changes: [[String: Any]] { report["changes"] as? [[String: Any]] ?? [] }
        func offset(_ key: String) -> UInt64 { UInt64(fixture[key] ?? "") ?? 0 }
    }

    nonisolated(unsafe) static var shared: [LVMGuestLayout: Converted] = [:]
    static let lock = NSLock()
    static let directory = "/tmp/rehost-lvm-convert-test"

    static func converted(_ layout: LVMGuestLayout) throws -> Converted {
        lock.lock()
        defer { lock.unlock() }
        if let known = shared[layout] { return known }
        let fixture = try Fixture.lvmGuest(layout)
        if shared.isEmpty {
            try? FileManager.default.removeItem(atPath: directory)
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o777])
        }
        let disk = "\(directory)/\(layout.rawValue).raw"
        let more = [fixture["DISK2"] ?? ""].filter { !$0.isEmpty }
        let result = try Command.runRehost(["convert", fixture.imagePath] + more + ["-o", disk, "--json"], asUser: "nobody")
        let made = Converted(fixture: fixture, disk: disk, reportJSON: result.stdoutBytes, stderr: result.stderr, status: result.status,
                             rootOffset: (try? DiskPartitions.firstLinuxOffset(disk)) ?? 0)
        shared[layout] = made
        return made
    }

    @Test func inspectShowsTheVolumeGroupAndTheMounts() throws {
        let fixture = try Fixture.lvmGuest(.separateVar)
        let json = try Command.runRehost(["inspect", "--json", fixture.imagePath], asUser: "nobody").requireSuccess()
        let report = try #require(try JSONSerialization.jsonObject(with: Data(json.stdoutBytes)) as? [String: Any])
        let input = try #require(report["input"] as? [String: Any])
        #expect(input["rootVolume"] as? String == "VolGroup00/LogVol00")
        let groups = input["volumeGroups"] as? [[String: Any]] ?? []
        #expect(groups.map { $0["name"] as? String } == ["VolGroup00"])
        let lvs = groups.first?["logicalVolumes"] as? [[String: Any]] ?? []
        #expect(lvs.map { $0["name"] as? String } == ["LogVol00", "LogVol01"])
        #expect(lvs.map { ($0["sizeBytes"] as? NSNumber)?.uint64Value } == [192 << 20, 16 << 20])
        let mounts = input["mounts"] as? [[String: Any]] ?? []
        let summary = mounts.map { "\($0["mountPoint"] as? String ?? "?") \($0["device"] as? String ?? "?") \($0["volume"] as? String ?? "?")" }
        #expect(summary == ["/var /dev/sda3 partition 3", "/boot UUID=\(fixture["BOOT_UUID"] ?? "?") partition 1"])
        // The guest is inspected with /boot mounted: its kernels are found.
        let kernels = (report["guest"] as? [String: Any])?["kernels"] as? [[String: Any]] ?? []
        #expect(kernels.contains { ($0["path"] as? String)?.hasPrefix("/boot/vmlinuz-") == true })

        let text = try Command.runRehost(["inspect", fixture.imagePath], asUser: "nobody").requireSuccess().stdout
        #expect(text.contains("root on:      VolGroup00/LogVol00"))
        #expect(text.contains("LV LogVol00:  192 MiB, linear pv0:0+48"))
        #expect(text.contains("/boot from UUID="))
    }

    /// A disk holding one PV of a two-disk group: its striped LV cannot be read, and no root is
    /// found; the error says so, naming the missing PV.
    @Test func missingPhysicalVolumeIsNamed() throws {
        let dir = try TemporaryDirectory(prefix: "rehost-lvm-missing")
        try dir.makeWorldWritable()
        let disk = dir.file("half.img")
        _ = try Command.run("truncate", ["-s", "24M", disk]).requireSuccess()
        _ = try Command.run("sfdisk", ["-q", disk], stdin: Array("label: dos\nstart=2048, type=8e\n".utf8)).requireSuccess()
        _ = try Command.run("/usr/bin/python3", ["\(Fixture.repositoryRoot)/Fixtures/lvm2-write.py", disk, "--offset", "1048576",
                                                 "--size", "\(23 << 20)", "--vg", "vgdata", "--pvs", "2", "--extent-mib", "1",
                                                 "--lv", "data:8:striped:64"]).requireSuccess()
        _ = try Command.run("chmod", ["644", disk]).requireSuccess()
        let result = try Command.runRehost(["inspect", disk], asUser: "nobody")
        #expect(result.status == 1)
        #expect(result.stderr.contains("no partition or LVM2 logical volume holds an ext2/ext3/ext4 filesystem"), "\(result.stderr)")
        #expect(result.stderr.contains("vgdata/data: its physical volume pv1"), "\(result.stderr)")
    }

    /// The same disk inside qcow2 is read in place; the report names the input.
    @Test func lvmGuestInsideQcow2() throws {
        let fixture = try Fixture.lvmGuest(.separateVar)
        let dir = try TemporaryDirectory(prefix: "rehost-lvm-qcow2")
        try dir.makeWorldWritable()
        let image = dir.file("guest.qcow2")
        _ = try Command.run("qemu-img", ["convert", "-O", "qcow2", fixture.imagePath, image]).requireSuccess()
        _ = try Command.run("chmod", ["644", image]).requireSuccess()
        let json = try Command.runRehost(["inspect", "--json", image], asUser: "nobody").requireSuccess()
        let report = try #require(try JSONSerialization.jsonObject(with: Data(json.stdoutBytes)) as? [String: Any])
        let input = try #require(report["input"] as? [String: Any])
        #expect(input["rootVolume"] as? String == "VolGroup00/LogVol00")
        #expect((input["mounts"] as? [[String: Any]] ?? []).compactMap { $0["mountPoint"] as? String } == ["/var", "/boot"])
        let pv = ((input["volumeGroups"] as? [[String: Any]])?.first?["physicalVolumes"] as? [[String: Any]])?.first
        #expect(pv?["found"] as? String == "\(image), partition 2")
    }

    /// A converted guest is one partition without LVM: converting it again changes nothing.
    @Test func convertingTheResultAgainChangesNothing() throws {
        let c = try Self.converted(.separateVar)
        let again = try Command.runRehost(["convert", c.disk, "-o", "\(Self.directory)/again.raw", "--dry-run", "--json"], asUser: "nobody")
        #expect(again.status == 0, "\(again.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(again.stdoutBytes)) as? [String: Any]
        #expect((report?["changes"] as? [[String: Any]])?.isEmpty == true, "\(again.stdout)")
        let input = report?["input"] as? [String: Any]
        #expect((input?["mounts"] as? [Any])?.isEmpty == true)
        #expect((input?["volumeGroups"] as? [Any])?.isEmpty == true)
    }

    /// Without its second disk, the two-disk guest converts without /home and says why.
    @Test func secondDiskMissingIsANote() throws {
        let fixture = try Fixture.lvmGuest(.twoDisks)
        let json = try Command.runRehost(["inspect", "--json", fixture.imagePath], asUser: "nobody").requireSuccess()
        let report = try #require(try JSONSerialization.jsonObject(with: Data(json.stdoutBytes)) as? [String: Any])
        let input = try #require(report["input"] as? [String: Any])
        let notes = input["notes"] as? [String] ?? []
        #expect(notes.contains { $0.hasPrefix("VolGroup00/LogVol02 cannot be read: its physical volume pv1") }, "\(notes)")
        #expect(notes.contains("fstab line 4: /home is on VolGroup00/LogVol02, which cannot be read; its files are not copied"), "\(notes)")
        let mounts = (input["mounts"] as? [[String: Any]] ?? []).compactMap { $0["mountPoint"] as? String }
        #expect(mounts == ["/boot"])
    }

    @Test(arguments: LVMGuestLayout.allCases)
    func convertsToOneCleanFilesystem(layout: LVMGuestLayout) throws {
        let c = try Self.converted(layout)
        #expect(c.status == 0, "rehost convert failed: \(c.stderr)")
        let fsck = try Command.run("e2fsck", ["-fn", c.partition])
        #expect(fsck.status == 0, "e2fsck -fn: \(fsck.stdout)\(fsck.stderr)")
        let fstab = try Command.run("debugfs", ["-R", "cat /etc/fstab", c.partition]).requireSuccess().stdout
        let lines = fstab.split(separator: "\n").map(String.init)
        #expect(lines.contains("LABEL=/\t/\text3\tdefaults\t1 1"), "\(fstab)")
        if layout != .allLVM {
            #expect(lines.contains { $0.hasPrefix("# rehost: merged into /: ") && $0.contains("\t/boot\t") }, "\(fstab)")
        }
        // The swap LV: by its LV name, or (separate /var) by the UUID of its swap signature.
        let swap = layout == .separateVar ? "# rehost: UUID=11111111-2222-4333-8444-555555555555\t" : "# rehost: /dev/VolGroup00/LogVol01\t"
        #expect(lines.contains { $0.hasPrefix(swap) && $0.contains("\tswap\t") }, "\(fstab)")
        let boot = try Command.run("debugfs", ["-R", "ls -l /boot", c.partition]).requireSuccess().stdout
        #expect(boot.contains("vmlinuz-") && boot.contains("grub"), "\(boot)")
        if layout == .allLVM {
            // Its root LV is in two segments, read through the io_manager over the LV's extents
            // (the tree comparison shows every file came through whole).
            let notes = (c.report["input"] as? [String: Any])?["notes"] as? [String] ?? []
            #expect(notes.contains("the root filesystem is VolGroup00/LogVol00, the ext filesystem holding /etc/fstab"), "\(notes)")
            #expect(!notes.contains { $0.contains("scratch") }, "\(notes)")
        }
        if layout == .twoDisks {
            #expect(lines.contains("# rehost: merged into /: /dev/VolGroup00/LogVol02\t/home\text3\tdefaults\t1 2"), "\(fstab)")
        }
        if layout == .separateVar {
            #expect(lines.contains("# rehost: merged into /: /dev/sda3\t/var\text3\tdefaults\t1 2"), "\(fstab)")
        }
        // Only the new ESP's /boot/efi line mounts anything under /boot.
        #expect(!lines.contains { line in
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            return !line.hasPrefix("#") && (line.contains("VolGroup00") || fields.count > 1 && ["/boot", "/var"].contains(fields[1]))
        })
    }

    /// The output's tree is the root filesystem's with each mounted filesystem at its mount point
    /// (its lost+found left out), apart from the declared repairs.
    @Test(arguments: [LVMGuestLayout.bootPartition, .separateVar, .twoDisks])
    func mergedTreeIsTheSourceFilesystemsTogether(layout: LVMGuestLayout) throws {
        let c = try Self.converted(layout)
        let image = c.fixture.imagePath
        let root = try ExtTreeManifest.read(image: image, offset: c.offset("ROOT_OFFSET"))
        var mounted = [("/boot", try ExtTreeManifest.read(image: image, offset: c.offset("BOOT_OFFSET")))]
        if layout == .separateVar { mounted.append(("/var", try ExtTreeManifest.read(image: image, offset: c.offset("VAR_OFFSET")))) }
        if layout == .twoDisks {
            mounted.append(("/home", try ExtTreeManifest.read(image: c.fixture["DISK2"] ?? "?", offset: c.offset("HOME_OFFSET"))))
        }
        var entries = root.entries
        for (index, (mountPoint, manifest)) in mounted.enumerated() {
            #expect(manifest.entries.count > 3, "\(mountPoint) should hold files")
            entries[mountPoint] = nil
            for (path, var entry) in manifest.entries where path != "/lost+found" && !path.hasPrefix("/lost+found/") {
                entry.path = path == "/" ? mountPoint : mountPoint + path
                entry.inode += UInt32(index + 1) * 1_000_000   // inode numbers of different filesystems are unrelated
                entries[entry.path] = entry
            }
        }
        let expected = ExtTreeManifest(image: image, offset: 0, blockSize: root.blockSize, entries: entries)
        let output = try ExtTreeManifest.read(image: c.disk, offset: c.rootOffset)
        let changed = Set(c.changes.compactMap { $0["path"] as? String })
        #expect(changed.contains("/etc/fstab") && changed.contains("/boot/grub/grub.cfg"), "\(changed)")
        let parents = Set(changed.map { ($0 as NSString).deletingLastPathComponent }).union(mounted.map(\.0))
        let differences = ExtTreeManifest.differences(from: expected, to: output, ignoringTimesOf: parents, ignoringPaths: changed)
            // A mount point loses its lost+found's link, and /boot gains the link of the /boot/grub the repairs create.
            .filter { !($0.property == .linkCount && parents.contains($0.path)) }
        #expect(differences.isEmpty, "undeclared differences:\n\(differences.map(\.description).joined(separator: "\n"))")
        #expect(output.entries.keys.contains { $0.hasPrefix("/boot/vmlinuz-") })
    }

    /// `--swap-file 64M`: /swapfile is root's, mode 0600, 64 MiB with every block allocated (data
    /// and indirect blocks), starts with the page mkswap writes (apart from the UUID), and is in
    /// fstab; its data blocks are holes in the sparse output, not written zeros.
    @Test func swapFileIsCreatedWhenAsked() throws {
        let plain = try Self.converted(.bootPartition)
        #expect(plain.status == 0, "\(plain.stderr)")
        let disk = "\(Self.directory)/swapfile.raw"
        let size: UInt64 = 64 << 20
        let result = try Command.runRehost(["convert", plain.fixture.imagePath, "-o", disk, "--swap-file", "64M", "--json"], asUser: "nobody")
        #expect(result.status == 0, "\(result.stderr)")
        let partition = "\(disk)?offset=\(try DiskPartitions.firstLinuxOffset(disk))"
        let fsck = try Command.run("e2fsck", ["-fn", partition])
        #expect(fsck.status == 0, "e2fsck -fn: \(fsck.stdout)\(fsck.stderr)")

        let stat = try Command.run("debugfs", ["-R", "stat /swapfile", partition]).requireSuccess().stdout
        func field(_ name: String) -> String? {
            let words = stat.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" }).map(String.init)
            return words.firstIndex(of: name + ":").map { words[$0 + 1] }
        }
        #expect(field("Type") == "regular" && field("Mode") == "0600" && field("User") == "0" && field("Group") == "0", "\(stat)")
        #expect(field("Size") == "\(size)", "\(stat)")
        // No holes: the block count is every data block plus the indirect blocks that map them.
        let stats = try Command.run("debugfs", ["-R", "stats", partition]).requireSuccess().stdout
        let blockSize = UInt64(stats.split(separator: "\n").first { $0.hasPrefix("Block size:") }?
            .split(separator: " ").last.map(String.init) ?? "") ?? 0
        #expect(blockSize >= 1024, "\(stats)")
        let perBlock = blockSize / 4
        var rest = Int64(size / blockSize) - 12
        var indirect: UInt64 = 0
        if rest > 0 { indirect += 1; rest -= Int64(perBlock) }
        if rest > 0 {
            let mapped = min(UInt64(rest), perBlock * perBlock)
            indirect += 1 + (mapped + perBlock - 1) / perBlock
            rest -= Int64(perBlock * perBlock)
        }
        #expect(rest <= 0, "the test expects no triple-indirect blocks")
        #expect(field("Blockcount") == "\((size / blockSize + indirect) * blockSize / 512)", "\(stat)")
        #expect(!stat.contains("EXTENTS"), "ext3 maps the swap file through indirect blocks: \(stat)")

        // The whole file reads as swap; its first page is mkswap's, apart from the UUID.
        let dir = try TemporaryDirectory(prefix: "rehost-swapfile")
        let dump = dir.file("swap.dump")
        _ = try Command.run("debugfs", ["-R", "dump /swapfile \(dump)", partition]).requireSuccess()
        let probe = try Command.run("blkid", ["-p", dump]).requireSuccess().stdout
        #expect(probe.contains("TYPE=\"swap\"") && probe.contains("VERSION=\"1\""), "\(probe)")
        let reference = dir.file("mkswap.ref")
        _ = try Command.run("truncate", ["-s", "\(size)", reference]).requireSuccess()
        _ = try Command.run("mkswap", [reference]).requireSuccess()
        let ours = Array(FileManager.default.contents(atPath: dump) ?? Data())
        let theirs = Array(FileManager.default.contents(atPath: reference) ?? Data())
        #expect(ours.count == Int(size) && theirs.count == Int(size))
        let uuid = 1036..<1052
        #expect(ours[0..<4096].enumerated().filter { !uuid.contains($0.offset) }.map(\.element)
                == theirs[0..<4096].enumerated().filter { !uuid.contains($0.offset) }.map(\.element))
        #expect(ours[uuid] != theirs[uuid] && ours[uuid].contains { $0 != 0 })
        #expect(!ours[4096...].contains { $0 != 0 })

        let fstab = try Command.run("debugfs", ["-R", "cat /etc/fstab", partition]).requireSuccess().stdout
        let lines = fstab.split(separator: "\n").map(String.init)
        // Added after the guest's own lines; only the new ESP's line (the fixture boots both ways) follows it.
        #expect(lines.suffix(2).first == "/swapfile\tnone\tswap\tdefaults\t0 0", "\(fstab)")
        #expect(lines.last?.hasSuffix("\t/boot/efi\tvfat\tumask=0077\t0 0") == true, "\(fstab)")
        #expect(lines.contains { $0.hasPrefix("# rehost: /dev/VolGroup00/LogVol01\t") }, "\(fstab)")
        let report = (try? JSONSerialization.jsonObject(with: Data(result.stdoutBytes))) as? [String: Any] ?? [:]
        let changes = report["changes"] as? [[String: Any]] ?? []
        #expect(changes.contains { $0["path"] as? String == "/etc/fstab" && "\($0)".contains("/swapfile") }, "\(changes)")

        // Written sparsely: the output takes little more space than the same guest without swap.
        var withSwap = Glibc.stat(), without = Glibc.stat()
        #expect(lstat(disk, &withSwap) == 0 && lstat(plain.disk, &without) == 0)
        let extra = (Int64(withSwap.st_blocks) - Int64(without.st_blocks)) * 512
        #expect(extra < 8 << 20, "the swap file added \(extra) allocated bytes to the output")
        #expect(withSwap.st_size >= without.st_size + Int(size), "the disk plan counts the swap file")

        // Converting the result again with --swap-file is refused: it has a /swapfile already.
        let again = try Command.runRehost(["convert", disk, "-o", "\(Self.directory)/never.raw", "--swap-file", "64M", "--dry-run"],
                                          asUser: "nobody")
        #expect(again.status == 1 && again.stderr.contains("/swapfile: the guest has this path already"), "\(again.stderr)")
    }

    @Test func swapFileSizeIsChecked() throws {
        let fixture = try Fixture.lvmGuest(.bootPartition)
        for (size, message) in [("5000", "whole number of 4 KiB pages"), ("8K", "at least 10 pages"), ("lots", "expected a size")] {
            let result = try Command.runRehost(["convert", fixture.imagePath, "-o", "/tmp/never.raw", "--swap-file", size], asUser: "nobody")
            #expect(result.status != 0 && result.stderr.contains(message), "\(size): \(result.stderr)")
        }
    }

    @Test(arguments: [(LVMGuestLayout.bootPartition, "ide"), (.separateVar, "virtio")])
    func bootsFromItsOwnDisk(layout: LVMGuestLayout, bus: String) throws {
        let c = try Self.converted(layout)
        let log = "\(Self.directory)/serial-\(layout.rawValue)-\(bus).log"
        let boot = try Command.run("/bin/bash", ["\(Fixture.repositoryRoot)/Fixtures/boot.sh", c.disk, "--format", "raw",
                                                 "--bus", bus, "--log", log, "--timeout", "240"],
                                   timeout: .seconds(300), asUser: "nobody")
        let serial = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(boot.status == 0, "no boot marker on \(bus):\n\(boot.stdout)\(boot.stderr)")
        #expect(serial.contains("REHOST-BOOT-OK"))
        let device = bus == "virtio" ? "/dev/vda3" : "/dev/sda3"
        #expect(serial.contains("root-mount=\(device) / "), "the root should be mounted from \(device), behind the boot partitions")
        #expect(serial.contains("fstab-root=LABEL=/\t/\text3"))
    }
}
