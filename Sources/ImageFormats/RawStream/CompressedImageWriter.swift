import Compression
import ImageCore

/// A disk image format compressed as a whole file (`x.qcow2.gz`, as image marketplaces take
/// it). The format's own writer puts its tables after the data (`QCOW2Writer` seeks back to
/// them), so the image is written in the same pass into a sparse scratch file beside the
/// output, and compressed from it once complete: its data ranges are read (SEEK_DATA), its holes
/// reach the encoder as counts of zeros. The scratch file is removed at the end.
///
/// (`QCOW2StreamWriter` writes a qcow2 front to back and could feed the encoder directly, but
/// it needs the disk's data ranges before the first byte, which only a raw input gives.)
public final class CompressedImageWriter: DiskImageWriter {
    public let format: ImageFormat
    public let virtualSize: UInt64
    private let inner: any DiskImageWriter
    private let scratch: ScratchFile
    private let sink: OutputSink
    private let compression: OutputCompression
    private let level: Int32?
    private let threads: Int

    /// `makeInner` makes the format's writer for the scratch file's sink.
    public init(sink: OutputSink, format: ImageFormat, virtualSize: UInt64, compression: OutputCompression, level: Int32?,
                threads: Int = StreamEncoding.defaultThreads,
                makeInner: (OutputSink) throws -> any DiskImageWriter) throws {
        self.format = format
        self.virtualSize = virtualSize
        self.sink = sink
        self.compression = compression
        self.level = level
        self.threads = threads
        let directory = sink.path.lastIndex(of: "/").map { String(sink.path[..<$0]) } ?? "."
        scratch = try ScratchFile(directory: directory.isEmpty ? "/" : directory, hint: "\(format.rawValue)-before-\(compression.rawValue)")
        inner = try makeInner(OutputSink(file: scratch.file))
    }

    public func write(_ data: UnsafeRawBufferPointer, at offset: UInt64) throws {
        try inner.write(data, at: offset)
    }

    public func finish() throws -> WriterSummary {
        var summary = try inner.finish()
        let appender = SequentialAppender(sink: sink)
        let encoder = try compression.makeEncoder(level: level, threads: threads) { try appender.append($0) }
        let size = try scratch.file.size
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 4096)
        defer { buffer.deallocate() }
        var position: UInt64 = 0
        for range in try scratch.file.dataRanges() where range.lowerBound < size {
            try encoder.appendZeros(range.lowerBound - position)
            var offset = range.lowerBound
            let end = min(range.upperBound, size)
            while offset < end {
                let want = Int(min(UInt64(buffer.count), end - offset))
                let got = try scratch.file.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<want]), at: offset)
                guard got > 0 else { break }
                try encoder.append(UnsafeRawBufferPointer(rebasing: buffer[0..<got]))
                offset += UInt64(got)
            }
            position = offset
        }
        try encoder.appendZeros(size - position)
        try encoder.finish()
        summary.variant += "; the file compressed after it was complete: \(encoder.summary)"
        summary.fileSize = appender.position
        return summary
    }
}
