import Foundation
import ImageCore
import ImageFormats
import Testing
import TestSupport

/// The front-to-back qcow2 (what `--upload glance` streams) against qemu-img: written through a
/// sink that takes bytes only in order (no file to seek in), it passes `qemu-img check`, reads
/// back as the raw disk (`qemu-img compare`), and is exactly as long as planned. The disk has
/// data in two 512 MiB spans, a 64 KiB zero block inside an allocated range (planned, never
/// streamed, so written as zeros), a run that ends mid-cluster, two extents sharing a cluster,
/// and a size that is not a whole number of clusters.
struct QCOW2StreamWriterTests {
    /// Collects a stream's bytes into a file strictly in order, as a network upload would.
    final class OrderedFile: SequentialByteSink {
        let file: RawFile
        var length: UInt64 = 0
        init(_ file: RawFile) { self.file = file }
        func append(_ bytes: UnsafeRawBufferPointer) throws {
            try file.write(bytes, at: length)
            length += UInt64(bytes.count)
        }
    }

    @Test func streamedQCOW2IsTheRawDiskForQemuImg() throws {
        let dir = try TemporaryDirectory(prefix: "rehost-qcow2-stream")
        let raw = dir.file("disk.raw")
        let size: UInt64 = (1 << 30) + 3 * 65536 + 4096
        var generator = SplitMix(seed: 21)
        let file = try RawFile(path: raw, mode: .createExclusive)
        try file.truncate(to: size)
        func fill(_ range: Range<UInt64>) throws {
            let bytes = (0..<Int(range.count)).map { _ in UInt8(truncatingIfNeeded: generator.next() | 1) }
            try bytes.withUnsafeBytes { try file.write($0, at: range.lowerBound) }
        }
        try fill(0..<(3 << 16))
        // An allocated but all-zero block between two data blocks.
        try fill((10 << 16)..<(11 << 16))
        try file.write([UInt8](repeating: 0, count: 65536), at: 11 << 16)
        try fill((12 << 16)..<((12 << 16) + 5000))
        try fill((600 << 20)..<((600 << 20) + (1 << 20)))
        // Two 4 KiB extents in one cluster, a hole between them (SEEK_DATA reports them apart).
        try fill((700 << 20)..<((700 << 20) + 4096))
        try fill(((700 << 20) + 32768)..<((700 << 20) + 36864))
        try fill((size - 4096)..<size)
        let reader = try RawDiskReader(path: raw)

        let output = dir.file("disk.qcow2")
        let ordered = OrderedFile(try RawFile(path: output, mode: .createExclusive))
        let writer = try QCOW2StreamWriter(sink: OutputSink(stream: ordered, name: "disk.qcow2"), virtualSize: size,
                                           dataRanges: try file.dataRanges())
        let summary = try DiskStreamer.stream(reader, to: [writer])[0]
        #expect(ordered.length == writer.fileSize)
        #expect(summary.fileSize == writer.fileSize)
        let check = try Command.run("qemu-img", ["check", "-f", "qcow2", output])
        #expect(check.status == 0, "\(check.stdout)\(check.stderr)")
        let compare = try Command.run("qemu-img", ["compare", "-f", "qcow2", "-F", "raw", output, raw])
        #expect(compare.status == 0, "\(compare.stdout)\(compare.stderr)")
        let info = try qemuInfo(output)
        #expect(info["virtual-size"] as? Int == Int(size))
    }

    @Test func dataOutsideThePlanIsRefused() throws {
        let dir = try TemporaryDirectory(prefix: "rehost-qcow2-stream")
        let ordered = OrderedFile(try RawFile(path: dir.file("x.qcow2"), mode: .createExclusive))
        let writer = try QCOW2StreamWriter(sink: OutputSink(stream: ordered, name: "x.qcow2"), virtualSize: 1 << 20,
                                           dataRanges: [0..<65536])
        let data = [UInt8](repeating: 7, count: 512)
        #expect(throws: WriterError.self) {
            try data.withUnsafeBytes { try writer.write($0, at: 1 << 17) }
        }
    }
}
