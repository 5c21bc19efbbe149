import Foundation
import ImageCore
import ImageFormats
import Testing
import TestSupport

/// 40 MiB and four sectors: a multiple of neither block size, nor of the 4 KiB physical sector.
/// (Not three sectors: 7-Zip 26.02 refuses VHDX disks whose size is an odd number of KiB, qemu's
/// own images of 40 MiB + 512 bytes as much as Rehost's; qemu reads them.)
private let oddSize: UInt64 = 40 * MiB + 4 * 512

private func options(_ variant: WriterOptions.VHDXVariant, blockSize: UInt64) -> WriterOptions {
    var options = WriterOptions()
    options.vhdxVariant = variant
    options.vhdxBlockSize = UInt32(blockSize)
    return options
}

@discardableResult
private func makeVHDX(_ raw: String, _ output: String, _ variant: WriterOptions.VHDXVariant, blockSize: UInt64 = 32 * MiB) throws -> WriterSummary {
    try convert(raw, to: output) { try VHDXWriter(sink: $0, virtualSize: $1, options: options(variant, blockSize: blockSize)) }
}

private func le64(_ value: UInt64) -> [UInt8] { withUnsafeBytes(of: value.littleEndian) { Array($0) } }
private func fileSize(_ path: String) throws -> UInt64 { try RawFile(path: path, mode: .readOnly).size }

/// Edits both headers (4 KiB at 64 KiB and 128 KiB) and stores a matching CRC-32C again.
private func rewriteHeaders(_ path: String, _ edit: (inout [UInt8]) -> Void) throws {
    let file = try RawFile(path: path, mode: .readWrite)
    for offset: UInt64 in [64 << 10, 128 << 10] {
        var bytes = try file.read(count: 4096, at: offset)
        edit(&bytes)
        bytes.replaceSubrange(4..<8, with: le32(0))
        bytes.replaceSubrange(4..<8, with: le32(CRC32C.checksum(bytes)))
        try file.write(bytes, at: offset)
    }
}

/// Edits both region tables (64 KiB at 192 KiB and 256 KiB) and stores a matching CRC-32C again.
private func rewriteRegionTables(_ path: String, _ edit: (inout [UInt8]) -> Void) throws {
    let file = try RawFile(path: path, mode: .readWrite)
    for offset: UInt64 in [192 << 10, 256 << 10] {
        var bytes = try file.read(count: 65536, at: offset)
        edit(&bytes)
        bytes.replaceSubrange(4..<8, with: le32(0))
        bytes.replaceSubrange(4..<8, with: le32(CRC32C.checksum(bytes)))
        try file.write(bytes, at: offset)
    }
}

/// The file offset of a metadata item's data in a Rehost-written image (metadata at 2 MiB).
private func metadataItemOffset(_ path: String, guid: [UInt8]) throws -> UInt64? {
    let table = try readBytes(path, at: 2 * MiB, count: 65536)
    let count = Int(table.loadLE(UInt16.self, at: 10))
    for index in 0..<count {
        let at = 32 + index * 32
        if Array(table[at..<(at + 16)]) == guid { return 2 * MiB + UInt64(table.loadLE(UInt32.self, at: at + 16)) }
    }
    return nil
}

// GUIDs as the file holds them (Microsoft order).
private let virtualDiskSizeGuid: [UInt8] = [0x24, 0x42, 0xA5, 0x2F, 0x1B, 0xCD, 0x76, 0x48, 0xB2, 0x11, 0x5D, 0xBE, 0xD8, 0x3B, 0xF4, 0xB8]
private let fileParametersGuid: [UInt8] = [0x37, 0x67, 0xA1, 0xCA, 0x36, 0xFA, 0x43, 0x4D, 0xB3, 0xB6, 0x33, 0xF0, 0xAA, 0x44, 0xE7, 0x6B]

private func openVHDX(_ path: String) throws -> any DiskImageReader { try VHDXReader(path: path) }

/// What 7-Zip (an independent reader) makes of `image`: the listing must show a VHDX with the
/// disk's size, and the disk it extracts must equal `raw`.
private func sevenZipAgrees(_ image: String, raw: String, size: UInt64, in directory: TemporaryDirectory) throws {
    let sevenZip = try Command.require("7z")
    let listing = try Command.run(sevenZip, ["l", image], timeout: .seconds(120))
    #expect(listing.status == 0, "\(listing.stdout)\(listing.stderr)")
    #expect(listing.stdout.contains("Type = VHDX"), "\(listing.stdout)")
    #expect(listing.stdout.contains("VirtualDiskSize: \(size)"), "\(listing.stdout)")
    #expect(!listing.stdout.contains("ERROR") && !listing.stdout.contains("WARNING"), "\(listing.stdout)")
    #expect(listing.stdout.contains("Physical Size = \(try fileSize(image))\n"), "\(listing.stdout)")
    let out = directory.file("7z-" + (image as NSString).lastPathComponent)
    let extract = try Command.run(sevenZip, ["x", "-y", "-o" + out, image], timeout: .seconds(300))
    #expect(extract.status == 0, "\(extract.stdout)\(extract.stderr)")
    let files = try FileManager.default.contentsOfDirectory(atPath: out)
    #expect(files.count == 1, "\(files)")
    if let name = files.first { #expect(try sameBytes(out + "/" + name, raw), "7z extracted \(name), which differs") }
}

@Suite struct VHDXWriterTests {
    @Test func crc32cMatchesTheCastagnoliCheckValue() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
    }

    @Test(arguments: [(WriterOptions.VHDXVariant.dynamic, 32 * MiB), (.fixed, 32 * MiB), (.dynamic, MiB), (.fixed, MiB)])
    func qemuAnd7ZipReadTheSameDisk(variant: WriterOptions.VHDXVariant, blockSize: UInt64) throws {
        let directory = try TemporaryDirectory()
        let disk = try syntheticDisk(in: directory, size: oddSize)
        let output = directory.file("out.vhdx")
        let summary = try makeVHDX(disk.path, output, variant, blockSize: blockSize)
        let check = try Qemu.check(output, format: "vhdx")
        #expect(check.status == 0, "qemu-img check: \(check.stdout) \(check.stderr)")
        let info = try Qemu.info(output, format: "vhdx")
        #expect(info.format == "vhdx")
        #expect(info.virtualSize == oddSize)
        let compare = try Qemu.compare(raw: disk.path, image: output, format: "vhdx")
        #expect(compare.status == 0, "qemu-img compare: \(compare.stdout) \(compare.stderr)")
        #expect(summary.fileSize == (try fileSize(output)))
        #expect(summary.variant == "VHDX \(variant.rawValue), \(blockSize >> 20) MiB blocks")
        try sevenZipAgrees(output, raw: disk.path, size: oddSize, in: directory)

        // Only blocks with data are allocated in a dynamic disk; the rest stays out of the file.
        let blocks = blocksWithData(disk.ranges, blockSize: blockSize)
        let expectedUnits = variant == .fixed ? (oddSize + blockSize - 1) / blockSize : UInt64(blocks.count)
        #expect(summary.allocatedUnits == expectedUnits)
        let reader = try VHDXReader(path: output)
        #expect(reader.virtualSize == oddSize && reader.blockSize == blockSize)
        #expect(reader.logicalSectorSize == 512 && reader.physicalSectorSize == 512, "the disk ends inside a 4 KiB sector")
        #expect(try sameBytes(readerRaw(reader, in: directory), disk.path))
    }

    /// 1 MiB blocks with 512-byte sectors: a chunk is 4096 blocks (4 GiB), so a 5 GiB disk with
    /// data past 4 GiB puts its blocks after the first sector bitmap entry of the BAT.
    @Test func sectorBitmapEntriesInterleaveAtTheChunkBoundary() throws {
        let directory = try TemporaryDirectory()
        let size: UInt64 = 5 * 1024 * MiB
        let raw = directory.file("big.raw")
        let file = try RawFile(path: raw, mode: .createExclusive)
        try file.truncate(to: size)
        let pattern = (0..<(3 * 65536)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 1) }
        // Across the boundary (blocks 4095 and 4096), and the last sectors of the disk.
        try file.write(pattern, at: 4 * 1024 * MiB - 65536)
        try file.write(Array(pattern[0..<4096]), at: size - 4096)
        try file.write(Array(pattern[0..<512]), at: 0)
        let output = directory.file("big.vhdx")
        let summary = try makeVHDX(raw, output, .dynamic, blockSize: MiB)
        #expect(summary.allocatedUnits == 4)
        let check = try Qemu.check(output, format: "vhdx")
        #expect(check.status == 0, "qemu-img check: \(check.stdout) \(check.stderr)")
        #expect(try Qemu.compare(raw: raw, image: output, format: "vhdx").status == 0)
        // BAT at 3 MiB: entry 4096 is chunk 0's sector bitmap (NOT_PRESENT), block 4096 is entry 4097.
        let bat = try readBytes(output, at: 3 * MiB, count: 8 * 5200)
        func entry(_ index: Int) -> UInt64 { bat.loadLE(UInt64.self, at: index * 8) }
        #expect(entry(4095) & 7 == 6 && entry(4096) == 0 && entry(4097) & 7 == 6)
        #expect(entry(4097) >> 20 == (entry(4095) >> 20) + 1, "blocks are appended in order")
        #expect(entry(5120) & 7 == 6 && entry(5119) == 0)
        let reader = try VHDXReader(path: output)
        #expect(reader.physicalSectorSize == 4096)
        #expect(try sameBytes(readerRaw(reader, in: directory), raw))
        let disk = reader.randomAccess()
        #expect(try disk.read(count: pattern.count, at: 4 * 1024 * MiB - 65536) == pattern)
        try sevenZipAgrees(output, raw: raw, size: size, in: directory)
    }

    /// With a given UUID the bytes depend on the disk alone: two runs give the same file.
    @Test func aGivenUUIDMakesTheBytesReproducible() throws {
        let directory = try TemporaryDirectory()
        let disk = try syntheticDisk(in: directory, size: 8 * MiB)
        var paths: [String] = []
        for run in 0..<2 {
            var given = options(.dynamic, blockSize: MiB)
            given.uuid = UUIDBytes.parse("0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f0")
            let path = directory.file("run\(run).vhdx")
            try convert(disk.path, to: path) { try VHDXWriter(sink: $0, virtualSize: $1, options: given) }
            paths.append(path)
        }
        #expect(try sameBytes(paths[0], paths[1]))
        #expect(try VHDXReader(path: paths[0]).diskGuid == UUIDBytes.parse("0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f0"))
    }

    @Test func refusesWhatAVHDXCannotSay() throws {
        let directory = try TemporaryDirectory()
        let sink = OutputSink(file: try RawFile(path: directory.file("x.vhdx"), mode: .createExclusive))
        #expect(throws: WriterError.self) { try VHDXWriter(sink: sink, virtualSize: 1000, options: WriterOptions()) }
        #expect(throws: WriterError.self) { try VHDXWriter(sink: sink, virtualSize: (64 << 40) + 512, options: WriterOptions()) }
        #expect(throws: WriterError.self) { try VHDXWriter(sink: sink, virtualSize: MiB, options: options(.dynamic, blockSize: 3 * MiB)) }
    }
}

@Suite struct VHDXReaderTests {
    @Test(arguments: [["-o", "subformat=dynamic"], ["-o", "subformat=fixed"], ["-o", "subformat=dynamic,block_size=1M"],
                      ["-o", "subformat=fixed,block_size=32M"]])
    func readsQemuImages(options: [String]) throws {
        let directory = try TemporaryDirectory()
        let disk = try syntheticDisk(in: directory, size: oddSize)
        let image = directory.file("qemu.vhdx")
        try qemuConvert(disk.path, to: image, format: "vhdx", options: options)
        let reader = try VHDXReader(path: image)
        #expect(reader.virtualSize == (try Qemu.info(image, format: "vhdx")).virtualSize)
        let raw = try readerRaw(reader, in: directory)
        #expect(try sameBytes(raw, qemuRaw(image, format: "vhdx", in: directory)))
        #expect(try sameBytes(raw, disk.path))
        // Random access agrees at unaligned places.
        let random = reader.randomAccess()
        for offset: UInt64 in [0, 512 * 3, MiB - 512, 17 * MiB + 1024, oddSize - 1536] {
            #expect(try random.read(count: 1536, at: offset) == readBytes(disk.path, at: offset, count: 1536))
        }
    }

    @Test func detectsVHDXByItsSignature() throws {
        let directory = try TemporaryDirectory()
        let image = directory.file("disk.img")
        try Qemu.create(image, format: "vhdx", size: 8 * MiB, options: "subformat=dynamic")
        let reader = try DiskImageReaders.open(path: image)
        #expect(reader.format == .vhdx && reader.virtualSize == 8 * MiB)
    }

    /// A small Rehost image (8 MiB, 1 MiB blocks, data in the first block).
    private func base(in directory: TemporaryDirectory) throws -> String {
        let disk = try syntheticDisk(in: directory, size: 8 * MiB)
        let image = directory.file("base.vhdx")
        try makeVHDX(disk.path, image, .dynamic, blockSize: MiB)
        return image
    }

    @Test func truncatedFiles() throws {
        let directory = try TemporaryDirectory()
        let image = try base(in: directory)
        let short = try copy(image, to: "short.vhdx", in: directory)
        try cut(short, to: 100 << 10)
        expectReadError(.truncated, path: short, offset: 0, openVHDX)
        // Blocks past the end: the BAT entry says where.
        let noBlocks = try copy(image, to: "noblocks.vhdx", in: directory)
        try cut(noBlocks, to: 4 * MiB + 4096)
        expectReadError(.corrupt, path: noBlocks, offset: 3 * MiB, mentioning: "outside the", openVHDX)
    }

    @Test func corruptHeaders() throws {
        let directory = try TemporaryDirectory()
        let image = try base(in: directory)
        // One bad header: the other one serves.
        let one = try copy(image, to: "one.vhdx", in: directory)
        try patch(one, at: (128 << 10) + 100, [0xFF])
        #expect(try VHDXReader(path: one).virtualSize == 8 * MiB)
        try patch(one, at: (64 << 10) + 100, [0xFF])
        expectReadError(.corrupt, path: one, offset: 64 << 10, mentioning: "CRC-32C", openVHDX)
        let notVHDX = try copy(image, to: "sig.vhdx", in: directory)
        try patch(notVHDX, at: 0, Array("vhdxfilx".utf8))
        expectReadError(.corrupt, path: notVHDX, offset: 0, openVHDX)
        let regions = try copy(image, to: "regions.vhdx", in: directory)
        try patch(regions, at: (192 << 10) + 40, [0xFF])
        #expect(try VHDXReader(path: regions).virtualSize == 8 * MiB, "the second region table serves")
        try patch(regions, at: (256 << 10) + 40, [0xFF])
        expectReadError(.corrupt, path: regions, offset: 192 << 10, mentioning: "region table", openVHDX)
    }

    @Test func hostileRegionsAndSizes() throws {
        let directory = try TemporaryDirectory()
        let image = try base(in: directory)
        let batFar = try copy(image, to: "batfar.vhdx", in: directory)
        // The BAT is the first region entry (at 16): its offset at 32.
        try rewriteRegionTables(batFar) { $0.replaceSubrange(32..<40, with: le64(1 << 40)) }
        expectReadError(.corrupt, path: batFar, offset: (192 << 10) + 32, mentioning: "beyond the end", openVHDX)

        let shared = try copy(image, to: "shared.vhdx", in: directory)
        try rewriteRegionTables(shared) { $0.replaceSubrange(32..<40, with: le64(2 * MiB)) }  // the BAT over the metadata
        expectReadError(.corrupt, path: shared, offset: 192 << 10, mentioning: "overlaps the metadata region", openVHDX)

        let huge = try copy(image, to: "huge.vhdx", in: directory)
        let sizeAt = try #require(try metadataItemOffset(huge, guid: virtualDiskSizeGuid))
        try patch(huge, at: sizeAt, le64(64 << 40))
        expectReadError(.corrupt, path: huge, offset: 3 * MiB, mentioning: "BAT region", openVHDX)
        try patch(huge, at: sizeAt, le64(UInt64.max - 511))
        expectReadError(.corrupt, path: huge, offset: sizeAt, mentioning: "virtual disk size", openVHDX)

        let blockSize = try copy(image, to: "blocksize.vhdx", in: directory)
        let parametersAt = try #require(try metadataItemOffset(blockSize, guid: fileParametersGuid))
        try patch(blockSize, at: parametersAt, le32(4096))
        expectReadError(.corrupt, path: blockSize, offset: parametersAt, mentioning: "block size", openVHDX)

        let parent = try copy(image, to: "parent.vhdx", in: directory)
        try patch(parent, at: parametersAt + 4, le32(2))
        expectReadError(.unsupported, path: parent, mentioning: "differencing", openVHDX)

        let overlap = try copy(image, to: "overlap.vhdx", in: directory)
        try patch(overlap, at: 3 * MiB, le64(6 | (2 << 20)))  // block 0 over the metadata
        expectReadError(.corrupt, path: overlap, offset: 3 * MiB, mentioning: "overlaps the metadata region", openVHDX)
    }

    @Test func refusesAnUnreplayedLog() throws {
        let directory = try TemporaryDirectory()
        let image = try copy(try base(in: directory), to: "log.vhdx", in: directory)
        try rewriteHeaders(image) { $0.replaceSubrange(48..<64, with: [UInt8](repeating: 0x5A, count: 16)) }
        expectReadError(.unsupported, path: image, mentioning: "unreplayed log", openVHDX)
        let result = try Command.runRehost(["export", image, "-o", directory.file("out.raw"), "-q", "--no-digest"])
        #expect(result.status == 1)
        #expect(result.stderr.contains("unreplayed log") && result.stderr.contains("qemu-img check -r all"), "\(result.stderr)")
        #expect(result.stderr.split(separator: "\n").count == 1, "\(result.stderr)")
    }

    @Test func fuzzedMetadataFailsCleanly() throws {
        let directory = try TemporaryDirectory()
        let image = try base(in: directory)
        let failures = try fuzz(image, regions: [0..<(320 << 10), (2 * MiB)..<(2 * MiB + 65536 + 64), (3 * MiB)..<(3 * MiB + 128)],
                                iterations: 300, seed: 12, openVHDX)
        #expect(failures > 0)
    }
}

@Suite struct VHDXCommandTests {
    @Test func exportWritesAndReadsVHDX() throws {
        let directory = try TemporaryDirectory()
        let disk = try syntheticDisk(in: directory, size: oddSize)
        let vhdx = directory.file("disk.vhdx")
        let write = try Command.runRehost(["export", disk.path, "-o", vhdx, "--vhdx-block-size", "1M"])
        #expect(write.status == 0, "\(write.stderr)")
        #expect(write.stdout.lowercased().contains("vhdx"), "\(write.stdout)")
        #expect(try Qemu.check(vhdx, format: "vhdx").status == 0)
        #expect(try Qemu.compare(raw: disk.path, image: vhdx, format: "vhdx").status == 0)

        let fixed = directory.file("fixed.vhdx")
        let fixedRun = try Command.runRehost(["export", disk.path, "-o", fixed, "--vhdx-variant", "fixed", "-q", "--no-digest"])
        #expect(fixedRun.status == 0, "\(fixedRun.stderr)")
        #expect(try Qemu.info(fixed, format: "vhdx").virtualSize == oddSize)

        // And back: a qemu-made VHDX as input, against qemu's own raw conversion.
        let qemu = directory.file("qemu.vhdx")
        try qemuConvert(disk.path, to: qemu, format: "vhdx", options: ["-o", "subformat=dynamic,block_size=1M"])
        let raw = directory.file("back.raw")
        let read = try Command.runRehost(["export", qemu, "-o", raw, "-q", "--no-digest"])
        #expect(read.status == 0, "\(read.stderr)")
        #expect(try sameBytes(raw, qemuRaw(qemu, format: "vhdx", in: directory)))

        let bad = try Command.runRehost(["export", disk.path, "-o", directory.file("bad.vhdx"), "--vhdx-block-size", "3M"])
        #expect(bad.status != 0)
    }
}
