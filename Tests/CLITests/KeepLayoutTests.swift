import Foundation
import Testing
import TestSupport

/// `convert --keep-layout` on the LVM2 guest with /boot on partition 1, / in VolGroup00, /var on
/// partition 3 and a 16 MiB swap LV: the output has /boot, /, /var and swap as four primary
/// partitions, each read back with util-linux, e2fsprogs and blkid, compared with its source,
/// and booted in qemu on IDE and virtio. `--swap-partition` on the plain Xen fixture. All on MBR
/// disks (`--firmware bios`), whose four primary partitions are the limit these tests reach; the
/// kept layout behind GPT boot partitions is FirmwareBootTests'.
@Suite(.serialized)
struct KeepLayoutTests {
    static let directory = "/tmp/rehost-keep-layout-test"
    static let lock = NSLock()
    nonisolated(unsafe) static var shared: (fixture: FixtureImage, disk: String, result: CommandResult)?

    struct Partition {
        var number: Int
        var mountPoint: String
        var start: UInt64
        var size: UInt64
        var uuid: String

        /// The partition's filesystem, as e2fsprogs open it inside the disk.
        func image(_ disk: String) -> String { "\(disk)?offset=\(start)" }
    }

    static func converted() throws -> (fixture: FixtureImage, disk: String, result: CommandResult) {
        lock.lock()
        defer { lock.unlock() }
        if let shared { return shared }
        let fixture = try Fixture.lvmGuest(.separateVar)
        try? FileManager.default.removeItem(atPath: directory)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o777])
        let disk = "\(directory)/keep-layout.raw"
        let result = try Command.runRehost(["convert", fixture.imagePath, "-o", disk, "--keep-layout", "--firmware", "bios", "--json"], asUser: "nobody")
        shared = (fixture, disk, result)
        return (fixture, disk, result)
    }

    static func json(_ result: CommandResult) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(result.stdoutBytes))) as? [String: Any] ?? [:]
    }

    /// The partitions as the JSON report lists them.
    static func partitions(_ report: [String: Any]) -> [Partition] {
        (report["partitions"] as? [[String: Any]] ?? []).map { p in
            Partition(number: p["number"] as? Int ?? 0, mountPoint: p["mountPoint"] as? String ?? "?",
                      start: (p["start"] as? NSNumber)?.uint64Value ?? 0, size: (p["size"] as? NSNumber)?.uint64Value ?? 0,
                      uuid: p["uuid"] as? String ?? "?")
        }
    }

    /// `sfdisk --dump`'s partition lines, blanks removed: `start=2048,size=655360,type=83,bootable`.
    static func sfdiskRows(_ disk: String) throws -> [String] {
        let dump = try Command.run("sfdisk", ["--dump", disk]).requireSuccess().stdout
        return dump.split(separator: "\n").filter { $0.hasPrefix(disk) }.map { row in
            row.split(separator: ":", maxSplits: 1).last.map { $0.filter { $0 != " " } } ?? ""
        }
    }

    /// The fstab lines the report says the repairs wrote.
    static func fstabLinesWritten(_ report: [String: Any]) -> [String] {
        (report["changes"] as? [[String: Any]] ?? []).filter { $0["path"] as? String == "/etc/fstab" }
            .flatMap { ($0["lines"] as? [[String: Any]] ?? []).compactMap { $0["after"] as? String } }
    }

    static func debugfs(_ request: String, _ image: String) throws -> String {
        try Command.run("debugfs", ["-R", request, image]).requireSuccess().stdout
    }

    /// The first page of a swap area at `offset` of `disk` must be what mkswap writes for `size`
    /// bytes, apart from the UUID; blkid must see swap there with `uuid`.
    static func expectSwap(disk: String, offset: UInt64, size: UInt64, uuid: String) throws {
        let probe = try Command.run("blkid", ["-p", "-O", "\(offset)", disk]).requireSuccess().stdout
        #expect(probe.contains("TYPE=\"swap\"") && probe.contains("VERSION=\"1\"") && probe.contains("UUID=\"\(uuid)\""), "\(probe)")
        let scratch = try TemporaryDirectory(prefix: "rehost-swap-partition")
        let reference = scratch.file("mkswap.ref")
        _ = try Command.run("truncate", ["-s", "\(size)", reference]).requireSuccess()
        _ = try Command.run("mkswap", [reference]).requireSuccess()
        let handle = try #require(FileHandle(forReadingAtPath: disk))
        try handle.seek(toOffset: offset)
        let ours = Array(try handle.read(upToCount: 8192) ?? Data())
        let theirs = Array(FileManager.default.contents(atPath: reference)?.prefix(8192) ?? Data())
        let uuidRange = 1036..<1052
        #expect(ours.count == 8192 && theirs.count == 8192)
        #expect(ours.enumerated().filter { !uuidRange.contains($0.offset) }.map(\.element)
                == theirs.enumerated().filter { !uuidRange.contains($0.offset) }.map(\.element))
    }

    @Test func fourPartitionsInTheTableAndTheReport() throws {
        let (fixture, disk, result) = try Self.converted()
        #expect(result.status == 0, "rehost convert --keep-layout failed: \(result.stderr)")
        let report = Self.json(result)
        let partitions = Self.partitions(report)
        #expect(partitions.map(\.mountPoint) == ["/boot", "/", "/var", "swap"])
        #expect(partitions.map(\.number) == [1, 2, 3, 4])
        // Each filesystem keeps its source's UUID; the swap area gets a new one.
        #expect(Array(partitions.map(\.uuid).prefix(3)) == [fixture["BOOT_UUID"], fixture["ROOT_UUID"], fixture["VAR_UUID"]].map { $0 ?? "" })
        #expect(partitions.last?.size == 16 << 20, "the swap LV's size")
        #expect((report["rootReference"] as? String) == "LABEL=/")

        let rows = try Self.sfdiskRows(disk)
        #expect(rows == partitions.enumerated().map { index, p in
            "start=\(p.start / 512),size=\(p.size / 512),type=\(index == 3 ? "82" : "83")\(index == 0 ? ",bootable" : "")"
        })
        for p in partitions {
            #expect(p.start % (1 << 20) == 0 && p.size % (1 << 20) == 0, "\(p.mountPoint) is not MiB-aligned")
        }
        for (earlier, later) in zip(partitions, partitions.dropFirst()) { #expect(earlier.start + earlier.size <= later.start) }

        let text = try Command.runRehost(["convert", fixture.imagePath, "-o", "\(Self.directory)/never.raw", "--keep-layout", "--firmware", "bios", "--dry-run"],
                                         asUser: "nobody").requireSuccess().stdout
        #expect(text.contains("  partition 1:  /boot at 1 MiB, 320 MiB, bootable, type 0x83, ext3 UUID \(fixture["BOOT_UUID"] ?? "?"), label \"/boot\""), "\(text)")
        #expect(text.contains("  partition 4:  swap at 961 MiB, 16 MiB, type 0x82, swap UUID "), "\(text)")
        #expect(text.contains("/var from /dev/sda3 = partition 3: ext3, label \"\", 8.8 MiB used of 96 MiB; kept as partition 3"), "\(text)")
    }

    /// Every filesystem is clean and holds its source's tree, apart from the declared repairs;
    /// fstab names each by the root's rule (LABEL= when the label is safe, else UUID=).
    /// The disk digest, taken while four filesystems and a swap area were written into one file,
    /// is what an independent reader computes over the finished disk.
    @Test func theReportedDiskDigestIsTheFinishedDisks() throws {
        let (_, disk, result) = try Self.converted()
        let outputs = Self.json(result)["outputs"] as? [[String: Any]] ?? []
        let independent = try Command.run("/usr/bin/python3", ["\(Fixture.repositoryRoot)/Tests/Tools/blk-sha256.py", disk]).requireSuccess()
        #expect(outputs.first?["diskDigest"] as? String == String(independent.stdout.prefix(64)))
    }

    @Test func eachFilesystemIsCleanAndItsSourcesCopy() throws {
        let (fixture, disk, result) = try Self.converted()
        let report = Self.json(result)
        let partitions = Self.partitions(report).filter { $0.mountPoint != "swap" }
        try #require(partitions.count == 3)
        let changed = Set((report["changes"] as? [[String: Any]] ?? []).compactMap { $0["path"] as? String })
        #expect(changed.contains("/etc/fstab") && changed.contains("/boot/grub/grub.cfg"), "\(changed)")
        let sources = ["/boot": "BOOT_OFFSET", "/": "ROOT_OFFSET", "/var": "VAR_OFFSET"]
        for p in partitions {
            let fsck = try Command.run("e2fsck", ["-fn", p.image(disk)])
            #expect(fsck.status == 0, "e2fsck -fn \(p.mountPoint): \(fsck.stdout)\(fsck.stderr)")
            let stats = try Self.debugfs("stats", p.image(disk))
            #expect(stats.contains("Filesystem UUID:          \(p.uuid)"), "\(p.mountPoint)")
            #expect(stats.contains("has_journal") && !stats.contains("extent"), "\(p.mountPoint) should be ext3")

            // The changed paths as this filesystem sees them.
            let inside: Set<String> = Set(changed.compactMap { path in
                if p.mountPoint == "/" { return partitions.contains { $0.mountPoint != "/" && path.hasPrefix($0.mountPoint + "/") } ? nil : path }
                return path.hasPrefix(p.mountPoint + "/") ? String(path.dropFirst(p.mountPoint.count)) : nil
            })
            let source = try ExtTreeManifest.read(image: fixture.imagePath, offset: UInt64(fixture[sources[p.mountPoint] ?? ""] ?? "") ?? 0)
            let output = try ExtTreeManifest.read(image: disk, offset: p.start)
            #expect(source.entries.count > 3, "\(p.mountPoint) should hold files")
            let parents = Set(inside.map { ($0 as NSString).deletingLastPathComponent })
            let differences = ExtTreeManifest.differences(from: source, to: output, ignoringTimesOf: parents, ignoringPaths: inside)
                .filter { !($0.property == .linkCount && parents.contains($0.path)) }
            #expect(differences.isEmpty, "\(p.mountPoint): undeclared differences:\n\(differences.map(\.description).joined(separator: "\n"))")
        }

        let root = try #require(partitions.first { $0.mountPoint == "/" })
        let fstab = try Self.debugfs("cat /etc/fstab", root.image(disk)).split(separator: "\n").map(String.init)
        let swapUUID = Self.partitions(report).last?.uuid ?? "?"
        #expect(fstab.contains("LABEL=/\t/\text3\tdefaults\t1 1"), "\(fstab)")
        #expect(fstab.contains("LABEL=/boot\t/boot\text3\tdefaults\t1 2"), "\(fstab)")
        #expect(fstab.contains("UUID=\(fixture["VAR_UUID"] ?? "?")\t/var\text3\tdefaults\t1 2"), "\(fstab)")
        #expect(fstab.contains("# rehost: UUID=11111111-2222-4333-8444-555555555555\tswap\tswap\tdefaults\t0 0"), "\(fstab)")
        #expect(fstab.last == "UUID=\(swapUUID)\tswap\tswap\tdefaults\t0 0", "\(fstab)")
        #expect(!fstab.contains { !$0.hasPrefix("#") && ($0.contains("VolGroup00") || $0.contains("/dev/sd")) }, "\(fstab)")
        #expect(!fstab.contains { $0.hasPrefix("# rehost: merged") }, "\(fstab)")
    }

    /// /boot is its own filesystem: GRUB's files are at /grub there, and name the kernel and
    /// initrd relative to it; root= names the root partition's label.
    @Test func grubConfigurationIsRelativeToBoot() throws {
        let (_, disk, result) = try Self.converted()
        let boot = try #require(Self.partitions(Self.json(result)).first)
        let native = try Self.debugfs("cat /grub/grub.cfg", boot.image(disk))
        let legacy = try Self.debugfs("cat /grub/grub.conf", boot.image(disk))
        #expect(native.contains("(prefix (hd0,msdos1)/grub)"), "\(native)")
        #expect(native.contains("\tlinux /vmlinuz-") && native.contains("\tinitrd /initrd-") && native.contains(" root=LABEL=/ "), "\(native)")
        #expect(legacy.contains("\tkernel /vmlinuz-") && legacy.contains("\tinitrd /initrd-") && legacy.contains("\troot (hd0,0)"), "\(legacy)")
        let commands = (native + legacy).split(separator: "\n").filter { !$0.hasPrefix("#") }
        #expect(!commands.contains { $0.contains("/boot/") }, "paths must be relative to /boot: \(commands)")
        let listing = try Self.debugfs("ls -l /", boot.image(disk))
        #expect(listing.contains("vmlinuz-") && listing.contains("grub"), "\(listing)")
    }

    @Test func swapPartitionHasMkswapsHeader() throws {
        let (_, disk, result) = try Self.converted()
        let swap = try #require(Self.partitions(Self.json(result)).last)
        #expect(swap.mountPoint == "swap")
        try Self.expectSwap(disk: disk, offset: swap.start, size: swap.size, uuid: swap.uuid)
    }

    /// `--root-ref device` names every partition by its device; `--no-swap` leaves the swap out;
    /// conflicting swap options are refused.
    @Test func deviceReferencesNoSwapAndRefusals() throws {
        let fixture = try Fixture.lvmGuest(.separateVar)
        let never = "\(Self.directory)/never.raw"
        let device = try Command.runRehost(["convert", fixture.imagePath, "-o", never, "--keep-layout", "--firmware", "bios", "--root-ref", "device",
                                            "--no-swap", "--dry-run", "--json"], asUser: "nobody").requireSuccess()
        let report = Self.json(device)
        #expect(report["rootReference"] as? String == "/dev/vda2")
        #expect(Self.partitions(report).map(\.mountPoint) == ["/boot", "/", "/var"])
        let written = Self.fstabLinesWritten(report)
        #expect(written.contains("/dev/vda2\t/\text3\tdefaults\t1 1"), "\(written)")
        #expect(written.contains("/dev/vda1\t/boot\text3\tdefaults\t1 2"), "\(written)")
        #expect(written.contains("/dev/vda3\t/var\text3\tdefaults\t1 2"), "\(written)")
        #expect(written.contains("# rehost: UUID=11111111-2222-4333-8444-555555555555\tswap\tswap\tdefaults\t0 0"), "\(written)")
        #expect(!written.contains { !$0.hasPrefix("#") && $0.contains("\tswap\t") }, "no swap line is added: \(written)")

        for (arguments, message) in [
            (["--swap-file", "64M", "--swap-partition", "64M"], "--swap-file and --swap-partition: choose one place for swap"),
            (["--no-swap"], "--no-swap: only --keep-layout recreates the guest's swap"),
            (["--swap-partition", "5000"], "whole number of 4 KiB pages"),
        ] {
            let refused = try Command.runRehost(["convert", fixture.imagePath, "-o", never] + arguments, asUser: "nobody")
            #expect(refused.status != 0 && refused.stderr.contains(message), "\(arguments): \(refused.stderr)")
        }
    }

    /// A root without the /var directory still gets one: the guest could not mount /var otherwise.
    @Test func missingMountPointIsMade() throws {
        let fixture = try Fixture.lvmGuest(.separateVar)
        _ = try Self.converted()   // makes the directory
        let input = "\(Self.directory)/no-var-dir.img", disk = "\(Self.directory)/no-var-dir.raw"
        _ = try Command.run("cp", ["--sparse=always", fixture.imagePath, input]).requireSuccess()
        let root = "\(input)?offset=\(fixture["ROOT_OFFSET"] ?? "?")"
        _ = try Command.run("debugfs", ["-w", "-R", "rmdir /var", root]).requireSuccess()
        #expect(try Self.debugfs("stat /var", root).isEmpty)
        _ = try Command.run("chmod", ["644", input]).requireSuccess()
        let result = try Command.runRehost(["convert", input, "-o", disk, "--keep-layout", "--firmware", "bios", "--no-swap", "--json"], asUser: "nobody")
        #expect(result.status == 0, "\(result.stderr)")
        let made = try #require(Self.partitions(Self.json(result)).first { $0.mountPoint == "/" })
        let stat = try Self.debugfs("stat /var", made.image(disk))
        #expect(stat.contains("Type: directory") && stat.contains("Mode:  0755"), "\(stat)")
        let fsck = try Command.run("e2fsck", ["-fn", made.image(disk)])
        #expect(fsck.status == 0, "e2fsck -fn: \(fsck.stdout)\(fsck.stderr)")
    }

    /// Cloned filesystems: /var with the root's UUID and /boot's label. Its copy gets a new UUID
    /// (with a warning), and neither /boot nor /var is named by the shared label.
    @Test func clonedFilesystemsGetDistinctNames() throws {
        let fixture = try Fixture.lvmGuest(.separateVar)
        _ = try Self.converted()   // makes the directory
        let input = "\(Self.directory)/cloned.img"
        _ = try Command.run("cp", ["--sparse=always", fixture.imagePath, input]).requireSuccess()
        let variable = "\(input)?offset=\(fixture["VAR_OFFSET"] ?? "?")"
        let rootUUID = fixture["ROOT_UUID"] ?? "?", bootUUID = fixture["BOOT_UUID"] ?? "?"
        _ = try Command.run("debugfs", ["-w", "-R", "ssv uuid \(rootUUID)", variable]).requireSuccess()
        _ = try Command.run("debugfs", ["-w", "-R", "ssv volume_name /boot", variable]).requireSuccess()
        #expect(try Self.debugfs("stats", variable).contains("Filesystem UUID:          \(rootUUID)"))
        _ = try Command.run("chmod", ["644", input]).requireSuccess()
        let result = try Command.runRehost(["convert", input, "-o", "\(Self.directory)/never.raw", "--keep-layout", "--firmware", "bios", "--dry-run", "--json"],
                                           asUser: "nobody")
        #expect(result.status == 0, "\(result.stderr)")
        let report = Self.json(result)
        let partitions = Self.partitions(report)
        let variableUUID = partitions.first { $0.mountPoint == "/var" }?.uuid ?? "?"
        #expect(partitions.map(\.uuid).prefix(2) == [bootUUID, rootUUID] && variableUUID != rootUUID && variableUUID.count == 36)
        let warnings = report["warnings"] as? [String] ?? []
        #expect(warnings.contains("/var has the UUID of another filesystem of the guest; its copy gets a new one, \(variableUUID)"), "\(warnings)")
        let written = Self.fstabLinesWritten(report)
        #expect(written.contains("LABEL=/\t/\text3\tdefaults\t1 1"), "\(written)")
        // The guest's own line, UUID=... /boot, stays as it is (without the clone it becomes LABEL=/boot).
        #expect(!written.contains { $0.contains("/boot") }, "\(written)")
        #expect(written.contains("UUID=\(variableUUID)\t/var\text3\tdefaults\t1 2"), "\(written)")
    }

    @Test func swapPartitionOnThePlainXenFixture() throws {
        let fixture = try Fixture.xenInstance()
        let disk = "\(Self.directory)/xen-swap.raw"
        _ = try Self.converted()   // makes the directory
        let result = try Command.runRehost(["convert", fixture.imagePath, "-o", disk, "--swap-partition", "64M", "--firmware", "bios", "--json"], asUser: "nobody")
        #expect(result.status == 0, "\(result.stderr)")
        let partitions = Self.partitions(Self.json(result))
        #expect(partitions.map(\.mountPoint) == ["/", "swap"])
        try #require(partitions.count == 2)
        let (root, swap) = (partitions[0], partitions[1])
        #expect(swap.size == 64 << 20 && swap.start == root.start + root.size)
        #expect(try Self.sfdiskRows(disk) == ["start=2048,size=\(root.size / 512),type=83,bootable",
                                              "start=\(swap.start / 512),size=131072,type=82"])
        let fsck = try Command.run("e2fsck", ["-fn", root.image(disk)])
        #expect(fsck.status == 0, "e2fsck -fn: \(fsck.stdout)\(fsck.stderr)")
        try Self.expectSwap(disk: disk, offset: swap.start, size: swap.size, uuid: swap.uuid)
        let fstab = try Self.debugfs("cat /etc/fstab", root.image(disk)).split(separator: "\n").map(String.init)
        #expect(fstab.last?.hasPrefix("UUID=\(swap.uuid)") == true, "\(fstab)")
        #expect(fstab.last?.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst() == ["swap", "swap", "defaults", "0", "0"], "\(fstab)")
        let grub = try Self.debugfs("cat /boot/grub/grub.cfg", root.image(disk))
        #expect(grub.contains("\tlinux /boot/vmlinuz-"), "one filesystem: GRUB paths keep /boot")
    }

    @Test(arguments: ["ide", "virtio"])
    func bootsWithSeparateBootAndRootOnPartition2(bus: String) throws {
        let (_, disk, result) = try Self.converted()
        #expect(result.status == 0, "\(result.stderr)")
        let log = "\(Self.directory)/serial-\(bus).log"
        let boot = try Command.run("/bin/bash", ["\(Fixture.repositoryRoot)/Fixtures/boot.sh", disk, "--format", "raw",
                                                 "--bus", bus, "--log", log, "--timeout", "240"],
                                   timeout: .seconds(300), asUser: "nobody")
        let serial = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(boot.status == 0, "no boot marker on \(bus):\n\(boot.stdout)\(boot.stderr)")
        #expect(serial.contains("REHOST-BOOT-OK"))
        // GRUB read the kernel from partition 1 (/boot) by a path relative to it, and the kernel
        // mounted the root from partition 2.
        #expect(serial.contains("cmdline=BOOT_IMAGE=/vmlinuz-"), "\(serial.suffix(2000))")
        let device = bus == "virtio" ? "/dev/vda2" : "/dev/sda2"
        #expect(serial.contains("root-mount=\(device) / "), "the root should be mounted from \(device)")
        #expect(serial.contains("fstab-root=LABEL=/\t/\text3"))
    }
}
