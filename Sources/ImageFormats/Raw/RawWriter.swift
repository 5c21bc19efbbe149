import ImageCore

/// A sparse raw image: data where the disk has data, holes everywhere else.
public final class RawWriter: DiskImageWriter {
    public let format = ImageFormat.raw
    public let virtualSize: UInt64
    private let sink: OutputSink
    private var next: UInt64 = 0
    private var dataBytes: UInt64 = 0

    public init(sink: OutputSink, virtualSize: UInt64) {
        self.sink = sink
        self.virtualSize = virtualSize
    }

    public func write(_ data: UnsafeRawBufferPointer, at offset: UInt64) throws {
        guard offset >= next else { throw WriterError.outOfOrder(format: format, offset: offset, expectedAtLeast: next) }
        guard offset + UInt64(data.count) <= virtualSize else {
            throw WriterError.beyondEnd(format: format, offset: offset, virtualSize: virtualSize)
        }
        try sink.write(data, at: offset)
        next = offset + UInt64(data.count)
        dataBytes += UInt64(data.count)
    }

    public func finish() throws -> WriterSummary {
        try sink.extend(to: virtualSize)
        return WriterSummary(format: format, variant: "raw, sparse", virtualSize: virtualSize, fileSize: virtualSize,
                             allocatedUnits: (dataBytes + 65535) / 65536, unitSize: 65536)
    }
}
