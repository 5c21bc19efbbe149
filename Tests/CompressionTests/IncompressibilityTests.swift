import Compression
import Foundation
import Testing
import TestSupport

/// The pre-check that lets writers skip the compressor: it must say "incompressible" only for
/// data the compressors themselves cannot shrink, and never for ordered data whose byte
/// histogram happens to be flat.
struct IncompressibilityTests {
    func randomBytes(_ count: Int, seed: UInt64) -> [UInt8] {
        var generator = SplitMix(seed: seed)
        return generator.bytes(count)
    }

    func check(_ bytes: [UInt8]) -> Bool { bytes.withUnsafeBytes { Incompressibility.check($0) } }

    func qcow2Deflate(_ bytes: [UInt8]) -> Int? {
        bytes.withUnsafeBytes { Compressor.zlibRawDeflate4K.compress($0, level: 6, limit: bytes.count)?.count }
    }

    @Test func randomDataIsIncompressibleAndZlibAgrees() {
        for seed in 1...8 as ClosedRange<UInt64> {
            let cluster = randomBytes(65536, seed: seed)
            #expect(check(cluster))
            #expect(qcow2Deflate(cluster) == nil, "zlib shrank a cluster the check called incompressible")
        }
    }

    @Test func textIsCompressible() {
        let text = Array(String(repeating: "root:x:0:0:root:/root:/bin/bash\n", count: 2100).utf8.prefix(65536))
        #expect(!check(text))
        #expect(qcow2Deflate(text) != nil)
    }

    /// Each byte value in a run of 256: a perfectly flat histogram, yet deflate shrinks it to
    /// almost nothing. The histogram alone would be fooled; the confirmation is not.
    @Test func runsOfEveryByteValueAreCompressible() {
        let runs = (0..<65536).map { UInt8(truncatingIfNeeded: $0 / 256) }
        let cycles = (0..<65536).map { UInt8(truncatingIfNeeded: $0) }
        for data in [runs, cycles] {
            #expect(!check(data))
            #expect(qcow2Deflate(data) != nil)
        }
    }

    /// Random bytes repeated within deflate's 4 KiB qcow2 window compress; so must the check say.
    @Test func repeatedRandomBlocksAreCompressible() {
        let block = randomBytes(2048, seed: 42)
        let repeated = Array((0..<32).map { _ in block }.joined())
        #expect(!check(repeated))
        #expect(qcow2Deflate(repeated) != nil)
    }

    @Test func mostlyRandomWithATextBlockIsCompressible() {
        var cluster = randomBytes(65536, seed: 7)
        let text = Array(String(repeating: "a", count: 4096).utf8)
        cluster.replaceSubrange(8192..<12288, with: text)
        #expect(!check(cluster))
        #expect(qcow2Deflate(cluster) != nil)
    }

    @Test func tooShortToJudge() {
        #expect(!check(randomBytes(1000, seed: 3)))
    }
}
