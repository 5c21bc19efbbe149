import Foundation
import ImageCore
import ImageFormats
import Testing

/// `--max-output-size` and the gzip bounds: what an expansion may produce, and the one-line
/// errors past it.
@Suite struct ExpansionLimitTests {
    @Test func defaultIsAFactorOfTheDataWithAFloor() throws {
        let dir = try TestDirectory()
        let small = dir.file("small.raw")
        try writeAll(small, [UInt8](repeating: 7, count: 4096))
        let floor = ExpansionLimit.resolve(nil, inputs: [small])
        #expect(floor.bytes == ExpansionLimit.defaultFloor)
        #expect(floor.origin.contains("default --max-output-size"))

        // 32 MiB of data: 64 x 32 MiB = 2 GiB, above the floor. A hole costs nothing.
        let big = dir.file("big.raw")
        try makeSparseFile(big, size: 64 << 20)
        let handle = try RawFile(path: big, mode: .readWrite)
        try handle.write([UInt8](repeating: 1, count: 32 << 20), at: 0)
        let scaled = ExpansionLimit.resolve(nil, inputs: [big])
        #expect(scaled.bytes >= ExpansionLimit.defaultFactor * (32 << 20) && scaled.bytes <= ExpansionLimit.defaultFactor * (33 << 20))

        let explicit = ExpansionLimit.resolve(12345, inputs: [big])
        #expect(explicit.bytes == 12345 && explicit.origin == "the --max-output-size limit")
    }

    @Test func aLimitedReaderStopsPastTheLimit() throws {
        let dir = try TestDirectory()
        let raw = dir.file("disk.raw")
        try writeAll(raw, [UInt8](repeating: 0x5A, count: 1 << 20))
        let limit = ExpansionLimit(bytes: 65536, origin: "the --max-output-size limit")
        let reader = LimitedDiskImageReader(try RawDiskReader(path: raw), limit: limit)
        var handed: UInt64 = 0
        #expect(throws: ExpansionLimitError.exceeded(path: raw, what: "the raw image maps", limit: 65536,
                                                     origin: "the --max-output-size limit")) {
            try reader.forEachDataPiece { _, data in handed += UInt64(data.count) }
        }
        #expect(handed == 0, "the piece past the limit is never handed out")

        let enough = LimitedDiskImageReader(try RawDiskReader(path: raw), limit: ExpansionLimit(bytes: 1 << 20, origin: "x"))
        try enough.forEachDataPiece { _, data in handed += UInt64(data.count) }
        #expect(handed == 1 << 20)
        let message = ExpansionLimitError.exceeded(path: raw, what: "the raw image maps", limit: 65536, origin: "the --max-output-size limit").description
        #expect(message.hasPrefix(raw + ": ") && !message.contains("\n") && message.contains("--max-output-size"))
    }

    /// A gzip stream that goes on past the filesystem its superblock declares stops there, and
    /// leaves no scratch file.
    @Test func gzipStopsPastTheDeclaredFilesystem() throws {
        let dir = try TestDirectory()
        let scratch = dir.file("scratch")
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: false)
        let raw = dir.file("root.img")
        try makeExt3(raw, sizeKiB: 4096, label: "root", uuid: "6f1d0b8e-2c47-4c1a-8d0e-5b9a7e3f2a11")
        // The filesystem, then 3 MiB more of zeros: past the 4 MiB and a MiB of padding.
        let handle = try RawFile(path: raw, mode: .readWrite)
        try handle.truncate(to: 7 << 20)
        let path = dir.file("root.img.gz")
        try writeAll(path, try gzipBytes(raw))
        #expect(throws: ExpansionLimitError.pastDeclaredSize(path: path, declared: 5 << 20,
                                                            by: "that the ext2/3/4 superblock at byte 1024 declares, with a MiB of padding")) {
            _ = try InputImage.open(path: path, scratchDirectory: scratch)
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch).isEmpty)

        // Within a MiB of the filesystem's end, padding is accepted.
        try handle.truncate(to: (4 << 20) + 4096)
        try writeAll(path, try gzipBytes(raw))
        let image = try InputImage.open(path: path, scratchDirectory: scratch)
        #expect(image.filesystemSize == 4 << 20)
    }

    /// Without a declared size, every byte inflated counts, zeros included.
    @Test func gzipOfZerosStopsAtTheLimit() throws {
        let dir = try TestDirectory()
        let raw = dir.file("zeros.img")
        try makeSparseFile(raw, size: 8 << 20)
        let path = dir.file("zeros.img.gz")
        try writeAll(path, try gzipBytes(raw))
        #expect(throws: ExpansionLimitError.self) {
            _ = try InputImage.open(path: path, scratchDirectory: dir.path, maxOutputSize: 1 << 20)
        }
    }
}
