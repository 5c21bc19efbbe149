import Foundation
import ImageCore
import ImageFormats
import Testing
import TestSupport

/// Streams the raw disk at `raw` through `RawDiskReader` and `DiskStreamer` into the writer
/// `make` builds, as the pipeline does.
@discardableResult
func convert(_ raw: String, to output: String,
             _ make: (OutputSink, UInt64) throws -> any DiskImageWriter) throws -> WriterSummary {
    let reader = try RawDiskReader(path: raw)
    let file = try RawFile(path: output, mode: .createExclusive)
    let writer = try make(OutputSink(file: file), reader.size)
    let summaries = try DiskStreamer.stream(reader, to: [writer])
    return summaries[0]
}

/// `qemu-img info --output=json`: the fields these tests look at.
struct QemuInfo {
    let format: String
    let virtualSize: UInt64
}

enum Qemu {
    static func info(_ path: String, format: String) throws -> QemuInfo {
        let result = try Command.run("qemu-img", ["info", "-f", format, "--output=json", path], timeout: .seconds(60)).requireSuccess()
        let object = try JSONSerialization.jsonObject(with: Data(result.stdoutBytes)) as? [String: Any]
        let size = (object?["virtual-size"] as? NSNumber)?.uint64Value
        let name = object?["format"] as? String
        guard let size, let name else { throw TestFailure("qemu-img info gave no format or virtual-size: \(result.stdout)") }
        return QemuInfo(format: name, virtualSize: size)
    }

    /// Plain `qemu-img compare` (never -s: a raw has no allocation to match); exit 0 = identical.
    static func compare(raw: String, image: String, format: String) throws -> CommandResult {
        try Command.run("qemu-img", ["compare", "-f", "raw", "-F", format, raw, image], timeout: .seconds(120))
    }

    static func check(_ path: String, format: String) throws -> CommandResult {
        try Command.run("qemu-img", ["check", "-f", format, path], timeout: .seconds(60))
    }

    static func create(_ path: String, format: String, size: UInt64, options: String) throws {
        try Command.run("qemu-img", ["create", "-q", "-f", format, "-o", options, path, String(size)],
                        timeout: .seconds(60)).requireSuccess()
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The blocks of `blockSize` bytes that the synthetic disk put data into, from the ranges its
/// generator reports (every byte of those ranges is written, and none of them is a whole zero
/// 64 KiB granule, so the reader passes every one of them on).
func blocksWithData(_ ranges: [Range<UInt64>], blockSize: UInt64) -> [UInt64] {
    var blocks = Set<UInt64>()
    for range in ranges where !range.isEmpty {
        for block in (range.lowerBound / blockSize)...((range.upperBound - 1) / blockSize) { blocks.insert(block) }
    }
    return blocks.sorted()
}

/// `count` bytes of the file at `path` from `offset`, zero-filled past its end.
func readBytes(_ path: String, at offset: UInt64, count: Int) throws -> [UInt8] {
    let file = try RawFile(path: path, mode: .readOnly)
    var bytes = [UInt8](repeating: 0, count: count)
    _ = try bytes.withUnsafeMutableBytes { try file.read(into: $0, at: offset) }
    return bytes
}

/// Bytes the file really occupies on disk (st_blocks x 512), to see that holes stayed holes.
func allocatedBytes(_ path: String) throws -> UInt64 {
    var status = stat()
    guard stat(path, &status) == 0 else { throw TestFailure("cannot stat \(path)") }
    return UInt64(status.st_blocks) * 512
}

/// A synthetic disk of `size` bytes in `directory`, with the ranges that hold data.
func syntheticDisk(in directory: TemporaryDirectory, size: UInt64, seed: UInt64 = 1) throws -> (path: String, ranges: [Range<UInt64>]) {
    let path = directory.file("disk-\(size)-\(seed).raw")
    let ranges = try SyntheticDisk.make(at: path, size: size, seed: seed)
    return (path, ranges)
}

func isVersion4(_ uuid: [UInt8]) -> Bool {
    uuid.count == 16 && uuid[6] >> 4 == 4 && uuid[8] >> 6 == 2
}

let MiB: UInt64 = 1 << 20
