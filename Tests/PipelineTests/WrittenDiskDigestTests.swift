import Foundation
import ImageCore
import ImageFormats
@testable import Pipeline
import Testing
import TestSupport

/// The digest taken while a disk is written trusts a block's hash only while nothing can have
/// changed it: a block written again after it was whole, or written through libext2fs's cache
/// (whose bytes reach the file later, unreported), is hashed again from the finished file. Each
/// case hashes the early bytes first, then changes the file, and checks the result against an
/// independent reader of the finished file.
struct WrittenDiskDigestTests {
    static let size: UInt64 = 8 << 20
    static let block = 64 << 10

    func disk(_ dir: TemporaryDirectory) throws -> (String, RawFile) {
        let path = dir.file("disk.raw")
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        let file = try RawFile(path: path, mode: .readWrite)
        try file.truncate(to: Self.size)
        return (path, file)
    }

    func bytes(_ count: Int, _ value: UInt8) -> [UInt8] { (0..<count).map { UInt8(truncatingIfNeeded: $0) &+ value } }

    func independentDigest(_ path: String) throws -> String {
        let result = try Command.run("/usr/bin/python3", ["\(Fixture.repositoryRoot)/Tests/Tools/blk-sha256.py", path]).requireSuccess()
        return String(result.stdout.prefix(64))
    }

    @Test func blocksWrittenOnceAreHashedDuringTheWritesAndMatch() throws {
        let dir = try TemporaryDirectory(prefix: "rehost-written-digest")
        let (path, file) = try disk(dir)
        let digest = try WrittenDiskDigest(path: path, size: Self.size)
        // 40 blocks in uneven direct writes, and a lone sector elsewhere.
        var offset: UInt64 = 1 << 20
        for count in [3 * Self.block + 4096, 17 * Self.block - 4096, 20 * Self.block] {
            try file.write(bytes(count, UInt8(count % 251)), at: offset)
            digest.didWrite(offset..<(offset + UInt64(count)), direct: true)
            offset += UInt64(count)
        }
        try file.write(bytes(512, 9), at: 6 << 20)
        digest.didWrite((6 << 20)..<((6 << 20) + 512), direct: true)
        #expect(digest.finish(reading: try RawDiskReader(path: path)) == (try independentDigest(path)))
    }

    @Test func aBlockWrittenAgainAfterItWasWholeIsHashedFromTheFinishedFile() throws {
        let dir = try TemporaryDirectory(prefix: "rehost-written-digest")
        let (path, file) = try disk(dir)
        let digest = try WrittenDiskDigest(path: path, size: Self.size)
        try file.write(bytes(32 * Self.block, 1), at: 0)
        digest.didWrite(0..<UInt64(32 * Self.block), direct: true)
        digest.waitForHashing()
        // Half of block 5 rewritten: the block is never whole again, so only the taint saves it.
        let rewrite = UInt64(5 * Self.block)
        try file.write(bytes(Self.block / 2, 77), at: rewrite)
        digest.didWrite(rewrite..<(rewrite + UInt64(Self.block / 2)), direct: true)
        #expect(digest.finish(reading: try RawDiskReader(path: path)) == (try independentDigest(path)))
    }

    @Test func aBlockWrittenThroughTheCacheIsHashedFromTheFinishedFile() throws {
        let dir = try TemporaryDirectory(prefix: "rehost-written-digest")
        let (path, file) = try disk(dir)
        let digest = try WrittenDiskDigest(path: path, size: Self.size)
        // Blocks 0-31 written directly, except the second half of block 3, written "through
        // the cache": reported, but its bytes reach the file only later.
        let cached = UInt64(3 * Self.block + Self.block / 2)..<UInt64(4 * Self.block)
        try file.write(bytes(32 * Self.block, 3), at: 0)
        digest.didWrite(0..<cached.lowerBound, direct: true)
        digest.didWrite(cached, direct: false)
        digest.didWrite(cached.upperBound..<UInt64(32 * Self.block), direct: true)
        digest.waitForHashing()
        try file.write(bytes(Int(cached.count), 200), at: cached.lowerBound)
        #expect(digest.finish(reading: try RawDiskReader(path: path)) == (try independentDigest(path)))
    }
}
