import Digests
import ImageCore

/// Takes a sink's bytes in file order when they go to no file: an upload that sends them as they
/// are written.
public protocol SequentialByteSink: AnyObject {
    func append(_ bytes: UnsafeRawBufferPointer) throws
}

/// Where a writer puts its bytes: a whole file, or a region of one (the VMDK inside an OVA), or a
/// sequential stream (an upload). Offsets are relative to the start of the region. Unwritten
/// ranges are holes in a file; a stream takes only writes in order (gaps become zeros), so only
/// formats written front to back (streamOptimized VMDK, raw) can go to one.
public final class OutputSink {
    /// nil for a stream.
    public let file: RawFile?
    public let base: UInt64
    private let stream: SequentialByteSink?
    private let streamName: String
    /// One past the highest byte written or the length set, relative to `base`.
    public private(set) var length: UInt64 = 0
    private var digest: Digest?
    private var digested: UInt64 = 0
    /// Bytes written since writeback was last started, and the span they lie in.
    private var unflushedBytes: UInt64 = 0
    private var unflushedSpan: Range<UInt64>? = nil

    /// Writeback starts after this many bytes: the final fsync then finds the file almost
    /// clean, which for a multi-GiB output saves as much wall time as the writing itself takes.
    public static let writebackInterval: UInt64 = 32 << 20

    public init(file: RawFile, base: UInt64 = 0) {
        self.file = file
        self.base = base
        stream = nil
        streamName = file.path
    }

    /// A sink whose bytes go to `stream` in order; `name` stands for the file's name.
    public init(stream: SequentialByteSink, name: String) {
        file = nil
        base = 0
        self.stream = stream
        streamName = name
    }

    public var path: String { file?.path ?? streamName }

    private func streamZeros(to end: UInt64, into stream: SequentialByteSink) throws {
        let zeros = [UInt8](repeating: 0, count: 65536)
        while length < end {
            let count = Int(min(UInt64(zeros.count), end - length))
            try zeros.withUnsafeBytes { try stream.append(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
            length += UInt64(count)
        }
    }

    /// Hash every byte as it is written; writes must then be strictly sequential (no holes, no
    /// rewrites), which is how streamOptimized VMDKs are written.
    public func startDigest(_ algorithm: Digest.Algorithm) {
        digest = Digest(algorithm)
        digested = length
        precondition(length == 0, "a digest must start before the first write")
    }

    public func write(_ bytes: UnsafeRawBufferPointer, at offset: UInt64) throws {
        if let digest {
            guard offset == digested else {
                throw WriterError.unsupported(format: .ova, what: "internal: a digested output must be written sequentially (byte \(offset), expected \(digested))")
            }
            digest.update(bytes)
            digested += UInt64(bytes.count)
        }
        guard let file else {
            guard let stream, offset >= length else {
                throw WriterError.unsupported(format: .raw, what: "internal: a streamed output must be written in order (byte \(offset) after byte \(length))")
            }
            try streamZeros(to: offset, into: stream)
            try stream.append(bytes)
            length += UInt64(bytes.count)
            return
        }
        try file.write(bytes, at: base + offset)
        length = max(length, offset + UInt64(bytes.count))
        noteWritten(base + offset..<base + offset + UInt64(bytes.count))
    }

    private func noteWritten(_ range: Range<UInt64>) {
        let span = unflushedSpan.map { min($0.lowerBound, range.lowerBound)..<max($0.upperBound, range.upperBound) } ?? range
        unflushedBytes += UInt64(range.count)
        if unflushedBytes >= Self.writebackInterval {
            file?.startWriteback(span)
            unflushedBytes = 0
            unflushedSpan = nil
        } else {
            unflushedSpan = span
        }
    }

    public func write(_ bytes: [UInt8], at offset: UInt64) throws {
        try bytes.withUnsafeBytes { try write($0, at: offset) }
    }

    /// Makes the region `size` bytes long; the bytes past the last write read as zeros. For a
    /// digested sink the zeros are hashed too.
    public func extend(to size: UInt64) throws {
        guard size > length else { return }
        if let digest {
            let zeros = [UInt8](repeating: 0, count: 65536)
            while digested < size {
                let n = Int(min(UInt64(zeros.count), size - digested))
                zeros.withUnsafeBytes { digest.update(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
                digested += UInt64(n)
            }
        }
        guard let file else {
            if let stream { try streamZeros(to: size, into: stream) }
            return
        }
        length = size
        if try file.size < base + size { try file.truncate(to: base + size) }
    }

    /// The digest of everything written, as hex.
    public func finishDigest() -> String? {
        defer { digest = nil }
        return digest?.finish()
    }
}
