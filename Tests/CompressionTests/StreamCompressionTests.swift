import Compression
import Foundation
import Testing
import TestSupport

/// A CLI tool that writes one member of a format, as initrd builders and module packagers run it.
struct StreamTool: Sendable, CustomTestStringConvertible {
    let format: StreamCompression
    let program: String
    let arguments: [String]
    var testDescription: String { ([program] + arguments).joined(separator: " ") }

    static let all: [StreamTool] = [
        StreamTool(format: .gzip, program: "gzip", arguments: ["-9n", "-c"]),
        StreamTool(format: .xz, program: "xz", arguments: ["--check=crc32", "-c"]),
        StreamTool(format: .xz, program: "xz", arguments: ["-c"]),
        StreamTool(format: .lzma, program: "lzma", arguments: ["-c"]),
        StreamTool(format: .bzip2, program: "bzip2", arguments: ["-c"]),
        StreamTool(format: .lz4, program: "lz4", arguments: ["-l", "-c"]),
        StreamTool(format: .zstd, program: "zstd", arguments: ["-q", "-c"]),
    ]

    /// The tool's output for `data`, read from stdin and written to stdout.
    func compress(_ data: [UInt8]) throws -> [UInt8] {
        try Command.run(program, arguments, stdin: data).requireSuccess().stdoutBytes
    }
}

enum StreamSamples {
    /// Text, then random bytes, then text: more than one 256 KiB output chunk, and both
    /// compressible and incompressible stretches.
    static let data: [UInt8] = {
        var random = SplitMix(seed: 0x5EED)
        let text = Array((1...12000).map { "line \($0) of an initramfs sample\n" }.joined().utf8)
        return text + random.bytes(100_000) + text
    }()
    static let small = Array("a small second member\n".utf8)
}

/// Calls `decompressMember` on `bytes` and returns the typed error, or nil if it decoded.
func memberError(_ format: StreamCompression, _ bytes: [UInt8], limit: Int = 64 << 20) -> StreamCompressionError? {
    do {
        _ = try bytes.withUnsafeBytes { try format.decompressMember($0, name: "t", baseOffset: 1000, limit: limit) }
        return nil
    } catch let error as StreamCompressionError {
        return error
    } catch {
        Issue.record("untyped error \(error)")
        return nil
    }
}

func isTruncated(_ error: StreamCompressionError?) -> Bool {
    if case .truncated = error { return true } else { return false }
}

func isCorrupt(_ error: StreamCompressionError?) -> Bool {
    if case .corrupt = error { return true } else { return false }
}

@Suite struct StreamCompressionTests {
    @Test(arguments: StreamTool.all)
    func decodesWhatTheToolWrote(_ tool: StreamTool) throws {
        let packed = try tool.compress(StreamSamples.data)
        #expect(StreamCompression.detect(packed) == tool.format)
        let (output, consumed) = try packed.withUnsafeBytes {
            try tool.format.decompressMember($0, name: "sample", baseOffset: 0, limit: 1 << 24)
        }
        #expect(output == StreamSamples.data)
        #expect(consumed == packed.count)
        let all = try packed.withUnsafeBytes { try tool.format.decompressAll($0, name: "sample", limit: 1 << 24) }
        #expect(all == StreamSamples.data)
    }

    @Test(arguments: StreamTool.all)
    func emptyInputDecodesFromTheTool(_ tool: StreamTool) throws {
        let packed = try tool.compress([])
        let (output, consumed) = try packed.withUnsafeBytes {
            try tool.format.decompressMember($0, name: "empty", baseOffset: 0, limit: 16)
        }
        #expect(output.isEmpty)
        #expect(consumed == packed.count)
    }

    /// What follows a member (another member, zeros, garbage) is not consumed.
    @Test(arguments: StreamTool.all)
    func consumedStopsAtTheMembersEnd(_ tool: StreamTool) throws {
        let first = try tool.compress(StreamSamples.data)
        let second = try tool.compress(StreamSamples.small)
        // lz4 legacy has no end marker: only a zero size or a new magic ends it.
        let followers: [[UInt8]] = tool.format == .lz4
            ? [second, [0, 0, 0, 0, 0x47, 0x41, 0x52, 0x42]]
            : [second, [0, 0, 0, 0, 0x47, 0x41, 0x52, 0x42], Array("garbage after the member".utf8)]
        for follower in followers {
            let joined = first + follower
            let (output, consumed) = try joined.withUnsafeBytes {
                try tool.format.decompressMember($0, name: "joined", baseOffset: 0, limit: 1 << 24)
            }
            #expect(output == StreamSamples.data)
            #expect(consumed == first.count, "followed by \(follower.count) bytes")
        }
    }

    @Test(arguments: StreamTool.all)
    func concatenatedMembersDecodeToTheConcatenation(_ tool: StreamTool) throws {
        let first = try tool.compress(StreamSamples.data)
        let second = try tool.compress(StreamSamples.small)
        // Zeros between and after members: xz stream padding, tape blocks, initrd alignment.
        let joined = first + [0, 0, 0, 0] + second + [UInt8](repeating: 0, count: 12)
        let all = try joined.withUnsafeBytes { try tool.format.decompressAll($0, name: "joined", limit: 1 << 24) }
        #expect(all == StreamSamples.data + StreamSamples.small)
        let direct = first + second
        let both = try direct.withUnsafeBytes { try tool.format.decompressAll($0, name: "joined", limit: 1 << 24) }
        #expect(both == StreamSamples.data + StreamSamples.small)
    }

    @Test(arguments: StreamTool.all.filter { $0.format != .lz4 })
    func trailingGarbageIsCorruptAtItsOffset(_ tool: StreamTool) throws {
        let first = try tool.compress(StreamSamples.small)
        let joined = first + [0, 0] + Array("GARBAGE!".utf8)
        var caught: StreamCompressionError?
        do {
            _ = try joined.withUnsafeBytes { try tool.format.decompressAll($0, name: "g", limit: 1 << 20) }
        } catch let error as StreamCompressionError {
            caught = error
        }
        guard case let .corrupt(name, offset, format, _) = caught else {
            Issue.record("expected corrupt, got \(String(describing: caught))")
            return
        }
        #expect(name == "g")
        #expect(format == tool.format)
        #expect(offset == UInt64(first.count + 2))
    }

    @Test(arguments: StreamTool.all)
    func truncatedInputIsTruncated(_ tool: StreamTool) throws {
        let packed = try tool.compress(StreamSamples.data)
        for cut in [0, 1, packed.count / 3, packed.count / 2, packed.count - 1] {
            // A cut on an lz4 block boundary is a complete stream (no end marker); the cuts
            // chosen here fall inside blocks.
            if tool.format == .lz4 && cut == 4 { continue }
            let error = memberError(tool.format, Array(packed.prefix(cut)))
            #expect(isTruncated(error), "cut at \(cut): \(String(describing: error))")
            if case let .truncated(name, offset, format) = error {
                #expect(name == "t" && format == tool.format)
                #expect(offset >= 1000 && offset <= 1000 + UInt64(cut))
            }
        }
    }

    /// Formats with a checksum over the data notice any flipped byte in it.
    @Test(arguments: StreamTool.all.filter { [.gzip, .xz, .bzip2, .zstd].contains($0.format) })
    func flippedDataIsCorrupt(_ tool: StreamTool) throws {
        let packed = try tool.compress(StreamSamples.data)
        for position in [packed.count / 4, packed.count / 2, packed.count - 6] {
            var damaged = packed
            damaged[position] ^= 0x55
            let error = memberError(tool.format, damaged)
            #expect(isCorrupt(error), "flip at \(position): \(String(describing: error))")
            if case let .corrupt(_, offset, _, detail) = error {
                #expect(offset >= 1000 && offset <= 1000 + UInt64(packed.count))
                #expect(!detail.isEmpty)
            }
        }
    }

    @Test func damagedHeadersAreCorrupt() throws {
        // lzma-alone: properties byte beyond lc/lp/pb's range.
        var lzma = try StreamTool(format: .lzma, program: "lzma", arguments: ["-c"]).compress(StreamSamples.data)
        lzma[0] = 0xff
        #expect(isCorrupt(memberError(.lzma, lzma)))
        // lz4 legacy: a block size larger than any 8 MiB block can compress to.
        var lz4 = try StreamTool(format: .lz4, program: "lz4", arguments: ["-l", "-c"]).compress(StreamSamples.data)
        lz4.replaceSubrange(4..<8, with: [0xff, 0xff, 0xff, 0x7f])
        #expect(memberError(.lz4, lz4) == .corrupt(name: "t", offset: 1004, format: .lz4,
                                                    detail: "block size 2147483647 exceeds the largest possible block (8421520 bytes)"))
        // lz4 legacy: the wrong magic.
        lz4.replaceSubrange(0..<4, with: [0x04, 0x22, 0x4d, 0x18])
        #expect(isCorrupt(memberError(.lz4, lz4)))
        // Each decoder refuses another format's magic.
        let gzip = try StreamTool(format: .gzip, program: "gzip", arguments: ["-c"]).compress(StreamSamples.small)
        for format in StreamCompression.allCases where format != .gzip && format != .lzo && format != .lz4 {
            #expect(isCorrupt(memberError(format, gzip)), "\(format)")
        }
    }

    /// Small inputs that expand hugely stop at the limit instead of filling memory.
    @Test(arguments: StreamTool.all)
    func bombsStopAtTheLimit(_ tool: StreamTool) throws {
        let zeros = [UInt8](repeating: 0, count: 12 << 20)
        let packed = try tool.compress(zeros)
        #expect(packed.count < 1 << 20)
        let error = memberError(tool.format, packed, limit: 1 << 20)
        #expect(error == .outputTooLarge(name: "t", format: tool.format, limit: 1 << 20))
        // Exactly the output size is allowed.
        let small = try tool.compress(StreamSamples.small)
        #expect(memberError(tool.format, small, limit: StreamSamples.small.count) == nil)
        #expect(memberError(tool.format, small, limit: StreamSamples.small.count - 1)
                == .outputTooLarge(name: "t", format: tool.format, limit: StreamSamples.small.count - 1))
    }

    @Test func lz4StreamsLongerThanOneBlock() throws {
        // 8 MiB per legacy block: 9 MiB makes two blocks.
        var random = SplitMix(seed: 7)
        let data = (0..<(9 << 20) / 4096).flatMap { _ in [UInt8](repeating: UInt8(random.below(4)), count: 4096) }
        let packed = try StreamTool(format: .lz4, program: "lz4", arguments: ["-l", "-c"]).compress(data)
        let (output, consumed) = try packed.withUnsafeBytes {
            try StreamCompression.lz4.decompressMember($0, name: "big", baseOffset: 0, limit: 1 << 30)
        }
        #expect(output == data)
        #expect(consumed == packed.count)
    }

    @Test func lzoIsRefusedWithAdvice() {
        let error = memberError(.lzo, [0x89, 0x4c, 0x5a, 0x4f, 0x00, 0x0d, 0x0a, 0x1a, 0x0a])
        guard case let .unsupported(name, format, advice) = error else {
            Issue.record("expected unsupported, got \(String(describing: error))")
            return
        }
        #expect(name == "t" && format == .lzo && advice.contains("gzip"))
    }

    @Test func detectFollowsTheKernelsMagicTable() {
        let table: [([UInt8], StreamCompression?)] = [
            ([0x1f, 0x8b, 0x08], .gzip), ([0x1f, 0x9e], .gzip), ([0x42, 0x5a, 0x68], .bzip2),
            ([0x5d, 0x00, 0x00], .lzma), ([0xfd, 0x37, 0x7a, 0x58], .xz), ([0x89, 0x4c, 0x5a], .lzo),
            ([0x02, 0x21, 0x4c, 0x18], .lz4), ([0x28, 0xb5, 0x2f, 0xfd], .zstd),
            ([0x30, 0x37, 0x30, 0x37], nil), ([0x1f], nil), ([], nil), ([0x04, 0x22, 0x4d, 0x18], nil),
            ([0x5d, 0x01], nil), ([0x00, 0x00], nil),
        ]
        for (prefix, expected) in table {
            #expect(StreamCompression.detect(prefix) == expected, "\(prefix)")
            #expect(StreamCompression.detect(prefix[...]) == expected, "\(prefix) as a slice")
        }
    }

    @Test func gzipOutputIsAcceptedByGzip() throws {
        let packed = StreamCompression.gzip(StreamSamples.data)
        // mtime 0 and OS byte 3 (Unix): reproducible output, as `gzip -n` writes.
        #expect(Array(packed.prefix(4)) == [0x1f, 0x8b, 0x08, 0x00])
        #expect(Array(packed[4..<8]) == [0, 0, 0, 0])
        #expect(packed[9] == 3)
        let dir = try TemporaryDirectory()
        let path = dir.file("member.gz")
        _ = FileManager.default.createFile(atPath: path, contents: Data(packed))
        try Command.run("gzip", ["-t", path]).requireSuccess()
        #expect(try Command.run("gzip", ["-dc", path]).requireSuccess().stdoutBytes == StreamSamples.data)
        let (output, consumed) = try packed.withUnsafeBytes {
            try StreamCompression.gzip.decompressMember($0, name: "ours", baseOffset: 0, limit: 1 << 24)
        }
        #expect(output == StreamSamples.data && consumed == packed.count)
        let empty = StreamCompression.gzip([], level: 1)
        #expect(try Command.run("gzip", ["-dc"], stdin: empty).requireSuccess().stdoutBytes.isEmpty)
    }

    @Test func errorsNameTheFileOffsetAndFormat() {
        #expect(StreamCompressionError.truncated(name: "initrd.img", offset: 77, format: .xz).description
                == "initrd.img: truncated: the xz stream ends at byte 77 before its end")
        #expect(StreamCompressionError.corrupt(name: "m.ko.zst", offset: 5, format: .zstd, detail: "bad").description
                == "m.ko.zst: corrupt zstd data at byte 5: bad")
    }

    /// Mutated members (flipped, cut, spliced bytes) only ever throw typed errors; the fixed
    /// seed makes every run try the same inputs.
    @Test(arguments: StreamTool.all)
    func fuzzedMembersOnlyThrowTypedErrors(_ tool: StreamTool) throws {
        let sample = Array(StreamSamples.data.prefix(6000)) + Array(StreamSamples.data[130_000..<131_000])
        let packed = try tool.compress(sample) + tool.compress(StreamSamples.small)
        var random = SplitMix(seed: 0xF022 &+ UInt64(tool.testDescription.utf8.count))
        var outcomes = [0, 0]
        for _ in 0..<300 {
            var mutated = packed
            switch random.below(4) {
            case 0:
                for _ in 0...random.below(4) { mutated[random.below(mutated.count)] ^= UInt8(1 + random.below(255)) }
            case 1:
                mutated.removeLast(random.below(mutated.count))
                if !mutated.isEmpty { mutated[random.below(mutated.count)] = UInt8(random.below(256)) }
            case 2:
                let at = random.below(mutated.count)
                mutated.insert(contentsOf: random.bytes(1 + random.below(16)), at: at)
            default:
                // Header fields are where sizes live: hit the first 32 bytes.
                mutated[random.below(min(32, mutated.count))] = UInt8(random.below(256))
            }
            let error = memberError(tool.format, mutated, limit: 1 << 20)
            outcomes[error == nil ? 0 : 1] += 1
            _ = try? mutated.withUnsafeBytes { try tool.format.decompressAll($0, name: "f", limit: 1 << 20) }
        }
        #expect(outcomes[1] > 0)
    }
}
