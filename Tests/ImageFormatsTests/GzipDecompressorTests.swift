import Foundation
import Testing
import Zlib

/// Feeds `compressed` in chunks of `chunk` bytes and collects the output.
private func inflateAll(_ compressed: [UInt8], name: String = "test.gz", chunk: Int = 7777) throws -> [UInt8] {
    let decompressor = try GzipDecompressor(name: name, outputChunkSize: 64 * 1024)
    var output: [UInt8] = []
    var start = 0
    while start < compressed.count {
        let end = min(compressed.count, start + chunk)
        try compressed[start..<end].withUnsafeBytes { piece in
            try decompressor.decompress(piece) { output.append(contentsOf: $0) }
        }
        start = end
    }
    try decompressor.finish()
    return output
}

@Suite struct GzipDecompressorTests {
    @Test func decodesWhatGzipWrote() throws {
        let dir = try TestDirectory()
        let original = sampleBytes(count: 3_000_000, seed: 42)
        try writeAll(dir.file("data"), original)
        let compressed = try gzipBytes(dir.file("data"))
        #expect(compressed.count < original.count)
        #expect(try inflateAll(compressed) == original)
        #expect(try inflateAll(compressed, chunk: 1) .count == original.count)
    }

    @Test func concatenatedMembersDecodeToConcatenation() throws {
        let dir = try TestDirectory()
        let first = sampleBytes(count: 300_000, seed: 1)
        let second = sampleBytes(count: 200_001, seed: 2)
        try writeAll(dir.file("a"), first)
        try writeAll(dir.file("b"), second)
        let joined = try gzipBytes(dir.file("a")) + gzipBytes(dir.file("b"))
        // The real tool agrees that this is one valid stream.
        try writeAll(dir.file("joined.gz"), joined)
        #expect(try run("gzip", ["-d", "-c", dir.file("joined.gz")]) == first + second)
        #expect(try inflateAll(joined) == first + second)
        #expect(try inflateAll(joined, chunk: 65536) == first + second)
    }

    @Test func zeroPaddingAfterLastMemberIsIgnoredButGarbageIsNot() throws {
        let dir = try TestDirectory()
        let original = sampleBytes(count: 10_000, seed: 3)
        try writeAll(dir.file("a"), original)
        let compressed = try gzipBytes(dir.file("a"))
        #expect(try inflateAll(compressed + [UInt8](repeating: 0, count: 512)) == original)
        #expect(throws: ZlibError.trailingGarbage(name: "test.gz", compressedOffset: UInt64(compressed.count))) {
            _ = try inflateAll(compressed + Array("junk".utf8))
        }
    }

    @Test func corruptDataNamesTheCompressedOffset() throws {
        let dir = try TestDirectory()
        try writeAll(dir.file("a"), sampleBytes(count: 100_000, seed: 4))
        var compressed = try gzipBytes(dir.file("a"))
        // With -n the gzip header is 10 bytes; the first deflate block header follows.
        // BTYPE 11 is reserved.
        compressed[10] = 0xff
        do {
            _ = try inflateAll(compressed, name: "xen.img.gz")
            Issue.record("corrupt data was accepted")
        } catch let error as ZlibError {
            guard case let .corrupt(name, offset, reason) = error else {
                Issue.record("expected corrupt, got \(error)")
                return
            }
            #expect(name == "xen.img.gz")
            #expect(reason == "invalid block type")
            #expect(offset >= 10 && offset <= 11)
            #expect(error.description == "xen.img.gz: corrupt gzip data at compressed byte \(offset): invalid block type")
        }
    }

    @Test func flippedPayloadByteFailsTheChecksum() throws {
        let dir = try TestDirectory()
        try writeAll(dir.file("a"), sampleBytes(count: 100_000, seed: 5))
        var compressed = try gzipBytes(dir.file("a"))
        // Corrupt the stored CRC32 in the trailer: the data decodes but must be refused.
        compressed[compressed.count - 8] ^= 0x55
        #expect(throws: ZlibError.self) { _ = try inflateAll(compressed) }
    }

    @Test func truncatedStreamIsReported() throws {
        let dir = try TestDirectory()
        try writeAll(dir.file("a"), sampleBytes(count: 500_000, seed: 6))
        let compressed = try gzipBytes(dir.file("a"))
        let half = Array(compressed[0..<compressed.count / 2])
        #expect(throws: ZlibError.truncated(name: "test.gz", compressedOffset: UInt64(half.count))) {
            _ = try inflateAll(half)
        }
        // A second member cut short is as truncated as a first one.
        let twoMembers = compressed + compressed[0..<100]
        #expect(throws: ZlibError.truncated(name: "test.gz", compressedOffset: UInt64(twoMembers.count))) {
            _ = try inflateAll(twoMembers)
        }
        #expect(throws: ZlibError.truncated(name: "test.gz", compressedOffset: 0)) { _ = try inflateAll([]) }
    }
}
