import Foundation
import ImageCore
import Testing
@testable import DiskLayout

/// GPT as sgdisk, fdisk, blkid and partx read it, and the backup table checked by an independent
/// Python reader (zlib's crc32).
@Suite struct GPTTests {
    static let diskSize: UInt64 = 2 << 30

    /// BIOS boot (1 MiB), ESP (260 MiB), Linux root (the rest), with GUIDs from a counter.
    static func threePartitionTable(diskSize: UInt64 = diskSize) throws -> GPT {
        var counter: UInt8 = 0
        return try GPT.make(diskSize: diskSize, requests: [
            GPT.Request(type: GPT.PartitionType.biosBoot, name: "BIOS boot", size: 1 << 20),
            GPT.Request(type: GPT.PartitionType.efiSystem, name: "EFI System", size: 260 << 20),
            GPT.Request(type: GPT.PartitionType.linuxFilesystem, name: "Linux root", size: nil,
                        attributes: GPT.Attribute.legacyBIOSBootable),
        ], makeGUID: {
            counter += 1
            var guid = [UInt8](repeating: counter, count: 16)
            guid[6] = 0x40 | (counter & 0x0F)
            guid[8] = 0x80 | (counter & 0x3F)
            return guid
        })
    }

    static func writeDisk(_ gpt: GPT, at path: String) throws {
        let file = try RawFile(path: path, mode: .createExclusive)
        try gpt.write(to: file)
    }

    @Test func layoutIsAlignedAndFillsTheDisk() throws {
        let gpt = try Self.threePartitionTable()
        #expect(gpt.diskSectors == 4_194_304)
        #expect(gpt.partitions.map(\.firstLBA) == [2048, 4096, 536_576])
        #expect(gpt.partitions.map(\.sectorCount) == [2048, 532_480, 4_194_304 - 2048 - 536_576])
        #expect(gpt.lastUsableLBA == 4_194_304 - 34)
        #expect(gpt.backupOffset == (4_194_304 - 33) * 512)
        #expect(gpt.primaryBytes().count == 34 * 512)
        #expect(gpt.backupBytes().count == 33 * 512)
        #expect(UUIDBytes.format(gpt.diskGUID) == "01010101-0101-4101-8101-010101010101")
    }

    @Test func sgdiskFindsNoProblemsAndListsTheTypeCodes() throws {
        let scratch = try ScratchDirectory()
        let disk = scratch.file("gpt.raw")
        let gpt = try Self.threePartitionTable()
        try Self.writeDisk(gpt, at: disk)

        let verify = try runTool("sgdisk", ["-v", disk])
        #expect(verify.contains("No problems found"), "sgdisk -v: \(verify)")

        let printed = try runTool("sgdisk", ["-p", disk])
        #expect(printed.contains("Disk identifier (GUID): 01010101-0101-4101-8101-010101010101"), "\(printed)")
        let rows = printed.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
            .filter { $0.count >= 6 && Int($0[0]) != nil }
        // Number Start End Size Unit Code Name...
        #expect(rows.map { [$0[0], $0[1], $0[2], $0[5]] } == [
            ["1", "2048", "4095", "EF02"],
            ["2", "4096", "536575", "EF00"],
            ["3", "536576", "\(4_194_304 - 2049)", "8300"],
        ])
        #expect(rows.map { $0[6...].joined(separator: " ") } == ["BIOS boot", "EFI System", "Linux root"])

        let info = try runTool("sgdisk", ["-i", "3", disk])
        #expect(info.contains("Partition unique GUID: 04040404-0404-4404-8404-040404040404"), "\(info)")
        #expect(info.contains("Attribute flags: 0000000000000004"), "\(info)")
    }

    @Test func fdiskBlkidAndPartxAgree() throws {
        let scratch = try ScratchDirectory()
        let disk = scratch.file("gpt.raw")
        let gpt = try Self.threePartitionTable()
        try Self.writeDisk(gpt, at: disk)

        let fdisk = try runTool("fdisk", ["-l", disk])
        #expect(fdisk.contains("Disklabel type: gpt"), "\(fdisk)")
        #expect(fdisk.contains("Disk identifier: 01010101-0101-4101-8101-010101010101"))
        for (number, partition) in gpt.partitions.enumerated() {
            let row = try #require(fdisk.split(separator: "\n").first { $0.hasPrefix("\(disk)\(number + 1) ") })
            let columns = row.split(separator: " ").map(String.init)
            #expect(Array(columns[1...3]) == ["\(partition.firstLBA)", "\(partition.lastLBA)", "\(partition.sectorCount)"])
        }
        #expect(fdisk.contains("BIOS boot") && fdisk.contains("EFI System") && fdisk.contains("Linux filesystem"))

        let blkid = try runTool("blkid", ["-p", "-o", "export", disk])
        #expect(blkid.contains("PTTYPE=gpt"), "\(blkid)")
        #expect(blkid.contains("PTUUID=01010101-0101-4101-8101-010101010101"))

        let partx = try runTool("partx", ["--show", "-g", "-o", "NR,START,END,SECTORS,TYPE,UUID,NAME", disk])
        let lines = partx.split(separator: "\n").map { $0.split(separator: " ", maxSplits: 6).map(String.init) }
        #expect(lines.count == 3, "\(partx)")
        for (line, partition) in zip(lines, gpt.partitions) {
            #expect(line[1] == "\(partition.firstLBA)" && line[2] == "\(partition.lastLBA)" && line[3] == "\(partition.sectorCount)")
            #expect(line[4] == UUIDBytes.format(partition.type))
            #expect(line[5] == UUIDBytes.format(partition.uniqueGUID))
            #expect(line[6] == partition.name)
        }
    }

    /// The backup header at the last LBA, read by Python with zlib's crc32, not by our code.
    @Test func backupHeaderAtTheLastLBAChecksOutIndependently() throws {
        let scratch = try ScratchDirectory()
        let disk = scratch.file("gpt.raw")
        let gpt = try Self.threePartitionTable()
        try Self.writeDisk(gpt, at: disk)
        let script = """
        import struct, sys, zlib
        path = sys.argv[1]
        f = open(path, 'rb'); f.seek(0, 2); sectors = f.tell() // 512
        def header(lba):
            f.seek(lba * 512); h = f.read(512)
            sig, rev, size, crc, _, my, alt, first, last, guid, elba, n, esz, ecrc = struct.unpack('<8sIIIIQQQQ16sQIII', h[:92])
            z = h[:16] + b'\\0\\0\\0\\0' + h[20:92]
            assert sig == b'EFI PART' and rev == 0x10000 and size == 92, (sig, rev, size)
            assert crc == zlib.crc32(z), 'header crc'
            assert h[92:] == bytes(420), 'header tail'
            f.seek(elba * 512); entries = f.read(n * esz)
            assert ecrc == zlib.crc32(entries), 'entries crc'
            return my, alt, first, last, guid, elba, n, esz, entries
        p = header(1)
        b = header(sectors - 1)
        assert p[0] == 1 and p[1] == sectors - 1 and p[5] == 2, p[:6]
        assert b[0] == sectors - 1 and b[1] == 1 and b[5] == sectors - 33, b[:6]
        assert p[2:5] == b[2:5] and p[6:] == b[6:]
        assert p[2] == 34 and p[3] == sectors - 34 and p[6] == 128 and p[7] == 128
        print('ok', sectors, p[3])
        """
        let scriptPath = scratch.file("check.py")
        try script.write(toFile: scriptPath, atomically: true, encoding: .utf8)
        let output = try runTool("python3", [scriptPath, disk])
        #expect(output == "ok \(gpt.diskSectors) \(gpt.diskSectors - 34)\n")
    }

    @Test func readBackRoundTripsAndCatchesCorruption() throws {
        let scratch = try ScratchDirectory()
        let disk = scratch.file("gpt.raw")
        var gpt = try Self.threePartitionTable()
        gpt.bootCode = (0..<MBR.bootCodeSize).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        try Self.writeDisk(gpt, at: disk)
        let file = try RawFile(path: disk, mode: .readWrite)
        #expect(try GPT.read(from: file) == gpt)
        // The boot code area is carried; sgdisk still sees a valid protective MBR.
        #expect(try file.read(count: MBR.bootCodeSize, at: 0) == gpt.bootCode)
        #expect(try runTool("sgdisk", ["-v", disk]).contains("No problems found"))

        // One flipped bit in the backup entry array: the entry CRC of the backup header says so.
        let offset = gpt.backupOffset + 128 * 2 + 40
        let byte = try file.read(count: 1, at: offset)[0]
        try file.write([byte ^ 1], at: offset)
        #expect(throws: DiskLayoutError.self) { try GPT.read(from: file) }
        do {
            _ = try GPT.read(from: file)
        } catch let error as DiskLayoutError {
            guard case let .gptBadHeader(_, lba, field, _, _, _) = error else { Issue.record("\(error)"); return }
            #expect(lba == gpt.diskSectors - 1 && field == "entry array CRC32")
        }
        let verify = try Tool.run(try #require(Tool.find("sgdisk")), ["-v", disk])
        #expect(!String(decoding: verify.stdout, as: UTF8.self).contains("No problems found"))
    }

    /// Past 2 TiB, the protective MBR's 0xEE entry stops at 2^32 - 1 sectors.
    @Test func protectiveMBRIsCappedOnAHugeDisk() throws {
        let scratch = try ScratchDirectory()
        let disk = scratch.file("huge.raw")
        let gpt = try Self.threePartitionTable(diskSize: 3 << 40)
        try Self.writeDisk(gpt, at: disk)
        let mbr = try MBR.decode(gpt.protectiveMBR())
        let entry = try #require(mbr.partitions[0])
        #expect(entry.type == 0xEE && entry.firstLBA == 1 && entry.sectorCount == UInt32.max && !entry.bootable)
        #expect(try runTool("sgdisk", ["-v", disk]).contains("No problems found"))
        #expect(try GPT.read(from: RawFile(path: disk, mode: .readOnly)) == gpt)
    }

    @Test func sameGUIDsGiveTheSameBytes() throws {
        #expect(try Self.threePartitionTable().primaryBytes() == Self.threePartitionTable().primaryBytes())
        #expect(try Self.threePartitionTable().backupBytes() == Self.threePartitionTable().backupBytes())
        let random = try GPT.make(diskSize: Self.diskSize, requests: [
            GPT.Request(type: GPT.PartitionType.linuxFilesystem, name: "root", size: nil)])
        #expect(random.diskGUID != random.partitions[0].uniqueGUID)
    }

    @Test func refusesWhatDoesNotFit() throws {
        #expect(throws: DiskLayoutError.self) {
            try GPT.make(diskSize: 64 << 20, requests: [
                GPT.Request(type: GPT.PartitionType.efiSystem, name: "ESP", size: 260 << 20)])
        }
        #expect(throws: DiskLayoutError.self) {
            try GPT(diskSectors: 8192, partitions: [
                GPTPartition(type: GPT.PartitionType.linuxFilesystem, firstLBA: 2048, lastLBA: 8192)])
        }
        #expect(throws: DiskLayoutError.self) {
            try GPT(diskSectors: 8192, partitions: [
                GPTPartition(type: GPT.PartitionType.linuxFilesystem, firstLBA: 2048, lastLBA: 4095),
                GPTPartition(type: GPT.PartitionType.linuxSwap, firstLBA: 4095, lastLBA: 5000)])
        }
        #expect(throws: DiskLayoutError.self) {
            try GPT(diskSectors: 8192, partitions: [
                GPTPartition(type: GPT.PartitionType.linuxFilesystem, firstLBA: 2048, lastLBA: 4095,
                             name: String(repeating: "x", count: 37))])
        }
    }

    /// `--firmware both`: boot.img in the protective MBR's code area, core.img (with part_gpt)
    /// in the BIOS boot partition; the GPT stays valid.
    @Test func grubEmbedsIntoTheBIOSBootPartition() throws {
        let scratch = try ScratchDirectory()
        let disk = scratch.file("both.raw")
        let gpt = try Self.threePartitionTable()
        let biosBoot = gpt.partitions[0]
        let core = try GrubCoreImage.build(prefix: "(hd0,gpt3)/boot/grub", extraModules: ["part_gpt"])
        let (mbr, coreBytes) = try BiosBootInstaller.embed(bootImage: GrubBootImage.load(), coreImage: core,
                                                           protectiveMBR: gpt.protectiveMBR(), biosBootPartition: biosBoot)
        #expect(mbr.loadLE(UInt64.self, at: BiosBootInstaller.kernelSectorOffset) == biosBoot.firstLBA)
        #expect(Array(mbr[MBR.diskSignatureOffset...]) == Array(gpt.protectiveMBR()[MBR.diskSignatureOffset...]))
        #expect(coreBytes.loadLE(UInt64.self, at: 500) == biosBoot.firstLBA + 1)
        #expect(UInt64(coreBytes.loadLE(UInt16.self, at: 508)) == UInt64(coreBytes.count / 512) - 1)

        let file = try RawFile(path: disk, mode: .createExclusive)
        var withBootCode = gpt
        withBootCode.bootCode = Array(mbr[0..<MBR.bootCodeSize])
        try withBootCode.write(to: file)
        #expect(try file.read(count: 512, at: 0) == mbr)
        try file.write(coreBytes, at: biosBoot.offset)
        #expect(try runTool("sgdisk", ["-v", disk]).contains("No problems found"))
        #expect(try GPT.read(from: file).bootCode == withBootCode.bootCode)

        let tooSmall = GPTPartition(type: GPT.PartitionType.biosBoot, firstLBA: 2048, lastLBA: 2048 + 8)
        #expect(throws: DiskLayoutError.self) {
            try BiosBootInstaller.embed(bootImage: GrubBootImage.load(), coreImage: core,
                                        protectiveMBR: gpt.protectiveMBR(), biosBootPartition: tooSmall)
        }
    }
}
