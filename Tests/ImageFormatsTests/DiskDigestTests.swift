import Digests
import Foundation
import ImageCore
import ImageFormats
import Testing
import TestSupport

/// The disk digest against an independent reader (Tests/Tools/blk-sha256.py, which hashes every
/// byte of a file the plain way), whatever pieces it is fed: whole, or cut at arbitrary offsets
/// with the zeros between them left out, across a partial first block, a whole zero segment, and a
/// short last block.
struct DiskDigestTests {
    /// Data at the start, a run that straddles blocks at an offset that is not even a sector
    /// boundary, a hole over a whole 128 MiB segment, and data in the last, short block.
    static let size: UInt64 = (600 << 20) + 1536
    static let dataRuns: [(offset: UInt64, count: Int)] = [(0, 3 << 20), ((300 << 20) + 700, 200_000), (size - 1000, 1000)]

    static func makeDisk(at path: String, seed: UInt64) throws -> [(UInt64, [UInt8])] {
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        let file = try RawFile(path: path, mode: .readWrite)
        try file.truncate(to: size)
        var generator = SplitMix(seed: seed)
        var runs: [(UInt64, [UInt8])] = []
        for (offset, count) in dataRuns {
            let bytes = (0..<count).map { _ in UInt8(truncatingIfNeeded: generator.next()) | 1 }
            try file.write(bytes, at: offset)
            runs.append((offset, bytes))
        }
        try file.sync()
        return runs
    }

    func independentDigest(_ path: String) throws -> String {
        let result = try Command.run("/usr/bin/python3", ["\(Fixture.repositoryRoot)/Tests/Tools/blk-sha256.py", path]).requireSuccess()
        return String(result.stdout.prefix(64))
    }

    func digest(of runs: [(UInt64, [UInt8])], cutEvery step: Int?) -> String {
        let digest = DiskDigest(size: Self.size)
        for (offset, bytes) in runs {
            bytes.withUnsafeBytes { all in
                var done = 0
                while done < all.count {
                    let count = min(step ?? all.count, all.count - done)
                    digest.update(UnsafeRawBufferPointer(rebasing: all[done..<(done + count)]), at: offset + UInt64(done))
                    done += count
                }
            }
        }
        return digest.finish()
    }

    @Test func matchesTheIndependentReaderHoweverThePiecesAreCut() throws {
        let dir = try TemporaryDirectory(prefix: "rehost-disk-digest")
        let path = dir.file("disk.raw")
        let runs = try Self.makeDisk(at: path, seed: 7)
        let expected = try independentDigest(path)
        #expect(digest(of: runs, cutEvery: nil) == expected)
        // Pieces that start and end inside blocks, smaller and larger than a block.
        for step in [512, 4096 + 1, 65536, 65536 * 3 + 17, 1 << 20] {
            #expect(digest(of: runs, cutEvery: step) == expected, "pieces of \(step) bytes")
        }
    }

    /// The parallel form over a mapped raw file (what `rehost digest` and `convert` use): only the
    /// segments with data are read, the runs of zero segments between them and the short last
    /// segment come from precomputed digests.
    @Test func theParallelFormOverARawFileMatches() throws {
        let dir = try TemporaryDirectory(prefix: "rehost-disk-digest")
        let path = dir.file("disk.raw")
        _ = try Self.makeDisk(at: path, seed: 3)
        let reader = try RawDiskReader(path: path)
        nonisolated(unsafe) let mapped = reader
        #expect(DiskDigest.digest(size: reader.size, dataRanges: reader.dataRanges) { mapped.bytes($0) } == (try independentDigest(path)))
        // No data at all: every segment from the precomputed digests.
        #expect(DiskDigest.digest(size: Self.size, dataRanges: []) { _ in UnsafeRawBufferPointer(start: nil, count: 0) }
                == DiskDigest(size: Self.size).finish())
    }

    @Test func differsWhenOneByteDiffersOrTheDiskIsLonger() throws {
        let dir = try TemporaryDirectory(prefix: "rehost-disk-digest")
        let runs = try Self.makeDisk(at: dir.file("disk.raw"), seed: 7)
        let base = digest(of: runs, cutEvery: nil)
        var changed = runs
        changed[1].1[100] ^= 0x80
        #expect(digest(of: changed, cutEvery: nil) != base)
        // The same data on a disk one sector longer: the zeros after it count.
        let longer = DiskDigest(size: Self.size + 512)
        for (offset, bytes) in runs { bytes.withUnsafeBytes { longer.update($0, at: offset) } }
        #expect(longer.finish() != base)
    }

    @Test func anEmptyAndAnAllZeroDiskMatchTheIndependentReader() throws {
        let dir = try TemporaryDirectory(prefix: "rehost-disk-digest")
        for size: UInt64 in [0, 512, 65536, (129 << 20) + 512] {
            let path = dir.file("zero-\(size).raw")
            _ = FileManager.default.createFile(atPath: path, contents: nil)
            try RawFile(path: path, mode: .readWrite).truncate(to: size)
            #expect(DiskDigest(size: size).finish() == (try independentDigest(path)), "\(size) zero bytes")
        }
    }
}
