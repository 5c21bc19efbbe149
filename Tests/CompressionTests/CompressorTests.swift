import Compression
import Digests
import Foundation
import Testing
import TestSupport

/// Each compressor's output decodes with an independent tool to the input, and the digests
/// agree with coreutils.
struct CompressorTests {
    static let text = Array(String(repeating: "rehost compresses clusters in parallel\n", count: 1700).prefix(65536).utf8)

    @Test(arguments: [Compressor.zlibZlib, .libdeflateZlib])
    func zlibStreamsDecodeWithPython(_ compressor: Compressor) throws {
        let packed = try #require(Self.text.withUnsafeBytes { compressor.compress($0, level: 6, limit: 65536) })
        let dir = try TemporaryDirectory()
        _ = FileManager.default.createFile(atPath: dir.file("packed"), contents: Data(packed))
        let decoded = try Command.run("python3", ["-c", "import sys,zlib; sys.stdout.buffer.write(zlib.decompress(open(sys.argv[1],'rb').read()))",
                                                  dir.file("packed")]).requireSuccess()
        #expect(decoded.stdoutBytes == Self.text)
    }

    @Test func rawDeflateUsesAFourKilobyteWindow() throws {
        let packed = try #require(Self.text.withUnsafeBytes { Compressor.zlibRawDeflate4K.compress($0, level: 6, limit: 65536) })
        let dir = try TemporaryDirectory()
        _ = FileManager.default.createFile(atPath: dir.file("packed"), contents: Data(packed))
        // wbits -12: what qemu inflates qcow2 clusters with; a wider window would fail here.
        let decoded = try Command.run("python3", ["-c", "import sys,zlib; sys.stdout.buffer.write(zlib.decompressobj(-12).decompress(open(sys.argv[1],'rb').read()))",
                                                  dir.file("packed")]).requireSuccess()
        #expect(decoded.stdoutBytes == Self.text)
    }

    @Test func zstdFramesDecodeWithTheZstdTool() throws {
        let packed = try #require(Self.text.withUnsafeBytes { Compressor.zstd.compress($0, level: 3, limit: 65536) })
        let dir = try TemporaryDirectory()
        _ = FileManager.default.createFile(atPath: dir.file("packed.zst"), contents: Data(packed))
        let decoded = try Command.run("python3", ["-c", """
            import subprocess, sys
            sys.stdout.buffer.write(subprocess.run(['zstd', '-dc', sys.argv[1]], capture_output=True, check=True).stdout)
            """, dir.file("packed.zst")]).requireSuccess()
        #expect(decoded.stdoutBytes == Self.text)
    }

    @Test func incompressibleDataIsRefusedSoItIsStoredAsIs() {
        var generator = SystemRandomNumberGenerator()
        let noise = (0..<65536).map { _ in UInt8.random(in: 0...255, using: &generator) }
        for compressor in Compressor.allCases {
            #expect(noise.withUnsafeBytes { compressor.compress($0, level: 6, limit: 65536) } == nil, "\(compressor)")
        }
    }

    @Test func parallelMapKeepsOrder() {
        let results = parallelMap(1000) { $0 * $0 }
        #expect(results == (0..<1000).map { $0 * $0 })
    }

    @Test(arguments: [(Digest.Algorithm.sha256, "sha256sum"), (.sha1, "sha1sum")])
    func digestsAgreeWithCoreutils(algorithm: Digest.Algorithm, tool: String) throws {
        let dir = try TemporaryDirectory()
        _ = FileManager.default.createFile(atPath: dir.file("data"), contents: Data(Self.text))
        let expected = try Command.run(tool, [dir.file("data")]).requireSuccess().stdout.split(separator: " ").first.map(String.init)
        #expect(try Digest.ofFile(dir.file("data"), algorithm) == expected)
        let streamed = Digest(algorithm)
        streamed.update(Array(Self.text.prefix(1000)))
        streamed.update(Array(Self.text.dropFirst(1000)))
        #expect(streamed.finish() == expected)
    }

    /// Holes are hashed as zeros without being read: a sparse file with data at its start, in its
    /// middle (not block-aligned) and none at its end, and a file that is one hole.
    @Test(arguments: [(Digest.Algorithm.sha256, "sha256sum"), (.sha1, "sha1sum")])
    func sparseFileDigestsAgreeWithCoreutils(algorithm: Digest.Algorithm, tool: String) throws {
        let dir = try TemporaryDirectory()
        let sparse = dir.file("sparse"), empty = dir.file("hole")
        try Command.run("/bin/sh", ["-c", """
            printf start > '\(sparse)' && printf middle | dd of='\(sparse)' bs=1 seek=5000001 conv=notrunc 2>/dev/null \
            && truncate -s 23000017 '\(sparse)' && truncate -s 9437184 '\(empty)'
            """]).requireSuccess()
        for path in [sparse, empty] {
            let expected = try Command.run(tool, [path]).requireSuccess().stdout.split(separator: " ").first.map(String.init)
            #expect(try Digest.ofFile(path, algorithm) == expected)
            #expect(try BackgroundDigest(path: path, algorithm).wait() == expected)
        }
    }
}
