import Foundation
import Testing
import Zlib

@Suite struct DeflateTests {
    @Test(arguments: [(Int32(1), false), (6, false), (9, true), (0, true)])
    func roundTrip(level: Int32, raw: Bool) throws {
        let original = sampleBytes(count: 65536, seed: UInt64(level) + 10)
        let compressed = original.withUnsafeBytes { Deflate.compress($0, level: level, raw: raw) }
        if level > 0 { #expect(compressed.count < original.count) }
        let restored = try compressed.withUnsafeBytes {
            try Deflate.decompress($0, raw: raw, capacity: original.count)
        }
        #expect(restored == original)
    }

    @Test func zlibHeaderOnlyWhenNotRaw() {
        let data = sampleBytes(count: 1000, seed: 7)
        let wrapped = data.withUnsafeBytes { Deflate.compress($0, level: 6, raw: false) }
        // RFC 1950: CMF 0x78 for deflate with a 32 KiB window; header checksum is a multiple of 31.
        #expect(wrapped[0] == 0x78)
        #expect((UInt16(wrapped[0]) << 8 | UInt16(wrapped[1])) % 31 == 0)
        let raw = data.withUnsafeBytes { Deflate.compress($0, level: 6, raw: true) }
        #expect(raw.count == wrapped.count - 6)
    }

    @Test func smallWindowForQcow2Readers() throws {
        let original = sampleBytes(count: 65536, seed: 8)
        let compressed = original.withUnsafeBytes { Deflate.compress($0, level: 6, raw: true, windowBits: 12) }
        let restored = try compressed.withUnsafeBytes {
            try Deflate.decompress($0, raw: true, capacity: original.count, windowBits: 12)
        }
        #expect(restored == original)
    }

    @Test func paddingAfterStreamIsIgnoredAndOverflowRefused() throws {
        let original = sampleBytes(count: 4096, seed: 9)
        let padded = original.withUnsafeBytes { Deflate.compress($0, level: 6, raw: true) } + [UInt8](repeating: 0, count: 300)
        #expect(try padded.withUnsafeBytes { try Deflate.decompress($0, raw: true, capacity: 4096) } == original)
        #expect(throws: ZlibError.outputTooLarge(name: "cluster 7", capacity: 4095)) {
            _ = try padded.withUnsafeBytes { try Deflate.decompress($0, raw: true, capacity: 4095, name: "cluster 7") }
        }
    }

    @Test func corruptAndTruncatedInputThrow() throws {
        let original = sampleBytes(count: 4096, seed: 11)
        let compressed = original.withUnsafeBytes { Deflate.compress($0, level: 6, raw: false) }
        let cut = Array(compressed[0..<compressed.count / 2])
        #expect(throws: ZlibError.self) { _ = try cut.withUnsafeBytes { try Deflate.decompress($0, raw: false, capacity: 4096) } }
        var broken = compressed
        broken[0] = 0x00
        #expect(throws: ZlibError.self) { _ = try broken.withUnsafeBytes { try Deflate.decompress($0, raw: false, capacity: 4096) } }
    }

    @Test func compressesOnManyThreadsAtOnce() throws {
        let blocks = (0..<16).map { sampleBytes(count: 32768, seed: UInt64($0) + 100) }
        nonisolated(unsafe) var results = [[UInt8]](repeating: [], count: blocks.count)
        results.withUnsafeMutableBufferPointer { slots in
            nonisolated(unsafe) let slots = slots
            DispatchQueue.concurrentPerform(iterations: blocks.count) { index in
                slots[index] = blocks[index].withUnsafeBytes { Deflate.compress($0, level: 6, raw: true) }
            }
        }
        for (index, compressed) in results.enumerated() {
            let restored = try compressed.withUnsafeBytes { try Deflate.decompress($0, raw: true, capacity: 32768) }
            #expect(restored == blocks[index])
        }
    }
}
