import ImageCore
@testable import ImageFormats

/// TEMPORARY until branch vmdk lands: a dense raw writer that writes its sink sequentially.
final class DenseRawWriter: DiskImageWriter {
    let format = ImageFormat.raw
    let virtualSize: UInt64
    let sink: OutputSink
    var next: UInt64 = 0
    init(sink: OutputSink, virtualSize: UInt64) { self.sink = sink; self.virtualSize = virtualSize }
    func write(_ data: UnsafeRawBufferPointer, at offset: UInt64) throws {
        try sink.extend(to: offset)
        try sink.write(data, at: offset)
        next = offset + UInt64(data.count)
    }
    func finish() throws -> WriterSummary {
        try sink.extend(to: virtualSize)
        return WriterSummary(format: .raw, variant: "dense raw", virtualSize: virtualSize, fileSize: virtualSize, allocatedUnits: 0, unitSize: 1)
    }
}
