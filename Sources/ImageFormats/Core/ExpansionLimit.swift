import ImageCore
#if canImport(Glibc)
import Glibc
#endif

/// The most data one run of Rehost may produce from an input: `--max-output-size`.
///
/// An image is a promise about data it does not hold: a qcow2 or VMDK names clusters, a gzip
/// stream names bytes, and a hostile one names far more than its file could carry. Every
/// expansion counts what it produces against this limit and stops with `ExpansionLimitError`
/// once past it:
/// - a reader's data pieces, whether they go to a scratch copy (gzip-less disk images for
///   `inspect` and `convert`) or to the outputs of `export`;
/// - the bytes a gzip stream inflates to, zeros included (they cost time even when not written).
///
/// The default is `defaultFactor` times the input's real data size (the bytes its files occupy
/// on disk, holes not counted; all extent files of a VMDK), and never less than `defaultFloor`.
/// 64 is far above what real images reach (a compressed qcow2 or streamOptimized VMDK of a
/// typical system disk holds 2 to 4 times less than it expands to; deflate cannot pass 1032)
/// yet keeps a 1 MiB hostile file from writing more than a GiB.
public struct ExpansionLimit: Sendable, Equatable {
    public static let defaultFactor: UInt64 = 64
    public static let defaultFloor: UInt64 = 1 << 30

    public let bytes: UInt64
    /// How the limit came about, for the message: "--max-output-size 4 GiB", or the default's
    /// derivation.
    public let origin: String

    public init(bytes: UInt64, origin: String) {
        self.bytes = bytes
        self.origin = origin
    }

    /// `--max-output-size` when given, else the default for `paths`.
    public static func resolve(_ explicit: UInt64?, inputs paths: [String]) -> ExpansionLimit {
        if let explicit { return ExpansionLimit(bytes: explicit, origin: "the --max-output-size limit") }
        let data = paths.reduce(UInt64(0)) { $0 &+ realDataSize($1) }
        let (scaled, overflow) = data.multipliedReportingOverflow(by: defaultFactor)
        let bytes = max(overflow ? UInt64.max : scaled, defaultFloor)
        return ExpansionLimit(bytes: bytes,
                              origin: "the default --max-output-size limit (\(defaultFactor) times the \(ByteCount.format(data)) of data the input holds, at least \(ByteCount.format(defaultFloor)))")
    }

    /// Bytes the file occupies (st_blocks x 512); for a block device, its size.
    static func realDataSize(_ path: String) -> UInt64 {
        var st = stat()
        guard stat(path, &st) == 0 else { return 0 }
        if st.st_mode & S_IFMT == S_IFBLK {
            let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
            guard fd >= 0 else { return 0 }
            defer { close(fd) }
            let end = lseek(fd, 0, SEEK_END)
            return end > 0 ? UInt64(end) : 0
        }
        return UInt64(max(st.st_blocks, 0)) * 512
    }

    /// Counts `count` more bytes produced so far (`total`, updated) and throws past the limit.
    public func account(_ count: Int, total: inout UInt64, path: String, what: String) throws {
        total = total &+ UInt64(count)
        guard total <= bytes else {
            throw ExpansionLimitError.exceeded(path: path, what: what, limit: bytes, origin: origin)
        }
    }
}

/// An expansion went past its bound.
public enum ExpansionLimitError: RehostError, Equatable {
    /// More data than `--max-output-size` allows.
    case exceeded(path: String, what: String, limit: UInt64, origin: String)
    /// A gzip stream inflating past the size its content declares.
    case pastDeclaredSize(path: String, declared: UInt64, by: String)

    public var description: String {
        switch self {
        case let .exceeded(path, what, limit, origin):
            return "\(path): \(what) more than \(limit) bytes (\(ByteCount.format(limit))), \(origin); a hostile or corrupt image? If it is genuine, raise --max-output-size"
        case let .pastDeclaredSize(path, declared, by):
            return "\(path): corrupt gzip data: it inflates past the \(declared) bytes (\(ByteCount.format(declared))) \(by); expected it to end there"
        }
    }
}

/// A reader whose data pieces are counted against a limit: wraps any reader for a pipeline that
/// expands it.
public final class LimitedDiskImageReader: DiskImageReader {
    public let inner: any DiskImageReader
    public let limit: ExpansionLimit

    public init(_ inner: any DiskImageReader, limit: ExpansionLimit) {
        self.inner = inner
        self.limit = limit
    }

    public var format: ImageFormat { inner.format }
    public var path: String { inner.path }
    public var virtualSize: UInt64 { inner.virtualSize }
    public var variant: String { inner.variant }
    public var inputFiles: [String] { inner.inputFiles }

    public func forEachDataPiece(_ body: (UInt64, UnsafeRawBufferPointer) throws -> Void) throws {
        var total: UInt64 = 0
        let what = "the \(inner.format.displayName) image maps"
        try inner.forEachDataPiece { offset, data in
            try limit.account(data.count, total: &total, path: inner.path, what: what)
            try body(offset, data)
        }
    }
}
