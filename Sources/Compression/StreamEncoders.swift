import CDeflate
import CLzma
import CZstd
import Dispatch
import ImageCore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Compresses one long byte stream (a whole raw disk) as it arrives, front to back, handing the
/// compressed bytes to `output` in order. Runs of zeros are given by their length
/// (`appendZeros`), so a disk's holes never become buffers of their own: the gzip encoder emits
/// one precompressed member per MiB of zeros, xz and zstd read the zeros from one reused MiB.
///
/// ```
/// gzip  [member: 1 MiB][member: 1 MiB]...[member: rest]    each member compressed on its own
///                                                           thread (pigz-style, multi-member)
/// xz    [stream header][block][block]...[index][footer]     lzma_stream_encoder_mt, CRC64
/// zstd  [frame: jobs compressed by ZSTD_c_nbWorkers]        content checksum on
/// ```
public protocol StreamEncoder: AnyObject {
    /// What the output is, for the report: "gzip, level 6, 1 MiB members, 4 threads".
    var summary: String { get }
    func append(_ bytes: UnsafeRawBufferPointer) throws
    func appendZeros(_ count: UInt64) throws
    /// Flushes everything; the output is then a complete stream.
    func finish() throws
}

/// Where an encoder's bytes go, in order; the buffer is valid only during the call.
public typealias EncodedOutput = (UnsafeRawBufferPointer) throws -> Void

/// The whole-stream compressions a raw disk can be written in.
public enum StreamEncoding: String, Sendable, Codable, CaseIterable {
    case gzip, xz, zstd

    /// gzip 6 (as gzip and pigz), xz 6 (as xz), zstd 3 (as zstd).
    public var defaultLevel: Int32 {
        switch self {
        case .gzip, .xz: return 6
        case .zstd: return 3
        }
    }

    /// The levels each library takes: libdeflate 1-12, xz presets 0-9, zstd 1-19 (no --ultra).
    public var levels: ClosedRange<Int32> {
        switch self {
        case .gzip: return 1...12
        case .xz: return 0...9
        case .zstd: return 1...19
        }
    }

    /// The threads an encoder uses by default: every online core (at most 8 for xz: each xz
    /// thread holds about 100 MiB at level 6), or $REHOST_COMPRESSION_THREADS when set.
    public static var defaultThreads: Int {
        if let value = getenv("REHOST_COMPRESSION_THREADS"), let threads = Int(String(cString: value)), threads > 0 {
            return min(threads, 256)
        }
        return max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
    }

    /// `level` nil: the default; out of range: clamped to `levels`.
    public func makeEncoder(level: Int32?, threads: Int = StreamEncoding.defaultThreads,
                            output: @escaping EncodedOutput) throws -> any StreamEncoder {
        let chosen = min(max(level ?? defaultLevel, levels.lowerBound), levels.upperBound)
        switch self {
        case .gzip: return ParallelGzipEncoder(level: chosen, threads: threads, output: output)
        case .xz: return try XzEncoder(level: chosen, threads: min(threads, 8), output: output)
        case .zstd: return try ZstdEncoder(level: chosen, threads: threads, output: output)
        }
    }
}

/// Errors of the encoders: only the libraries' own failures (out of memory), never the data's.
public enum StreamEncoderError: RehostError {
    case library(encoding: StreamEncoding, operation: String, code: Int)

    public var description: String {
        switch self {
        case let .library(encoding, operation, code):
            return "\(encoding.rawValue) compression: \(operation) failed with code \(code)"
        }
    }
}

/// One MiB of zeros, shared by every encoder that must read its zeros (xz, zstd).
private let zeroMiB = [UInt8](repeating: 0, count: 1 << 20)

extension StreamEncoder {
    /// `count` zeros, fed from one shared buffer: an encoder with no shortcut for them (xz, zstd).
    public func appendZeros(_ count: UInt64) throws {
        var left = count
        while left > 0 {
            let take = Int(min(left, UInt64(zeroMiB.count)))
            try zeroMiB.withUnsafeBytes { try append(UnsafeRawBufferPointer(rebasing: $0[0..<take])) }
            left -= UInt64(take)
        }
    }
}

/// pigz-compatible parallel gzip: the stream is cut into 1 MiB pieces, each compressed by
/// libdeflate into a gzip member of its own on one of `threads` threads, and the members are
/// written in order. A concatenation of gzip members is one valid gzip file (RFC 1952 2.2):
/// `gzip -d`, `zcat`, `pigz -d`, Python's `gzip` module and 7-Zip all decompress every member.
/// (pigz itself writes one deflate stream with sync flushes; members are simpler, cost 18 bytes
/// per MiB, and each carries its own CRC-32, so no crc32_combine is needed.)
///
/// A MiB of zeros always compresses to the same member: it is compressed once and written
/// again for every whole MiB of zeros (about 1 KiB each, deflate's limit being 1032:1).
///
/// Two batches alternate: one fills from the caller while the other is compressed on other
/// threads, so the caller (the pipeline's writer thread, which feeds the other outputs too) does
/// not wait for the compression of what it has just given; its members are written at the next
/// flush, in order.
public final class ParallelGzipEncoder: StreamEncoder {
    public static let memberSize = 1 << 20
    let level: Int32
    let threads: Int
    private let output: EncodedOutput
    /// Members waiting to be compressed, `2 * threads` of them at most, in `batches[current]`.
    private let batches: [UnsafeMutableRawBufferPointer]
    private var current = 0
    private var batch: UnsafeMutableRawBufferPointer { batches[current] }
    private var fill = 0
    /// The batch being compressed on other threads, and its members once done.
    private var inFlight: (group: DispatchGroup, members: CompressedMembers)?
    private var zeroMember: [UInt8]?
    private var wroteAny = false

    init(level: Int32, threads: Int, output: @escaping EncodedOutput) {
        self.level = level
        self.threads = max(1, threads)
        self.output = output
        let size = 2 * self.threads * Self.memberSize
        batches = [.allocate(byteCount: size, alignment: 4096), .allocate(byteCount: size, alignment: 4096)]
    }

    deinit {
        // A batch may still be compressing (an error stopped the run): wait before freeing it.
        inFlight?.group.wait()
        for batch in batches { batch.deallocate() }
    }

    public var summary: String {
        "gzip, level \(level), pigz-style independent 1 MiB members, \(threads) thread\(threads == 1 ? "" : "s")"
    }

    public func append(_ bytes: UnsafeRawBufferPointer) throws {
        var used = 0
        while used < bytes.count {
            let take = min(batch.count - fill, bytes.count - used)
            UnsafeMutableRawBufferPointer(rebasing: batch[fill..<fill + take])
                .copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[used..<used + take]))
            fill += take
            used += take
            if fill == batch.count { try flush() }
        }
    }

    public func appendZeros(_ count: UInt64) throws {
        var left = count
        while left > 0 {
            let inMember = fill % Self.memberSize
            if inMember == 0 && left >= UInt64(Self.memberSize) {
                // Whole members of zeros: the members before them go first.
                try flush()
                try drain()
                let member = zeroMemberBytes()
                for _ in 0..<(left / UInt64(Self.memberSize)) {
                    try member.withUnsafeBytes { try output($0) }
                }
                wroteAny = true
                left %= UInt64(Self.memberSize)
                continue
            }
            let take = Int(min(left, UInt64(Self.memberSize - inMember)))
            UnsafeMutableRawBufferPointer(rebasing: batch[fill..<fill + take]).initializeMemory(as: UInt8.self, repeating: 0)
            fill += take
            left -= UInt64(take)
            if fill == batch.count { try flush() }
        }
    }

    public func finish() throws {
        try flush()
        try drain()
        // An empty stream is still one (empty) member: a gzip file has at least one.
        if !wroteAny {
            let empty = Self.member(UnsafeRawBufferPointer(start: nil, count: 0), level: level)
            try empty.withUnsafeBytes { try output($0) }
        }
    }

    /// Writes the members of the batch in flight, once compressed.
    private func drain() throws {
        guard let (group, members) = inFlight else { return }
        group.wait()
        inFlight = nil
        for member in members.members.withLock({ $0 }) { try member.withUnsafeBytes { try output($0) } }
    }

    /// Starts compressing the filled batch on other threads (the one before it written first)
    /// and goes on filling the other batch.
    private func flush() throws {
        guard fill > 0 else { return }
        try drain()
        let count = (fill + Self.memberSize - 1) / Self.memberSize
        // The batch is neither written nor freed until the group is waited for (drain, deinit).
        nonisolated(unsafe) let filled = UnsafeRawBufferPointer(rebasing: batch[0..<fill])
        let level = level, threads = threads
        let members = CompressedMembers()
        let group = DispatchGroup()
        DispatchQueue.global().async(group: group) {
            func compress(_ index: Int) -> [UInt8] {
                let start = index * Self.memberSize
                return Self.member(UnsafeRawBufferPointer(rebasing: filled[start..<min(start + Self.memberSize, filled.count)]),
                                   level: level)
            }
            // One thread means one: the members one after another (GCD would use every core).
            let compressed = threads == 1 ? (0..<count).map(compress) : parallelMap(count, compress)
            members.members.withLock { $0 = compressed }
        }
        inFlight = (group, members)
        current = 1 - current
        fill = 0
        wroteAny = true
    }

    private func zeroMemberBytes() -> [UInt8] {
        if let zeroMember { return zeroMember }
        let member = zeroMiB.withUnsafeBytes { Self.member($0, level: level) }
        zeroMember = member
        return member
    }

    /// One gzip member (mtime 0, OS byte 3 as gzip(1) writes). A pure function: one
    /// compressor per call, so members compress on many threads at once.
    static func member(_ input: UnsafeRawBufferPointer, level: Int32) -> [UInt8] {
        guard let compressor = libdeflate_alloc_compressor(level) else {
            // Only out of memory: zlib's member is the same format.
            return GzipMemberFallback.deflate(input, level: level)
        }
        defer { libdeflate_free_compressor(compressor) }
        var out = [UInt8](repeating: 0, count: libdeflate_gzip_compress_bound(compressor, input.count))
        let size = out.withUnsafeMutableBytes {
            libdeflate_gzip_compress(compressor, input.baseAddress, input.count, $0.baseAddress, $0.count)
        }
        precondition(size > 0, "libdeflate_gzip_compress with a bound-sized buffer failed")
        out.removeLast(out.count - size)
        out[9] = 3
        return out
    }
}

/// The members of one batch, set by the thread that compressed them before its group leaves,
/// read after the group is waited for.
private final class CompressedMembers: Sendable {
    let members = Mutex<[[UInt8]]>([])
}

/// zlib's gzip member, for the one case libdeflate cannot allocate its compressor.
private enum GzipMemberFallback {
    static func deflate(_ input: UnsafeRawBufferPointer, level: Int32) -> [UInt8] {
        StreamCompression.gzip(Array(input), level: min(level, 9))
    }
}

/// xz by liblzma's multithreaded encoder (`lzma_stream_encoder_mt`): the stream is cut into
/// blocks (3 dictionaries: 24 MiB at level 6) compressed on `threads` threads; CRC64 checks,
/// as `xz -T` writes. `xz -d` and `xz -t` read it like any xz file.
public final class XzEncoder: StreamEncoder {
    let level: Int32
    let threads: Int
    private let output: EncodedOutput
    private var stream = lzma_stream()
    private let chunk: UnsafeMutableRawBufferPointer

    init(level: Int32, threads: Int, output: @escaping EncodedOutput) throws {
        self.level = level
        self.threads = max(1, threads)
        self.output = output
        chunk = .allocate(byteCount: 1 << 20, alignment: 16)
        var options = lzma_mt()
        options.threads = UInt32(self.threads)
        options.preset = UInt32(level)
        options.check = LZMA_CHECK_CRC64
        options.block_size = 0
        options.timeout = 0
        let code = lzma_stream_encoder_mt(&stream, &options)
        guard code == LZMA_OK else {
            chunk.deallocate()
            throw StreamEncoderError.library(encoding: .xz, operation: "lzma_stream_encoder_mt", code: Int(code.rawValue))
        }
    }

    deinit {
        lzma_end(&stream)
        chunk.deallocate()
    }

    public var summary: String { "xz, preset \(level), CRC64, \(threads) thread\(threads == 1 ? "" : "s") (lzma_stream_encoder_mt)" }

    public func append(_ bytes: UnsafeRawBufferPointer) throws {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        stream.next_in = base.assumingMemoryBound(to: UInt8.self)
        stream.avail_in = bytes.count
        while stream.avail_in > 0 { _ = try code(LZMA_RUN) }
    }

    public func finish() throws {
        stream.next_in = nil
        stream.avail_in = 0
        while try code(LZMA_FINISH) != LZMA_STREAM_END {}
    }

    /// One lzma_code call into the chunk; what it produced goes to the output.
    private func code(_ action: lzma_action) throws -> lzma_ret {
        stream.next_out = chunk.baseAddress!.assumingMemoryBound(to: UInt8.self)
        stream.avail_out = chunk.count
        let result = lzma_code(&stream, action)
        let produced = chunk.count - stream.avail_out
        if produced > 0 { try output(UnsafeRawBufferPointer(rebasing: chunk[0..<produced])) }
        guard result == LZMA_OK || result == LZMA_STREAM_END else {
            throw StreamEncoderError.library(encoding: .xz, operation: "lzma_code", code: Int(result.rawValue))
        }
        return result
    }
}

/// zstd by libzstd's streaming API with `ZSTD_c_nbWorkers` worker threads (one frame, content
/// checksum on), as `zstd -T`.
public final class ZstdEncoder: StreamEncoder {
    let level: Int32
    private(set) var threads: Int
    private let output: EncodedOutput
    private let context: OpaquePointer
    private let chunk: UnsafeMutableRawBufferPointer

    init(level: Int32, threads: Int, output: @escaping EncodedOutput) throws {
        self.level = level
        self.output = output
        guard let context = ZSTD_createCCtx() else {
            throw StreamEncoderError.library(encoding: .zstd, operation: "ZSTD_createCCtx", code: 0)
        }
        self.context = context
        chunk = .allocate(byteCount: ZSTD_CStreamOutSize(), alignment: 16)
        _ = ZSTD_CCtx_setParameter(context, ZSTD_c_compressionLevel, level)
        _ = ZSTD_CCtx_setParameter(context, ZSTD_c_checksumFlag, 1)
        // A libzstd built without threads refuses workers: then it is one thread.
        let workers = max(1, threads)
        self.threads = ZSTD_isError(ZSTD_CCtx_setParameter(context, ZSTD_c_nbWorkers, Int32(workers))) == 0 ? workers : 1
    }

    deinit {
        ZSTD_freeCCtx(context)
        chunk.deallocate()
    }

    public var summary: String { "zstd, level \(level), checksum, \(threads) worker thread\(threads == 1 ? "" : "s")" }

    public func append(_ bytes: UnsafeRawBufferPointer) throws {
        guard !bytes.isEmpty else { return }
        var input = ZSTD_inBuffer(src: bytes.baseAddress, size: bytes.count, pos: 0)
        while input.pos < input.size { _ = try compress(&input, ZSTD_e_continue) }
    }

    public func finish() throws {
        var input = ZSTD_inBuffer(src: nil, size: 0, pos: 0)
        // 0: the frame is complete and flushed.
        while try compress(&input, ZSTD_e_end) != 0 {}
    }

    private func compress(_ input: inout ZSTD_inBuffer, _ directive: ZSTD_EndDirective) throws -> Int {
        var out = ZSTD_outBuffer(dst: chunk.baseAddress, size: chunk.count, pos: 0)
        let remaining = ZSTD_compressStream2(context, &out, &input, directive)
        guard ZSTD_isError(remaining) == 0 else {
            throw StreamEncoderError.library(encoding: .zstd, operation: "ZSTD_compressStream2 (\(String(cString: ZSTD_getErrorName(remaining))))",
                                             code: remaining)
        }
        if out.pos > 0 { try output(UnsafeRawBufferPointer(rebasing: chunk[0..<out.pos])) }
        return remaining
    }
}
