import Digests
import ImageCore
import ImageFormats

/// Which digests a run puts in its report (`--digest`).
///
/// - `disk`: the `blk-sha256` of the disk's contents (`DiskDigest`), the same for every output of
///   one run whatever its format, and what `rehost digest` prints for any image of that disk. It
///   is taken in the pass that already reads the disk, and holes cost nothing: the default.
/// - `file`: the SHA-256 of each output file as written, what `sha256sum` prints. It reads every
///   output back (its data; holes are hashed as zeros unread, but SHA-256 must still process
///   every byte of them, about 1.8 GB/s with SHA-NI).
public struct DigestChoice: Sendable, Equatable {
    public var disk: Bool
    public var files: Bool

    public init(disk: Bool, files: Bool) {
        self.disk = disk
        self.files = files
    }

    public static let `default` = DigestChoice(disk: true, files: false)
    public static let none = DigestChoice(disk: false, files: false)
}

/// The `blk-sha256` of the disk `reader` holds, from one read of its allocated data.
public func diskDigest(of reader: any DiskImageReader) throws -> String {
    if let raw = reader as? RawDiskReader {
        // The mapping is read-only and outlives the digest.
        nonisolated(unsafe) let raw = raw
        return DiskDigest.digest(size: raw.size, dataRanges: raw.dataRanges) { raw.bytes($0) }
    }
    let digest = DiskDigest(size: reader.virtualSize)
    try reader.forEachDataPiece { digest.update($1, at: $0) }
    return digest.finish()
}

/// What `rehost digest` reports for one image.
public struct DiskDigestReport: Codable, Sendable {
    public var path: String
    public var format: ImageFormat
    public var virtualSize: UInt64
    public var algorithm: String
    public var diskDigest: String
    public var inputFiles: [String]
    public var seconds: Double
}

/// The disk digest of the image at `path`, in any format Rehost reads: equal to the one a
/// `convert` or `export` report gives for every output of that disk.
public func diskDigest(ofImage path: String, scratchDirectory: String? = nil, externalFiles: ExternalFiles = .contained,
                       maxOutputSize: UInt64? = nil) throws -> DiskDigestReport {
    let started = monotonicSeconds()
    let opened = try DiskImageReaders.open(path: path, scratchDirectory: scratchDirectory, externalFiles: externalFiles,
                                           maxOutputSize: maxOutputSize)
    // As in `export`: a hostile image's claimed data is bounded; a raw file holds only its own.
    let reader: any DiskImageReader = opened is RawDiskReader
        ? opened : LimitedDiskImageReader(opened, limit: .resolve(maxOutputSize, inputs: opened.inputFiles))
    let digest = try diskDigest(of: reader)
    return DiskDigestReport(path: path, format: reader.format, virtualSize: reader.virtualSize, algorithm: DiskDigest.algorithm,
                            diskDigest: digest, inputFiles: reader.inputFiles, seconds: monotonicSeconds() - started)
}
