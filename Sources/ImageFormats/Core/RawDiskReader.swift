import ImageCore

/// Reads a raw disk once, memory-mapped, and hands out only the bytes that can be non-zero:
/// holes are skipped with SEEK_DATA/SEEK_HOLE without being touched, and the data ranges are
/// checked word-wise for all-zero blocks, which are skipped too.
public final class RawDiskReader: DiskImageReader {
    public let path: String
    public let size: UInt64
    public var format: ImageFormat { .raw }
    public var virtualSize: UInt64 { size }
    public var variant: String { expandedFrom.map { "raw, expanded from \($0.compression) data into a sparse scratch file" } ?? "raw" }
    /// The compressed file this disk was expanded from (`x.raw.gz`), when it was.
    var expandedFrom: (path: String, compression: String)?
    public var inputFiles: [String] { [expandedFrom?.path ?? path] }
    private let mapped: MappedFile
    /// The file's data ranges (SEEK_DATA/SEEK_HOLE) when it was opened; the rest is holes.
    public let dataRanges: [Range<UInt64>]

    public init(path: String) throws {
        self.path = path
        let file = try RawFile(path: path, mode: .readOnly)
        dataRanges = try file.dataRanges()
        mapped = try MappedFile(path: path)
        size = UInt64(mapped.count)
    }

    /// The bytes of `range`, straight from the mapping.
    public func bytes(_ range: Range<UInt64>) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: mapped.bytes[Int(range.lowerBound)..<Int(range.upperBound)])
    }

    /// Lets the kernel drop `range` from this process's resident set once it has been used.
    public func release(_ range: Range<UInt64>) {
        mapped.release(Int(range.lowerBound)..<Int(range.upperBound))
    }

    /// Calls `body` with the byte ranges of the disk that hold non-zero data, in increasing
    /// order, each at most `pieceSize` long and never crossing a `pieceSize` boundary. Blocks of
    /// `zeroGranularity` bytes (aligned) that are all zero are left out and released at once, so
    /// a range starts and ends on that granularity except at the end of the disk. Ranges handed
    /// to `body` stay mapped until the caller releases them.
    public func forEachDataRange(pieceSize: Int = 1 << 20, zeroGranularity: Int = 65536,
                                 _ body: (Range<UInt64>) throws -> Void) throws {
        precondition(pieceSize % zeroGranularity == 0 && zeroGranularity % 512 == 0)
        let granule = UInt64(zeroGranularity)
        var covered: UInt64 = 0
        for range in dataRanges {
            // Whole granules covering the data range, clipped to the disk; two data ranges can
            // share a granule, which is read once.
            var position = max(covered, range.lowerBound / granule * granule)
            let end = min(size, (range.upperBound + granule - 1) / granule * granule)
            while position < end {
                let pieceEnd = min(end, (position / UInt64(pieceSize) + 1) * UInt64(pieceSize))
                var runStart: UInt64? = nil
                var granuleStart = position
                while granuleStart < pieceEnd {
                    let granuleEnd = min(pieceEnd, granuleStart + granule)
                    if ZeroDetection.isAllZero(bytes(granuleStart..<granuleEnd)) {
                        release(granuleStart..<granuleEnd)
                        if let start = runStart {
                            try body(start..<granuleStart)
                            runStart = nil
                        }
                    } else if runStart == nil {
                        runStart = granuleStart
                    }
                    granuleStart = granuleEnd
                }
                if let start = runStart { try body(start..<pieceEnd) }
                position = pieceEnd
                covered = pieceEnd
            }
        }
    }

    /// The simple sequential form: `body` gets each data range's bytes, released afterwards.
    public func forEachDataPiece(pieceSize: Int = 1 << 20, zeroGranularity: Int = 65536,
                                 _ body: (UInt64, UnsafeRawBufferPointer) throws -> Void) throws {
        try forEachDataRange(pieceSize: pieceSize, zeroGranularity: zeroGranularity) { range in
            try body(range.lowerBound, bytes(range))
            release(range)
        }
    }

    public func forEachDataPiece(_ body: (UInt64, UnsafeRawBufferPointer) throws -> Void) throws {
        try forEachDataPiece(pieceSize: 1 << 20, zeroGranularity: 65536, body)
    }
}
