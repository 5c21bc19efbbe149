import Digests
import ImageCore
import ImageFormats

#if canImport(Glibc)
import Glibc
#endif

/// One output the user asked for.
public struct OutputRequest: Sendable {
    public var path: String
    public var format: ImageFormat
    /// A whole-file compression around the format (`x.raw.gz`, `x.qcow2.gz`), from the name.
    public var compression: OutputCompression?

    public init(path: String, format: ImageFormat, compression: OutputCompression? = nil) {
        self.path = path
        self.format = format
        self.compression = compression
    }

    /// A plain (uncompressed) raw file: the only output other steps may write in place.
    public var isPlainRaw: Bool { format == .raw && compression == nil }
}

/// What was written to one output, for the report.
public struct OutputReport: Codable, Sendable {
    public var path: String
    public var format: ImageFormat
    public var variant: String
    public var virtualSize: UInt64
    public var fileSize: UInt64
    /// Bytes the file occupies on disk (outputs are sparse where the format allows).
    public var allocatedBytes: UInt64
    public var allocatedUnits: UInt64
    public var unitSize: UInt64
    /// The SHA-256 of the file (`--digest file`).
    public var sha256: String?
    /// The `blk-sha256` of the disk's contents (`--digest disk`, the default).
    public var diskDigest: String?
    public var seconds: Double
    /// The whole-file compression around the format (`x.raw.gz`: format raw, compression gzip).
    public var compression: OutputCompression? = nil
}

public enum OutputError: RehostError {
    case unknownFormat(path: String)
    case duplicate(path: String)

    public var description: String {
        switch self {
        case let .unknownFormat(path):
            return "\(path): cannot tell the format from the name; use one of .raw .img .qcow2 .vmdk .vdi .vhd .vhdx .ova (optionally followed by .gz .xz .zst), or --format"
        case let .duplicate(path):
            return "\(path): named twice as an output"
        }
    }
}

extension OutputRequest {
    /// The requests for `paths`: the format from each name's extension, else `format`; a
    /// trailing `.gz`, `.xz` or `.zst` asks for that compression around the format the rest of
    /// the name says (`x.raw.gz`: raw, gzip).
    public static func resolve(_ paths: [String], format: ImageFormat?) throws -> [OutputRequest] {
        var seen = Set<String>()
        return try paths.map { path in
            guard seen.insert(path).inserted else { throw OutputError.duplicate(path: path) }
            return try request(for: path, format: format)
        }
    }

    /// One request: see `resolve`.
    public static func request(for path: String, format: ImageFormat?) throws -> OutputRequest {
        let suffix = OutputCompression.fromSuffix(of: path)
        guard let chosen = format ?? ImageFormat.fromExtension(of: suffix?.stripped ?? path) else {
            throw OutputError.unknownFormat(path: path)
        }
        if suffix != nil && chosen == .ova {
            throw WriterError.unsupported(format: .ova, what: "\(path): an OVA is not compressed as a whole (its disk is a compressed VMDK already)")
        }
        return OutputRequest(path: path, format: chosen, compression: suffix?.compression)
    }
}

/// Makes the writers beyond the output files that take the disk as it streams past (uploads),
/// just before the stream, given the disk's size and, when the disk is a raw file, the byte
/// ranges that may hold data (SEEK_DATA, no read): a writer that must plan its layout before
/// its first byte (a qcow2 sent as it is written) needs them. The caller keeps the writers to
/// read their results after the run.
public typealias StreamConsumers = @Sendable (_ virtualSize: UInt64, _ rawDataRanges: [Range<UInt64>]?) throws -> [any DiskImageWriter]

/// The outputs of one run: each written under a temporary name by its writer as the raw disk
/// streams past once, and renamed into place only when every one of them is complete. Stream
/// consumers (uploads) take the same pieces and finish before the files are renamed, so a
/// failed upload leaves no output either.
final class OutputSet {
    private struct Member {
        let request: OutputRequest
        let output: AtomicOutput
        let writer: any DiskImageWriter
    }

    private let members: [Member]
    private let makeConsumers: StreamConsumers?
    private var summaries: [WriterSummary] = []
    private var seconds = 0.0
    /// The disk digest: taken as the disk streams past when asked, or given.
    var diskDigest: String?

    init(_ requests: [OutputRequest], virtualSize: UInt64, options: WriterOptions, consumers: StreamConsumers? = nil) throws {
        members = try requests.map { request in
            let output = try AtomicOutput(finalPath: request.path)
            let sink = OutputSink(file: output.file, base: 0)
            let named = request.compression != nil ? OutputCompression.fromSuffix(of: request.path)?.stripped ?? request.path : request.path
            let name = named.split(separator: "/").last.map(String.init) ?? named
            let writer = try WriterFactory.make(request.format, sink: sink, virtualSize: virtualSize, options: options,
                                                fileName: name, compression: request.compression)
            return Member(request: request, output: output, writer: writer)
        }
        makeConsumers = consumers
    }

    var isEmpty: Bool { members.isEmpty && makeConsumers == nil }

    /// One read of the raw disk at `rawPath` feeding every writer.
    func stream(from rawPath: String, diskDigest: Bool, progress: ProgressSink) throws {
        guard !isEmpty else { return }
        try stream(from: RawDiskReader(path: rawPath), diskDigest: diskDigest, progress: progress)
    }

    /// One read of `reader`'s disk feeding every writer, and the disk digest when asked.
    func stream(from reader: any DiskImageReader, diskDigest: Bool, progress: ProgressSink) throws {
        guard !isEmpty else { return }
        let started = monotonicSeconds()
        let ranges = makeConsumers != nil ? (reader as? RawDiskReader).map(\.dataRanges) : nil
        let consumers = try makeConsumers?(reader.virtualSize, ranges) ?? []
        let names = (members.map { $0.request.format.rawValue } + consumers.map { _ in "upload" }).joined(separator: ", ")
        progress.begin(stage: "writing \(names)", totalBytes: reader.virtualSize)
        let digest = diskDigest ? DiskDigest(size: reader.virtualSize) : nil
        let all = try DiskStreamer.stream(reader, to: members.map(\.writer) + consumers, digest: digest) { progress.advance(to: $0) }
        summaries = Array(all.prefix(members.count))
        self.diskDigest = digest?.finish()
        progress.end()
        seconds = monotonicSeconds() - started
    }

    /// fsync and rename every output into place. The digests of the finished files run on other
    /// threads meanwhile, all at once: each reads only its file's data (holes are hashed as zeros
    /// unread), from the page cache the writing has just filled.
    func commit(fileDigests: Bool) throws -> [OutputReport] {
        let pending = try members.map { member in
            fileDigests ? try BackgroundDigest(path: member.output.temporaryPath) : nil
        }
        for member in members { try member.output.commit() }
        var reports: [OutputReport] = []
        for ((member, summary), digest) in zip(zip(members, summaries), pending) {
            var made = try report(path: member.request.path, summary: summary, seconds: seconds, sha256: try digest?.wait(),
                                  diskDigest: diskDigest)
            made.compression = member.request.compression
            reports.append(made)
        }
        return reports
    }
}

func report(path: String, summary: WriterSummary, seconds: Double, sha256: String?, diskDigest: String?) throws -> OutputReport {
    var info = stat()
    guard stat(path, &info) == 0 else { throw FileError.stat(path: path, errno: errno) }
    return OutputReport(path: path, format: summary.format, variant: summary.variant, virtualSize: summary.virtualSize,
                        fileSize: UInt64(info.st_size), allocatedBytes: UInt64(info.st_blocks) * 512,
                        allocatedUnits: summary.allocatedUnits, unitSize: summary.unitSize,
                        sha256: sha256, diskDigest: diskDigest, seconds: seconds)
}
