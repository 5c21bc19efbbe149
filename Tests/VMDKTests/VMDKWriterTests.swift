import Foundation
import ImageCore
import ImageFormats
import Testing
import TestSupport

/// Both subformats against qemu-img, and streamOptimized's structure decoded with our own reader.
@Suite struct VMDKWriterTests {
    static let mebibyte: UInt64 = 1 << 20

    @Test(arguments: [
        (WriterOptions.VMDKSubformat.streamOptimized, WriterOptions.VMDKAdapter.lsilogic),
        (.streamOptimized, .ide), (.monolithicSparse, .lsilogic), (.monolithicSparse, .ide),
    ])
    func qemuReadsTheSameDisk(subformat: WriterOptions.VMDKSubformat, adapter: WriterOptions.VMDKAdapter) throws {
        let converted = try convert(size: 72 * Self.mebibyte, options: options(subformat, adapter))
        try expectQemuAccepts(converted, createType: subformat.rawValue)
        let reader = try VMDKFileReader(path: converted.vmdkPath)
        #expect(reader.descriptor.database["ddb.adapterType"] == adapter.rawValue)
        let heads: UInt64 = adapter == .ide ? 16 : 255
        #expect(reader.descriptor.database["ddb.geometry.heads"] == String(heads))
        #expect(reader.descriptor.database["ddb.geometry.sectors"] == "63")
        // 72 MiB = 147456 sectors: 9 cylinders of 255 x 63 (16065 sectors), or 146 of 16 x 63.
        #expect(reader.descriptor.database["ddb.geometry.cylinders"] == (adapter == .ide ? "146" : "9"))
    }

    /// Not a multiple of the grain (64 KiB) nor of a grain table (32 MiB): the last grain is partial.
    @Test(arguments: WriterOptions.VMDKSubformat.allCases)
    func oddSize(subformat: WriterOptions.VMDKSubformat) throws {
        let size = 41 * Self.mebibyte + 3 * 512
        let converted = try convert(size: size, options: options(subformat), seed: 3)
        try expectQemuAccepts(converted, createType: subformat.rawValue)
        let reader = try VMDKFileReader(path: converted.vmdkPath)
        #expect(reader.header.capacity == size / 512)
        #expect(reader.descriptor.extents.first?.sectors == size / 512)
    }

    /// A 5 GiB sparse disk: sector numbers past 2^32 bytes, data near the end.
    @Test(arguments: WriterOptions.VMDKSubformat.allCases)
    func largerThanFourGiB(subformat: WriterOptions.VMDKSubformat) throws {
        let size = 5 << 30 as UInt64
        let converted = try convert(size: size, options: options(subformat), seed: 5)
        try expectQemuAccepts(converted, createType: subformat.rawValue)
        // The last grain (holding the text in the last sector) and the grain at 4 GiB, found
        // through the grain directory and tables with our own reader.
        let reader = try VMDKFileReader(path: converted.vmdkPath)
        let lastGrain = (size - 1) / 65536
        let expected = try rawBytes(converted, count: 65536, at: lastGrain * 65536)
        #expect(try reader.grain(lastGrain) == expected)
        // SyntheticDisk puts 64 KiB of random data 4 KiB into every size/16 step from 8 MiB.
        let beyondFourGiB = (8 << 20) + 13 * (size / 16)
        #expect(beyondFourGiB > 1 << 32)
        let rawBeyond = try rawBytes(converted, count: 65536, at: beyondFourGiB)
        #expect(rawBeyond.contains { $0 != 0 })
        #expect(try reader.grain(beyondFourGiB / 65536) == rawBeyond)
        #expect(try reader.grain(beyondFourGiB / 65536 - 1) == nil)
        #expect(expected.contains { $0 != 0 })
    }

    @Test func streamIsWrittenSequentially() throws {
        let converted = try convert(size: 40 * Self.mebibyte, options: options(.streamOptimized), digest: true)
        let streamed = try #require(converted.streamedDigest)
        let sum = try Command.run("sha256sum", [converted.vmdkPath]).requireSuccess()
        #expect(sum.stdout.split(separator: " ").first.map(String.init) == streamed)
        #expect(converted.summary.fileSize == (try RawFile(path: converted.vmdkPath, mode: .readOnly).size))
    }

    @Test func streamStructure() throws {
        var options = options(.streamOptimized)
        options.vmdkCID = 0x1234_abcd
        options.uuid = Array(0..<16)
        let size = 72 * Self.mebibyte + 512
        let converted = try convert(size: size, options: options, seed: 7)
        let reader = try VMDKFileReader(path: converted.vmdkPath)
        let header = reader.header
        #expect(header.version == 3)
        #expect(header.flags.rawValue == 0x0003_0001)
        #expect(header.compressAlgorithm == 1)
        #expect(header.gdOffset == 0xFFFF_FFFF_FFFF_FFFF)
        #expect(header.grainSize == 128)
        #expect(header.numGTEsPerGT == 512)
        #expect(header.capacity == size / 512)
        #expect(header.descriptorOffset == 1)
        #expect(header.descriptorSize >= 1)
        #expect(header.overHead >= header.descriptorOffset + header.descriptorSize)
        #expect(header.rgdOffset == 0)

        // Descriptor.
        let descriptor = reader.descriptor
        #expect(reader.descriptorText.hasPrefix("# Disk DescriptorFile\n"))
        #expect(descriptor.fields["version"] == "1")
        #expect(descriptor.fields["CID"] == "1234abcd")
        #expect(descriptor.fields["parentCID"] == "ffffffff")
        #expect(descriptor.fields["createType"] == "streamOptimized")
        #expect(reader.descriptorText.contains("createType=\"streamOptimized\""))
        #expect(descriptor.extents == [.init(access: "RW", sectors: size / 512, type: "SPARSE", fileName: "disk.vmdk")])
        #expect(descriptor.database["ddb.virtualHWVersion"] == "4")
        #expect(descriptor.database["ddb.uuid"] == "00 01 02 03 04 05 06 07-08 09 0a 0b 0c 0d 0e 0f")
        #expect(descriptor.database["ddb.longContentID"]?.count == 32)
        #expect(descriptor.database["ddb.longContentID"]?.hasSuffix("1234abcd") == true)
        #expect(descriptor.database["ddb.toolsVersion"] != nil)

        // Markers: runs of grains in ascending LBA order, each run followed by the GT of the
        // tables its grains belong to (VMware's order), then GD, footer, EOS.
        let items = try reader.streamItems()
        #expect(items.first?.offset == header.overHead * 512)
        var grainItems: [VMDKFileReader.Item] = []
        var tables: [(index: Int, sector: UInt64)] = []
        var pendingTable: Int? = nil
        var index = 0
        markers: while index < items.count {
            switch items[index].marker {
            case let .grain(lba, _):
                let table = Int(lba / (128 * 512))
                if let pendingTable {
                    #expect(pendingTable == table, "a grain of table \(table) before table \(pendingTable) was written")
                } else {
                    #expect(!tables.contains { $0.index == table }, "a grain of table \(table) after that table")
                    pendingTable = table
                }
                grainItems.append(items[index])
            case let .metadata(.grainTable, sectors):
                #expect(sectors == 4)
                let table = try #require(pendingTable, "a GT marker at byte \(items[index].offset) follows no grains")
                tables.append((table, items[index].offset / 512 + 1))
                pendingTable = nil
            default:
                break markers
            }
            index += 1
        }
        #expect(pendingTable == nil, "the last grains have no table after them")
        #expect(tables.count >= 3)
        var lbas: [UInt64] = []
        for item in grainItems {
            let (lba, data) = try reader.grainData(markerAt: item.offset)
            #expect(lba % 128 == 0)
            #expect(data.count == 65536)
            #expect(data == (try rawBytes(converted, count: 65536, at: lba * 512)), "grain at LBA \(lba)")
            #expect(data.contains { $0 != 0 }, "an all-zero grain at LBA \(lba) was written")
            lbas.append(lba)
        }
        #expect(lbas == lbas.sorted() && Set(lbas).count == lbas.count)
        // Every non-zero 64 KiB of the raw disk has a grain.
        let rawFile = try RawFile(path: converted.rawPath, mode: .readOnly)
        var expectedLBAs: [UInt64] = []
        for range in try rawFile.dataRanges() {
            var grain = range.lowerBound / 65536
            while grain * 65536 < range.upperBound {
                if try rawBytes(converted, count: 65536, at: grain * 65536).contains(where: { $0 != 0 }) {
                    expectedLBAs.append(grain * 128)
                }
                grain += 1
            }
        }
        #expect(lbas == expectedLBAs)
        // The last (partial) grain holds the disk's last sector.
        #expect(lbas.last == (size / 512 - 1) / 128 * 128)

        try #require(items.count == index + 3, "after the tables: GD, footer and EOS markers only")
        guard case let .metadata(.grainDirectory, directorySectors) = items[index].marker else {
            Issue.record("expected the GD marker, found \(items[index].marker)"); return
        }
        let tableCount = Int((size / 512 + 128 * 512 - 1) / (128 * 512))
        #expect(directorySectors == UInt64((tableCount * 4 + 511) / 512))
        let directorySector = items[index].offset / 512 + 1
        #expect(items[index + 1].marker == .metadata(type: .footer, numSectors: 1))
        #expect(items[index + 2].marker == .metadata(type: .endOfStream, numSectors: 0))
        #expect(items[index + 2].offset + 512 == (try RawFile(path: converted.vmdkPath, mode: .readOnly).size))
        let footer = try VMDKHeader(decoding: try reader.read(count: 512, at: items[index + 1].offset + 512),
                                    path: converted.vmdkPath, offset: items[index + 1].offset + 512)
        #expect(footer.gdOffset == directorySector)
        var footerAsHeader = footer
        footerAsHeader.gdOffset = header.gdOffset
        #expect(footerAsHeader == header)

        // GD -> GT -> grain markers.
        let directory = try reader.entries(atSector: directorySector, count: tableCount)
        var expectedDirectory = [UInt32](repeating: 0, count: tableCount)
        for table in tables { expectedDirectory[table.index] = UInt32(table.sector) }
        #expect(directory == expectedDirectory)
        let grainsBySector = Dictionary(uniqueKeysWithValues: grainItems.map { item -> (UInt64, UInt64) in
            guard case let .grain(lba, _) = item.marker else { return (0, 0) }
            return (item.offset / 512, lba)
        })
        var mapped = 0
        for (table, sector) in directory.enumerated() where sector != 0 {
            for (entry, grainSector) in try reader.entries(atSector: UInt64(sector), count: 512).enumerated() where grainSector != 0 {
                let lba = UInt64(table * 512 + entry) * 128
                #expect(grainsBySector[UInt64(grainSector)] == lba, "GT \(table) entry \(entry)")
                mapped += 1
            }
        }
        #expect(mapped == grainItems.count)
        #expect(converted.summary.allocatedUnits == UInt64(grainItems.count))
    }

    @Test func sparseStructure() throws {
        let size = 72 * Self.mebibyte + 512
        let converted = try convert(size: size, options: options(.monolithicSparse), seed: 9)
        let reader = try VMDKFileReader(path: converted.vmdkPath)
        let header = reader.header
        #expect(header.version == 1)
        #expect(header.flags.rawValue == 0x3)
        #expect(header.compressAlgorithm == 0)
        #expect(header.grainSize == 128)
        #expect(header.capacity == size / 512)
        #expect(header.overHead % 128 == 0)
        #expect(header.rgdOffset >= header.descriptorOffset + header.descriptorSize)
        #expect(header.gdOffset > header.rgdOffset && header.gdOffset < header.overHead)
        #expect(reader.descriptor.fields["createType"] == "monolithicSparse")

        let tableCount = Int((size / 512 + 128 * 512 - 1) / (128 * 512))
        let directory = try reader.entries(atSector: header.gdOffset, count: tableCount)
        let redundant = try reader.entries(atSector: header.rgdOffset, count: tableCount)
        var allocated = 0
        for table in 0..<tableCount {
            #expect(directory[table] != 0 && redundant[table] != 0)
            let entries = try reader.entries(atSector: UInt64(directory[table]), count: 512)
            #expect(entries == (try reader.entries(atSector: UInt64(redundant[table]), count: 512)))
            for (entry, sector) in entries.enumerated() {
                let grainOffset = UInt64(table * 512 + entry) * 65536
                guard grainOffset < size else { #expect(sector == 0); continue }
                let raw = try rawBytes(converted, count: 65536, at: grainOffset)
                if sector == 0 {
                    #expect(!raw.contains { $0 != 0 }, "grain at byte \(grainOffset) has data but no entry")
                } else {
                    #expect(UInt64(sector) >= header.overHead)
                    #expect(try reader.read(count: 65536, at: UInt64(sector) * 512) == raw, "grain at byte \(grainOffset)")
                    allocated += 1
                }
            }
        }
        #expect(UInt64(allocated) == converted.summary.allocatedUnits)
        #expect(allocated > 0)
    }

    /// A disk smaller than one grain, written through the writer directly: one partial grain.
    @Test(arguments: WriterOptions.VMDKSubformat.allCases)
    func diskSmallerThanAGrain(subformat: WriterOptions.VMDKSubformat) throws {
        let directory = try TemporaryDirectory(prefix: "rehost-vmdk")
        let bytes = (0..<1536).map { UInt8(truncatingIfNeeded: $0 * 7 + 1) }
        let rawPath = directory.file("tiny.raw"), vmdkPath = directory.file("tiny.vmdk")
        #expect(FileManager.default.createFile(atPath: rawPath, contents: Data(bytes)))
        let sink = OutputSink(file: try RawFile(path: vmdkPath, mode: .createExclusive))
        let writer = try VMDKWriter(sink: sink, virtualSize: 1536, options: options(subformat))
        try bytes.withUnsafeBytes {
            try writer.write(UnsafeRawBufferPointer(rebasing: $0[0..<512]), at: 0)
            try writer.write(UnsafeRawBufferPointer(rebasing: $0[1024..<1536]), at: 1024)
        }
        let summary = try writer.finish()
        #expect(summary.allocatedUnits == 1)
        let converted = Converted(directory: directory, rawPath: rawPath, vmdkPath: vmdkPath, summary: summary,
                                  streamedDigest: nil, size: 1536)
        // Bytes 512..<1024 were never written: they must read as zeros, not as the raw's data.
        var expected = bytes
        for i in 512..<1024 { expected[i] = 0 }
        #expect(try VMDKFileReader(path: vmdkPath).grain(0) == expected + [UInt8](repeating: 0, count: 65536 - 1536))
        expected.withUnsafeBytes { _ = FileManager.default.createFile(atPath: rawPath, contents: Data($0)) }
        try expectQemuAccepts(converted, createType: subformat.rawValue)
    }

    @Test func outOfOrderWritesAreRefused() throws {
        let directory = try TemporaryDirectory(prefix: "rehost-vmdk")
        let sink = OutputSink(file: try RawFile(path: directory.file("x.vmdk"), mode: .createExclusive))
        let writer = try VMDKWriter(sink: sink, virtualSize: 1 << 20, options: options(.streamOptimized))
        let data = [UInt8](repeating: 1, count: 512)
        try data.withUnsafeBytes { try writer.write($0, at: 4096) }
        #expect(throws: WriterError.self) { try data.withUnsafeBytes { try writer.write($0, at: 0) } }
        #expect(throws: WriterError.self) { try data.withUnsafeBytes { try writer.write($0, at: 1 << 20) } }
    }
}
