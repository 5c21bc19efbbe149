import Compression
import ImageCore

/// A raw disk as one compressed stream (`x.raw.gz`, `.raw.xz`, `.raw.zst`), written front to
/// back in the same pass as the other outputs:
///
///     disk   [data][ hole ........ ][data][hole]      writes at increasing offsets
///     stream  data  zeros(count)     data  zeros      every byte of the disk, holes as zeros
///     file   [compressed bytes, appended in order]    no holes, no seeks
///
/// Holes reach the encoder as counts (`appendZeros`), never as buffers. The file is written
/// through the sink strictly sequentially, so it can go to a stream (an upload) as well.
public final class CompressedRawWriter: DiskImageWriter {
    public let format = ImageFormat.raw
    public let virtualSize: UInt64
    private let appender: SequentialAppender
    private var encoder: (any StreamEncoder)!
    private var next: UInt64 = 0
    private var dataBytes: UInt64 = 0

    public init(sink: OutputSink, virtualSize: UInt64, compression: OutputCompression, level: Int32?,
                threads: Int = StreamEncoding.defaultThreads) throws {
        self.virtualSize = virtualSize
        let appender = SequentialAppender(sink: sink)
        self.appender = appender
        encoder = try compression.makeEncoder(level: level, threads: threads) { try appender.append($0) }
    }

    public func write(_ data: UnsafeRawBufferPointer, at offset: UInt64) throws {
        guard offset >= next else { throw WriterError.outOfOrder(format: format, offset: offset, expectedAtLeast: next) }
        guard offset + UInt64(data.count) <= virtualSize else {
            throw WriterError.beyondEnd(format: format, offset: offset, virtualSize: virtualSize)
        }
        try encoder.appendZeros(offset - next)
        try encoder.append(data)
        next = offset + UInt64(data.count)
        dataBytes += UInt64(data.count)
    }

    public func finish() throws -> WriterSummary {
        try encoder.appendZeros(virtualSize - next)
        next = virtualSize
        try encoder.finish()
        return WriterSummary(format: format, variant: "raw, \(encoder.summary)", virtualSize: virtualSize,
                             fileSize: appender.position, allocatedUnits: (dataBytes + 65535) / 65536, unitSize: 65536)
    }
}

/// Appends to a sink at its end: the encoders' output.
final class SequentialAppender {
    let sink: OutputSink
    private(set) var position: UInt64 = 0

    init(sink: OutputSink) { self.sink = sink }

    func append(_ bytes: UnsafeRawBufferPointer) throws {
        try sink.write(bytes, at: position)
        position += UInt64(bytes.count)
    }
}
