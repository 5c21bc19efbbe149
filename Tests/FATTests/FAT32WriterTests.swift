import Foundation
import ImageCore
import Testing
import TestSupport
@testable import DiskLayout
@testable import FAT

struct ToolFailure: Error, CustomStringConvertible {
    let description: String
}

/// Runs a host tool (dosfstools, mtools, util-linux, gdisk: scripts/install-deps.sh) and returns
/// its stdout; a missing tool or a non-zero status fails the test with the tool's message.
@discardableResult
func run(_ name: String, _ arguments: [String]) throws -> [UInt8] {
    guard let executable = Tool.find(name) else { throw ToolFailure(description: "\(name) is not installed") }
    let result = try Tool.run(executable, arguments)
    guard result.status == 0 else {
        throw ToolFailure(description: "\(name) \(arguments.joined(separator: " ")) exited \(result.status): "
                          + "\(result.stderr) \(String(decoding: result.stdout, as: UTF8.self))")
    }
    return result.stdout
}

func text(_ name: String, _ arguments: [String]) throws -> String {
    String(decoding: try run(name, arguments), as: UTF8.self)
}

/// `fsck.fat -n` (check only, no repairs) must exit 0 and report nothing but its summary line.
func expectClean(_ image: String, _ comment: Comment? = nil) throws {
    let output = try text("fsck.fat", ["-n", image])
    let lines = output.split(separator: "\n").filter { !$0.hasPrefix("fsck.fat ") }
    #expect(lines.count == 1 && lines[0].hasPrefix("\(image): "), "fsck.fat -n: \(output)")
}

/// The fixed inputs of a reproducible ESP.
let fixedDate = Date(timeIntervalSince1970: 1_767_225_600 + 3723) // 2026-01-01 01:02:03 UTC
let fixedVolumeID: UInt32 = 0x1234_ABCD

@Suite struct FAT32WriterTests {
    /// A small ESP as Rehost will write it: EFI/BOOT/BOOTX64.EFI (3 MiB, thousands of clusters),
    /// EFI/debian/grub.cfg (a lower-case 8.3 name: an LFN entry keeps its case).
    @Test func espReadsBackWithFsckMtoolsAndBlkid() throws {
        let scratch = try TemporaryDirectory(prefix: "rehost-fat")
        let image = scratch.file("esp.img")
        var random = SplitMix(seed: 42)
        let loader = random.bytes(3 << 20 | 123)
        let config = Array("search --fs-uuid --set=root 1234-abcd\nconfigfile ($root)/boot/grub/grub.cfg\n".utf8)
        var writer = try FAT32Writer(size: FAT32Writer.defaultESPSize, label: "EFI", volumeID: fixedVolumeID, date: fixedDate)
        try writer.addDirectory("/EFI/BOOT")
        try writer.addFile("/EFI/BOOT/BOOTX64.EFI", bytes: loader)
        try writer.addFile("EFI/debian/grub.cfg", bytes: config)
        try writer.addFile("/EFI/debian/empty", bytes: [])
        #expect(writer.geometry.sectorsPerCluster == 1)
        #expect(writer.geometry.clusterCount >= 65_525)
        try writer.write(to: RawFile(path: image, mode: .createExclusive), at: 0)
        #expect(try RawFile(path: image, mode: .readOnly).size == FAT32Writer.defaultESPSize)

        try expectClean(image)
        let listing = try text("mdir", ["-i", image, "-b", "-/", "::/"]).split(separator: "\n").map(String.init)
        #expect(Set(listing) == ["::/EFI/", "::/EFI/BOOT/", "::/EFI/BOOT/BOOTX64.EFI", "::/EFI/debian/",
                                 "::/EFI/debian/grub.cfg", "::/EFI/debian/empty"], "\(listing)")
        let boot = try text("mdir", ["-i", image, "::/EFI/BOOT"])
        #expect(boot.contains("Volume in drive : is EFI"), "\(boot)")
        #expect(boot.contains("Volume Serial Number is 1234-ABCD"), "\(boot)")
        #expect(boot.contains("BOOTX64  EFI   \(loader.count)"), "\(boot)")
        #expect(boot.contains("2026-01-01   1:02"), "\(boot)")
        #expect(try run("mcopy", ["-i", image, "::/EFI/BOOT/BOOTX64.EFI", "-"]) == loader)
        #expect(try run("mtype", ["-i", image, "::/EFI/debian/grub.cfg"]) == config)
        #expect(try run("mcopy", ["-i", image, "::/efi/debian/EMPTY", "-"]) == [])

        let blkid = try text("blkid", ["-p", "-o", "export", image])
        #expect(blkid.contains("TYPE=vfat") && blkid.contains("VERSION=FAT32"), "\(blkid)")
        #expect(blkid.contains("LABEL=EFI") && blkid.contains("UUID=1234-ABCD"), "\(blkid)")
    }

    /// 300 long names in one directory: 900 entries, dozens of 512-byte directory clusters; names
    /// beyond ASCII and beyond 13 UTF-16 units; aliases with numeric tails.
    @Test func manyLongNamesInOneDirectory() throws {
        let scratch = try TemporaryDirectory(prefix: "rehost-fat")
        let image = scratch.file("many.img")
        var writer = try FAT32Writer(size: 40 << 20, volumeID: fixedVolumeID, date: fixedDate)
        var expected: [String: [UInt8]] = [:]
        for number in 0..<300 {
            let name = "Long file name number \(number).conf"
            expected[name] = Array("file \(number)\n".utf8)
            try writer.addFile("/EFI/many/\(name)", bytes: expected[name]!)
        }
        let unicode = "Grüße, ünïcödé and a name longer than 26 units.txt"
        expected[unicode] = Array("unicode\n".utf8)
        try writer.addFile("/EFI/many/\(unicode)", bytes: expected[unicode]!)
        try writer.write(to: RawFile(path: image, mode: .createExclusive), at: 0)

        try expectClean(image)
        let listing = try text("mdir", ["-i", image, "-b", "::/EFI/many"]).split(separator: "\n").map(String.init)
        #expect(Set(listing) == Set(expected.keys.map { "::/EFI/many/\($0)" }), "\(listing.prefix(5))")
        for name in ["Long file name number 0.conf", "Long file name number 299.conf", unicode] {
            #expect(try run("mcopy", ["-i", image, "::/EFI/many/\(name)", "-"]) == expected[name])
        }
        let aliases = try text("mdir", ["-i", image, "::/EFI/many"])
        #expect(aliases.contains("LONGFI~1 CON"), "\(aliases.prefix(600))")
        #expect(aliases.contains("LONGF~10 CON") && aliases.contains("LONG~300 CON"), "\(aliases.prefix(600))")
    }

    /// 1 GiB: 4 KiB clusters (8 sectors), the data area aligned to them.
    @Test func largerVolumeUsesFourKiBClusters() throws {
        let scratch = try TemporaryDirectory(prefix: "rehost-fat")
        let image = scratch.file("big.img")
        var writer = try FAT32Writer(size: 1 << 30, label: "BIG VOLUME", volumeID: 1, date: fixedDate)
        let bytes = SplitMix(seed: 7).bytesMutating(1 << 20)
        try writer.addFile("/EFI/BOOT/BOOTX64.EFI", bytes: bytes)
        #expect(writer.geometry.sectorsPerCluster == 8)
        #expect(writer.geometry.dataStartSector % 8 == 0)
        try writer.write(to: RawFile(path: image, mode: .createExclusive), at: 0)
        try expectClean(image)
        #expect(try run("mcopy", ["-i", image, "::/EFI/BOOT/BOOTX64.EFI", "-"]) == bytes)
        #expect(try text("blkid", ["-p", "-o", "export", image]).contains(#"LABEL=BIG\ VOLUME"#), "blkid escapes the space")
    }

    @Test func sameInputsGiveTheSameBytes() throws {
        let scratch = try TemporaryDirectory(prefix: "rehost-fat")
        var images: [[UInt8]] = []
        for copy in 0..<2 {
            var writer = try FAT32Writer(size: 33 << 20, label: "SAME", volumeID: fixedVolumeID, date: fixedDate)
            try writer.addFile("/EFI/BOOT/grubx64.efi", bytes: [1, 2, 3])
            let path = scratch.file("same\(copy).img")
            try writer.write(to: RawFile(path: path, mode: .createExclusive), at: 0)
            images.append(try RawFile(path: path, mode: .readOnly).read(count: 33 << 20, at: 0))
        }
        #expect(images[0] == images[1])
    }

    @Test func refusesWhatFAT32CannotHold() throws {
        #expect(throws: FATError.sizeTooSmall(size: 32 << 20, minimum: FAT32Writer.minimumSize)) {
            try FAT32Writer(size: 32 << 20)
        }
        #expect(throws: FATError.self) { try FAT32Writer(size: 40 << 20, label: "lower") }
        var writer = try FAT32Writer(size: 40 << 20)
        try writer.addFile("/EFI/BOOT/BOOTX64.EFI", bytes: [0])
        #expect(throws: FATError.alreadyExists(path: "/efi/boot/bootx64.efi")) {
            try writer.addFile("/efi/boot/bootx64.efi", bytes: [1])
        }
        #expect(throws: FATError.notADirectory(path: "/EFI/BOOT/BOOTX64.EFI/x")) {
            try writer.addFile("/EFI/BOOT/BOOTX64.EFI/x", bytes: [1])
        }
        #expect(throws: FATError.self) { try writer.addFile("/EFI/a:b", bytes: [1]) }
        var full = try FAT32Writer(size: 40 << 20)
        try full.addFile("/huge", bytes: [UInt8](repeating: 1, count: 41 << 20))
        #expect(throws: FATError.self) {
            let scratch = try TemporaryDirectory(prefix: "rehost-fat")
            try full.write(to: RawFile(path: scratch.file("full.img"), mode: .createExclusive), at: 0)
        }
    }

    /// The whole disk of `--firmware both`: GPT with BIOS boot, ESP and root, and the ESP
    /// formatted in place at its partition's offset.
    @Test func espInsideAGPTDisk() throws {
        let scratch = try TemporaryDirectory(prefix: "rehost-fat")
        let disk = scratch.file("disk.raw")
        let gpt = try GPT.make(diskSize: 2 << 30, requests: [
            GPT.Request(type: GPT.PartitionType.biosBoot, name: "BIOS boot", size: 1 << 20),
            GPT.Request(type: GPT.PartitionType.efiSystem, name: "EFI System", size: FAT32Writer.defaultESPSize),
            GPT.Request(type: GPT.PartitionType.linuxFilesystem, name: "root", size: nil),
        ])
        let file = try RawFile(path: disk, mode: .createExclusive)
        try gpt.write(to: file)
        let esp = gpt.partitions[1]
        var writer = try FAT32Writer(size: esp.size, label: "EFI", volumeID: fixedVolumeID, date: fixedDate)
        let loader = SplitMix(seed: 3).bytesMutating(2 << 20)
        try writer.addFile("/EFI/BOOT/BOOTX64.EFI", bytes: loader)
        try writer.addFile("/EFI/debian/grub.cfg", bytes: Array("configfile (hd0,gpt3)/boot/grub/grub.cfg\n".utf8))
        try writer.write(to: file, at: esp.offset)
        #expect(try file.size == 2 << 30)

        #expect(try text("sgdisk", ["-v", disk]).contains("No problems found"))
        #expect(try GPT.read(from: file) == gpt)
        // The boot sector's hidden sectors are the partition's first LBA.
        #expect(try file.read(count: 4, at: esp.offset + 28) == [0x00, 0x10, 0x00, 0x00])
        let probe = try text("blkid", ["-p", "-O", "\(esp.offset)", "-o", "export", disk])
        #expect(probe.contains("TYPE=vfat") && probe.contains("VERSION=FAT32"), "\(probe)")
        #expect(try run("mcopy", ["-i", "\(disk)@@\(esp.offset)", "::/EFI/BOOT/BOOTX64.EFI", "-"]) == loader)
        #expect(try text("mdir", ["-i", "\(disk)@@\(esp.offset)", "-b", "::/EFI/debian"]) == "::/EFI/debian/grub.cfg\n")

        let extracted = scratch.file("esp.img")
        try run("dd", ["if=\(disk)", "of=\(extracted)", "bs=1M", "skip=\(esp.offset >> 20)", "count=\(esp.size >> 20)",
                       "conv=sparse", "status=none"])
        try expectClean(extracted)
    }
}

extension SplitMix {
    /// `bytes(_:)` on a copy, for one-off fixtures.
    func bytesMutating(_ count: Int) -> [UInt8] {
        var copy = self
        return copy.bytes(count)
    }
}
