import ImageCore

/// Reads a raw disk once, memory-mapped, and hands out only the bytes that can be non-zero:
/// holes are skipped with SEEK_DATA/SEEK_HOLE without being touched, and the data ranges are
/// checked word-wise for all-zero blocks, which are skipped too.
public final class RawDiskReader {
    public let path: String
    public let size: UInt64
    private let mapped: MappedFile
    private let file: RawFile

    public init(path: String) throws {
        self.path = path
        file = try RawFile(path: path, mode: .readOnly)
        mapped = try MappedFile(path: path)
        size = UInt64(mapped.count)
    }

    /// Calls `body` with the disk's data in increasing offset order, in pieces of at most
    /// `pieceSize` bytes that never cross a `pieceSize` boundary. Blocks of `zeroGranularity`
    /// bytes (aligned) that are all zero are left out, so a piece starts and ends on that
    /// granularity except at the end of the disk. `progress` gets the byte offset reached.
    public func forEachDataPiece(pieceSize: Int = 1 << 20, zeroGranularity: Int = 65536,
                                 progress: (UInt64) -> Void = { _ in },
                                 _ body: (UInt64, UnsafeRawBufferPointer) throws -> Void) throws {
        precondition(pieceSize % zeroGranularity == 0 && zeroGranularity % 512 == 0)
        let bytes = mapped.bytes
        let granule = UInt64(zeroGranularity)
        var covered: UInt64 = 0
        for range in try file.dataRanges() {
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
                    let slice = UnsafeRawBufferPointer(rebasing: bytes[Int(granuleStart)..<Int(granuleEnd)])
                    if ZeroDetection.isAllZero(slice) {
                        if let start = runStart {
                            try body(start, UnsafeRawBufferPointer(rebasing: bytes[Int(start)..<Int(granuleStart)]))
                            runStart = nil
                        }
                    } else if runStart == nil {
                        runStart = granuleStart
                    }
                    granuleStart = granuleEnd
                }
                if let start = runStart {
                    try body(start, UnsafeRawBufferPointer(rebasing: bytes[Int(start)..<Int(pieceEnd)]))
                }
                mapped.release(Int(position)..<Int(pieceEnd))
                position = pieceEnd
                covered = pieceEnd
                progress(position)
            }
        }
        progress(size)
    }
}
