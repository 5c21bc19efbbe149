import ImageCore

/// The streaming half of the block-map readers (`VDIReader`, `VHDReader`): they name runs of the
/// virtual disk that lie uncompressed at some place in the image file, in increasing virtual
/// order, and this hands them to a `forEachDataPiece` body.
///
/// - Runs that continue each other both in the disk and in the file are merged, so a fixed image
///   or a dynamic one whose blocks were written in order becomes one long read.
/// - Holes in the image file are never read (SEEK_DATA/SEEK_HOLE, taken once per stream): they
///   read as zeros, which readers never pass on. A fixed VHD or VDI written sparse streams in time
///   proportional to its data, not its size. Kept pieces are widened to whole 512-byte sectors
///   of the run, so offsets stay sector multiples.
/// - Reads go through one reused buffer of at most `DiskImageReaders.maxPieceSize` bytes.
///
/// Callers check every run against the file size before streaming; a file that shrinks in the
/// meantime still fails as `ImageReadError.truncated`, never as short data.
final class HostRunStreamer {
    typealias Body = (_ offset: UInt64, _ data: UnsafeRawBufferPointer) throws -> Void

    private let file: RawFile
    private let format: ImageFormat
    /// The byte ranges of the image file that hold data, increasing and disjoint.
    private let hostData: [Range<UInt64>]
    private let buffer: UnsafeMutableRawBufferPointer
    private var pending: (virtual: UInt64, host: UInt64, length: UInt64)?

    /// `diskSize` only bounds the buffer, so a small disk does not take 8 MiB.
    init(file: RawFile, format: ImageFormat, diskSize: UInt64) throws {
        self.file = file
        self.format = format
        hostData = try file.dataRanges()
        let size = min(UInt64(DiskImageReaders.maxPieceSize), max(512, (diskSize + 511) / 512 * 512))
        buffer = .allocate(byteCount: Int(size), alignment: 4096)
    }

    deinit { buffer.deallocate() }

    /// Adds `length` bytes of the disk at `virtual`, stored at `host` in the file. Runs must come
    /// in increasing, non-overlapping virtual order; both offsets are sector multiples.
    func add(virtual: UInt64, host: UInt64, length: UInt64, _ body: Body) throws {
        if var run = pending, run.virtual + run.length == virtual, run.host + run.length == host {
            run.length += length
            pending = run
            return
        }
        try flush(body)
        pending = (virtual, host, length)
    }

    /// Streams the run held back for merging; call once after the last `add`.
    func flush(_ body: Body) throws {
        guard let run = pending else { return }
        pending = nil
        let end = run.host + run.length
        // The first data range that ends past the run's start.
        var low = 0, high = hostData.count
        while low < high {
            let middle = (low + high) / 2
            if hostData[middle].upperBound <= run.host { low = middle + 1 } else { high = middle }
        }
        var done = run.host
        var index = low
        while index < hostData.count, hostData[index].lowerBound < end {
            let start = max(done, run.host + (max(run.host, hostData[index].lowerBound) - run.host) / 512 * 512)
            let stop = run.host + min(run.length, (min(end, hostData[index].upperBound) - run.host + 511) / 512 * 512)
            if stop > start {
                try read(host: start..<stop, virtual: run.virtual + (start - run.host), body)
                done = stop
            }
            index += 1
        }
    }

    private func read(host: Range<UInt64>, virtual: UInt64, _ body: Body) throws {
        var position = host.lowerBound
        while position < host.upperBound {
            let count = Int(min(UInt64(buffer.count), host.upperBound - position))
            let chunk = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<count])
            let got = try file.read(into: chunk, at: position)
            guard got == count else {
                throw ImageReadError.truncated(format: format, path: file.path, offset: position + UInt64(got),
                                               needed: UInt64(count - got), fileSize: (try? file.size) ?? 0)
            }
            try body(virtual + (position - host.lowerBound), UnsafeRawBufferPointer(chunk))
            position += UInt64(count)
        }
    }
}
