import Foundation
import ImageCore
import ImageFormats
import Testing
import TestSupport

// Helpers shared with VHDReaderTests.

/// `qemu-img convert` of `source` (raw) into `format` with `options`.
func qemuConvert(_ source: String, to output: String, format: String, options: [String] = []) throws {
    try Command.run("qemu-img", ["convert", "-f", "raw", "-O", format] + options + [source, output],
                    timeout: .seconds(120)).requireSuccess()
}

/// The oracle: what qemu reads from `image`, as a raw file.
func qemuRaw(_ image: String, format: String, in directory: TemporaryDirectory) throws -> String {
    let output = directory.file((image as NSString).lastPathComponent + ".qemu.raw")
    try Command.run("qemu-img", ["convert", "-f", format, "-O", "raw", image, output], timeout: .seconds(120)).requireSuccess()
    return output
}

/// Streams `reader` into a fresh sparse raw file, checking the piece contract on the way.
func readerRaw(_ reader: any DiskImageReader, in directory: TemporaryDirectory) throws -> String {
    try checkPieces(reader)
    let output = directory.file((reader.path as NSString).lastPathComponent + ".rehost.raw")
    let file = try RawFile(path: output, mode: .createExclusive)
    try DiskImageReaders.copyToRaw(reader, file: file)
    return output
}

/// Offsets increase, pieces never overlap, stay inside the disk, hold at most 8 MiB, and are
/// sector multiples except at the disk's end. Returns the bytes handed out.
@discardableResult
func checkPieces(_ reader: any DiskImageReader, sourceLocation: SourceLocation = #_sourceLocation) throws -> UInt64 {
    var next: UInt64 = 0
    var total: UInt64 = 0
    try reader.forEachDataPiece { offset, data in
        #expect(offset >= next, "piece at \(offset) before \(next)", sourceLocation: sourceLocation)
        #expect(data.count > 0 && data.count <= DiskImageReaders.maxPieceSize, sourceLocation: sourceLocation)
        #expect(offset + UInt64(data.count) <= reader.virtualSize, sourceLocation: sourceLocation)
        #expect(offset % 512 == 0, sourceLocation: sourceLocation)
        #expect(data.count % 512 == 0 || offset + UInt64(data.count) == reader.virtualSize, sourceLocation: sourceLocation)
        next = offset + UInt64(data.count)
        total += UInt64(data.count)
    }
    return total
}

/// Byte-for-byte equality of two raw files: `cmp` for small ones, `qemu-img compare` (which
/// skips holes) for sparse multi-GiB ones.
func sameBytes(_ a: String, _ b: String) throws -> Bool {
    let size = try RawFile(path: a, mode: .readOnly).size
    guard size == (try RawFile(path: b, mode: .readOnly).size) else { return false }
    if size > 256 * MiB {
        return try Command.run("qemu-img", ["compare", "-q", "-f", "raw", "-F", "raw", a, b], timeout: .seconds(120)).status == 0
    }
    return try Command.run("cmp", ["-s", a, b], timeout: .seconds(60)).status == 0
}

/// Overwrites bytes of a file in place.
func patch(_ path: String, at offset: UInt64, _ bytes: [UInt8]) throws {
    try RawFile(path: path, mode: .readWrite).write(bytes, at: offset)
}

func cut(_ path: String, to size: UInt64) throws {
    try RawFile(path: path, mode: .readWrite).truncate(to: size)
}

func copy(_ path: String, to name: String, in directory: TemporaryDirectory) throws -> String {
    let output = directory.file(name)
    try FileManager.default.copyItem(atPath: path, toPath: output)
    return output
}

func le32(_ value: UInt32) -> [UInt8] { withUnsafeBytes(of: value.littleEndian) { Array($0) } }
func be32(_ value: UInt32) -> [UInt8] { withUnsafeBytes(of: value.bigEndian) { Array($0) } }

enum ReadErrorKind: Equatable { case truncated, corrupt, unsupported }

/// Opens (and streams) with `open`, which must throw `ImageReadError` of `kind`, one line,
/// naming `path`, at `offset` if given, and saying `mentioning` if given.
func expectReadError(_ kind: ReadErrorKind, path: String, offset: UInt64? = nil, mentioning: String? = nil,
                     sourceLocation: SourceLocation = #_sourceLocation, _ open: (String) throws -> any DiskImageReader) {
    do {
        let reader = try open(path)
        try reader.forEachDataPiece { _, _ in }
        Issue.record("\(path) opened and streamed; expected \(kind)", sourceLocation: sourceLocation)
    } catch let error as ImageReadError {
        let found: ReadErrorKind, at: UInt64?
        switch error {
        case let .truncated(_, _, offset, _, _): (found, at) = (.truncated, offset)
        case let .corrupt(_, _, offset, _): (found, at) = (.corrupt, offset)
        case .unsupported: (found, at) = (.unsupported, nil)
        }
        #expect(found == kind, "\(error)", sourceLocation: sourceLocation)
        #expect(error.description.contains(path), "\(error)", sourceLocation: sourceLocation)
        #expect(!error.description.contains("\n"), "\(error)", sourceLocation: sourceLocation)
        if let offset { #expect(at == offset, "\(error)", sourceLocation: sourceLocation) }
        if let mentioning { #expect(error.description.contains(mentioning), "\(error)", sourceLocation: sourceLocation) }
    } catch {
        Issue.record("expected ImageReadError.\(kind), got \(error)", sourceLocation: sourceLocation)
    }
}

/// Flips 1 to 4 random bytes inside `regions` of `image`, `iterations` times (seeded), and
/// requires each run to open and stream, or to fail with ImageReadError or FileError.
/// Returns how many runs failed, so a test can see the fuzzing reached the checks.
@discardableResult
func fuzz(_ image: String, regions: [Range<UInt64>], iterations: Int, seed: UInt64,
          sourceLocation: SourceLocation = #_sourceLocation, _ open: (String) throws -> any DiskImageReader) throws -> Int {
    var state = seed
    func random() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    let file = try RawFile(path: image, mode: .readWrite)
    let originals = try regions.map { try file.read(count: Int($0.count), at: $0.lowerBound) }
    var failures = 0
    for _ in 0..<iterations {
        var changed: [(UInt64, UInt8)] = []
        for _ in 0..<(1 + Int(random() % 4)) {
            let r = Int(random() % UInt64(regions.count))
            let index = Int(random() % UInt64(regions[r].count))
            let offset = regions[r].lowerBound + UInt64(index)
            let original = originals[r][index]
            // Half the time a single bit, else a whole new byte: both small and large values.
            let value = random() % 2 == 0 ? original ^ (1 << UInt8(random() % 8)) : UInt8(truncatingIfNeeded: random())
            changed.append((offset, original))
            try file.write([value], at: offset)
        }
        do {
            let reader = try open(image)
            try checkPieces(reader, sourceLocation: sourceLocation)
        } catch is ImageReadError {
            failures += 1
        } catch is FileError {
            failures += 1
        } catch {
            Issue.record("fuzzed image threw \(error)", sourceLocation: sourceLocation)
        }
        for (offset, original) in changed.reversed() { try file.write([original], at: offset) }
    }
    return failures
}

// MARK: - VDI

/// 12 MiB and three sectors: not a multiple of the 1 MiB block, so the last block is partial.
private let oddSize: UInt64 = 12 * MiB + 3 * 512

private func writerVDI(_ raw: String, _ output: String, _ variant: WriterOptions.VDIVariant) throws {
    var options = WriterOptions()
    options.vdiVariant = variant
    try convert(raw, to: output) { try VDIWriter(sink: $0, virtualSize: $1, options: options) }
}

/// A small dynamic VDI from qemu (header 512 bytes, map at 512, data right after), for the
/// hostile tests: 8 MiB, data in blocks 0-2 and 5-7 (six allocated, stored in that order).
private func smallVDI(in directory: TemporaryDirectory) throws -> (path: String, disk: String) {
    let disk = try syntheticDisk(in: directory, size: 8 * MiB)
    let output = directory.file("small.vdi")
    try qemuConvert(disk.path, to: output, format: "vdi")
    return (output, disk.path)
}

@Suite struct VDIReaderTests {
    /// qemu-img's own VDIs, dynamic and static, read as qemu reads them.
    @Test(arguments: [[String](), ["-o", "static=on"]])
    func readsQemuImages(options: [String]) throws {
        let directory = try TemporaryDirectory()
        let disk = try syntheticDisk(in: directory, size: oddSize)
        let image = directory.file("qemu.vdi")
        try qemuConvert(disk.path, to: image, format: "vdi", options: options)

        let reader = try VDIReader(path: image)
        #expect(reader.virtualSize == (try Qemu.info(image, format: "vdi")).virtualSize)
        #expect(reader.virtualSize == oddSize)
        #expect(reader.variant.hasPrefix(options.isEmpty ? "VDI dynamic, 1 MiB blocks" : "VDI fixed, 1 MiB blocks"), "\(reader.variant)")
        let raw = try readerRaw(reader, in: directory)
        #expect(try sameBytes(raw, qemuRaw(image, format: "vdi", in: directory)))
        #expect(try sameBytes(raw, disk.path))
    }

    /// Rehost's own VDIWriter, both variants: dynamic (blocks in data order) and fixed (every
    /// block, holes where the disk is zero).
    @Test(arguments: WriterOptions.VDIVariant.allCases)
    func readsRehostImages(variant: WriterOptions.VDIVariant) throws {
        let directory = try TemporaryDirectory()
        let disk = try syntheticDisk(in: directory, size: oddSize)
        let image = directory.file("rehost.vdi")
        try writerVDI(disk.path, image, variant)

        let reader = try VDIReader(path: image)
        #expect(reader.virtualSize == (try Qemu.info(image, format: "vdi")).virtualSize)
        let raw = try readerRaw(reader, in: directory)
        #expect(try sameBytes(raw, disk.path))
        // The fixed image is sparse: its holes are skipped, not read and handed out as zeros.
        // The disk holds about 4 MiB of data (3 MiB random, 1 MiB text, a few sectors).
        if variant == .fixed {
            #expect(try checkPieces(reader) < 6 * MiB)
        }
    }

    /// More than 4 GiB, sparse: offsets past 32 bits in the disk and in the file.
    @Test func readsADiskLargerThan4GiB() throws {
        let directory = try TemporaryDirectory()
        let size: UInt64 = 5 * 1024 * MiB + 512 * 7
        let disk = try syntheticDisk(in: directory, size: size)
        let image = directory.file("big.vdi")
        try qemuConvert(disk.path, to: image, format: "vdi")
        let reader = try VDIReader(path: image)
        #expect(reader.virtualSize == size)
        #expect(reader.virtualSize == (try Qemu.info(image, format: "vdi")).virtualSize)
        #expect(try sameBytes(try readerRaw(reader, in: directory), disk.path))
    }

    /// A VDI with 64 KiB blocks (VirtualBox reads any power of two; qemu only 1 MiB), built by
    /// hand with blocks stored backwards, a zero block, and a partial last block.
    @Test func readsOtherBlockSizesAndAnyBlockOrder() throws {
        let directory = try TemporaryDirectory()
        let size: UInt64 = 8 * MiB + 512
        let disk = try syntheticDisk(in: directory, size: size)
        let source = try RawFile(path: disk.path, mode: .readOnly)
        let blockSize: UInt64 = 64 << 10
        let blocks = (size + blockSize - 1) / blockSize
        var header = VDIHeader(imageType: .dynamic, diskSize: size, uuidCreate: UUIDBytes.random(), uuidModify: UUIDBytes.random())
        header.blockSize = UInt32(blockSize)
        header.blockCount = UInt32(blocks)
        header.blockMapOffset = 512
        header.dataOffset = UInt32(512 + (blocks * 4 + 511) / 512 * 512)
        var map = [UInt32](repeating: VDIHeader.freeBlock, count: Int(blocks))
        var stored: [UInt64] = []
        for block in 0..<blocks {
            let length = Int(min(blockSize, size - block * blockSize))
            let bytes = try source.read(count: length, at: block * blockSize)
            if block == 2 { map[Int(block)] = VDIHeader.zeroBlock; continue }
            if bytes.allSatisfy({ $0 == 0 }) { continue }
            stored.append(block)
        }
        header.allocatedBlocks = UInt32(stored.count)
        let image = directory.file("64k.vdi")
        _ = FileManager.default.createFile(atPath: image, contents: nil)
        let file = try RawFile(path: image, mode: .readWrite)
        for (position, block) in stored.reversed().enumerated() {
            map[Int(block)] = UInt32(position)
            let length = Int(min(blockSize, size - block * blockSize))
            try file.write(try source.read(count: length, at: block * blockSize),
                           at: UInt64(header.dataOffset) + UInt64(position) * blockSize)
        }
        try file.write(header.encoded(), at: 0)
        try file.write(map.flatMap { le32($0) }, at: UInt64(header.blockMapOffset))

        let reader = try VDIReader(path: image)
        #expect(reader.virtualSize == size)
        #expect(reader.variant.contains("64 KiB blocks"), "\(reader.variant)")
        // Block 2 held data in the source but is marked zero: it must read as zeros.
        let raw = try readerRaw(reader, in: directory)
        var expected = try source.read(count: Int(size), at: 0)
        expected.replaceSubrange(Int(2 * blockSize)..<Int(3 * blockSize), with: [UInt8](repeating: 0, count: Int(blockSize)))
        #expect(try RawFile(path: raw, mode: .readOnly).read(count: Int(size), at: 0) == expected)
    }

    /// cbDisk that is not whole sectors (VBoxManage convertfromraw makes them): qemu rounds up.
    @Test func oddDiskSizeRoundsUpToASectorAsQemuDoes() throws {
        let directory = try TemporaryDirectory()
        let small = try smallVDI(in: directory)
        try patch(small.path, at: 368, withUnsafeBytes(of: (8 * MiB - 100).littleEndian) { Array($0) })
        let reader = try VDIReader(path: small.path)
        #expect(reader.virtualSize == 8 * MiB)
        #expect(reader.virtualSize == (try Qemu.info(small.path, format: "vdi")).virtualSize)
        #expect(try sameBytes(readerRaw(reader, in: directory), qemuRaw(small.path, format: "vdi", in: directory)))
    }

    @Test func truncatedFilesAreCalledTruncated() throws {
        let directory = try TemporaryDirectory()
        let small = try smallVDI(in: directory)
        let size = try RawFile(path: small.path, mode: .readOnly).size
        let header = try VDIReader(path: small.path).header
        let open = { (path: String) throws -> any DiskImageReader in try VDIReader(path: path) }

        let inHeader = try copy(small.path, to: "header.vdi", in: directory)
        try cut(inHeader, to: 300)
        expectReadError(.truncated, path: inHeader, offset: 0, open)

        let inMap = try copy(small.path, to: "map.vdi", in: directory)
        try cut(inMap, to: UInt64(header.blockMapOffset) + 10)
        expectReadError(.truncated, path: inMap, offset: UInt64(header.blockMapOffset), open)

        let inData = try copy(small.path, to: "data.vdi", in: directory)
        try cut(inData, to: size - 4096)
        expectReadError(.truncated, path: inData, mentioning: "bytes needed", open)
    }

    @Test func corruptHeadersAreCalledCorrupt() throws {
        let directory = try TemporaryDirectory()
        let small = try smallVDI(in: directory)
        let open = { (path: String) throws -> any DiskImageReader in try VDIReader(path: path) }
        func variant(_ name: String, _ offset: UInt64, _ bytes: [UInt8]) throws -> String {
            let path = try copy(small.path, to: name, in: directory)
            try patch(path, at: offset, bytes)
            return path
        }
        expectReadError(.corrupt, path: try variant("signature.vdi", 64, [0, 0, 0, 0]), offset: 64, mentioning: "0xbeda107f", open)
        expectReadError(.corrupt, path: try variant("version.vdi", 68, le32(0x0002_0001)), offset: 68, open)
        expectReadError(.corrupt, path: try variant("type.vdi", 76, le32(9)), offset: 76, open)
        expectReadError(.corrupt, path: try variant("blocksize.vdi", 376, le32(3 << 19)), offset: 376, mentioning: "power of two", open)
        expectReadError(.corrupt, path: try variant("tiny-block.vdi", 376, le32(256)), offset: 376, open)
        expectReadError(.corrupt, path: try variant("extra.vdi", 380, le32(3)), offset: 380, open)
        expectReadError(.corrupt, path: try variant("sector.vdi", 360, le32(4096)), offset: 360, open)
        expectReadError(.corrupt, path: try variant("blocks.vdi", 384, le32(0xFFFF_FFFF)), offset: 384, open)
        expectReadError(.corrupt, path: try variant("few-blocks.vdi", 384, le32(7)), offset: 384, open)
        expectReadError(.corrupt, path: try variant("allocated.vdi", 388, le32(1000)), offset: 388, open)
        expectReadError(.corrupt, path: try variant("map-unaligned.vdi", 340, le32(513)), offset: 340, open)
        expectReadError(.corrupt, path: try variant("data-overlaps-map.vdi", 344, le32(512)), offset: 344, open)
        // A map that lies beyond the end of the file (with the data area after it).
        let far = try variant("map-far.vdi", 340, le32(0x7FF0_0000))
        try patch(far, at: 344, le32(0x7FF1_0000))
        expectReadError(.truncated, path: far, offset: 0x7FF0_0000, open)
    }

    @Test func corruptBlockMapEntriesAreCaught() throws {
        let directory = try TemporaryDirectory()
        let small = try smallVDI(in: directory)
        let header = try VDIReader(path: small.path).header
        let map = UInt64(header.blockMapOffset)
        let open = { (path: String) throws -> any DiskImageReader in try VDIReader(path: path) }

        let beyond = try copy(small.path, to: "beyond.vdi", in: directory)
        try patch(beyond, at: map + 4 * 3, le32(header.allocatedBlocks))
        expectReadError(.corrupt, path: beyond, offset: map + 12, mentioning: "allocated", open)

        let twice = try copy(small.path, to: "twice.vdi", in: directory)
        try patch(twice, at: map + 4 * 1, le32(0))
        expectReadError(.corrupt, path: twice, offset: map + 4, mentioning: "entry 0", open)

        // The header claims one more block than the file holds, and an entry uses it.
        let missing = try copy(small.path, to: "missing.vdi", in: directory)
        try patch(missing, at: 388, le32(header.allocatedBlocks + 1))
        try patch(missing, at: map + 4 * 3, le32(header.allocatedBlocks))
        expectReadError(.truncated, path: missing,
                        offset: UInt64(header.dataOffset) + UInt64(header.allocatedBlocks) * MiB, open)
    }

    @Test func imagesThatNeedAParentAreUnsupported() throws {
        let directory = try TemporaryDirectory()
        let small = try smallVDI(in: directory)
        let open = { (path: String) throws -> any DiskImageReader in try VDIReader(path: path) }
        for (name, offset, bytes, words) in [("undo.vdi", 76, le32(3), "undo"), ("diff.vdi", 76, le32(4), "differencing"),
                                             ("link.vdi", 424, [UInt8](repeating: 0x11, count: 16), "link"),
                                             ("parent.vdi", 440, [UInt8](repeating: 0x22, count: 16), "parent"),
                                             ("extra.vdi", 380, le32(512), "extra data"),
                                             ("v1.0.vdi", 68, le32(0x0001_0000), "version 1.0")] as [(String, UInt64, [UInt8], String)] {
            let path = try copy(small.path, to: name, in: directory)
            try patch(path, at: offset, bytes)
            expectReadError(.unsupported, path: path, mentioning: words, open)
        }
    }

    @Test func fuzzedMetadataNeverCrashes() throws {
        let directory = try TemporaryDirectory()
        let small = try smallVDI(in: directory)
        let header = try VDIReader(path: small.path).header
        // The header's fields and the whole block map (8 entries).
        let regions: [Range<UInt64>] = [0..<512, UInt64(header.blockMapOffset)..<(UInt64(header.blockMapOffset) + 32)]
        let failures = try fuzz(small.path, regions: regions, iterations: 400, seed: 0x5EED_0001) { try VDIReader(path: $0) }
        #expect(failures > 50, "the flips should hit checked fields often")
        // Restored afterwards: the image still reads as before.
        #expect(try sameBytes(readerRaw(VDIReader(path: small.path), in: directory), small.disk))
    }
}
