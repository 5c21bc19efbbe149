import Foundation
import ImageCore
import ImageFormats
import Testing
import TestSupport

/// A raw synthetic disk converted to VMDK through the real pipeline pieces.
struct Converted {
    let directory: TemporaryDirectory
    let rawPath: String
    let vmdkPath: String
    let summary: WriterSummary
    let streamedDigest: String?
    let size: UInt64
}

enum VMDKTestError: Error, CustomStringConvertible {
    case unexpected(String)
    var description: String {
        switch self { case let .unexpected(text): return text }
    }
}

/// Makes a synthetic disk of `size` bytes, streams it into a VMDK writer with `options`, and
/// (when `digest` is set) hashes the output as it is written.
func convert(size: UInt64, options: WriterOptions, seed: UInt64 = 1, digest: Bool = false,
             name: String = "disk.vmdk") throws -> Converted {
    let directory = try TemporaryDirectory(prefix: "rehost-vmdk")
    let rawPath = directory.file("disk.raw")
    try SyntheticDisk.make(at: rawPath, size: size, seed: seed)
    let vmdkPath = directory.file(name)
    let sink = OutputSink(file: try RawFile(path: vmdkPath, mode: .createExclusive))
    if digest { sink.startDigest(.sha256) }
    let reader = try RawDiskReader(path: rawPath)
    let writer = try VMDKWriter(sink: sink, virtualSize: size, options: options)
    let summaries = try DiskStreamer.stream(reader, to: [writer])
    return Converted(directory: directory, rawPath: rawPath, vmdkPath: vmdkPath, summary: summaries[0],
                     streamedDigest: sink.finishDigest(), size: size)
}

/// qemu-img check clean, compare identical, info with the exact size and create type.
func expectQemuAccepts(_ converted: Converted, createType: String) throws {
    let check = try Command.run("qemu-img", ["check", "-f", "vmdk", converted.vmdkPath])
    #expect(check.status == 0, "qemu-img check: \(check.stdout) \(check.stderr)")
    #expect(check.stdout.contains("No errors were found"), "qemu-img check: \(check.stdout)")

    let compare = try Command.run("qemu-img", ["compare", "-f", "vmdk", "-F", "raw", converted.vmdkPath, converted.rawPath])
    #expect(compare.status == 0, "qemu-img compare: \(compare.stdout) \(compare.stderr)")
    #expect(compare.stdout.contains("Images are identical"))

    let info = try Command.run("qemu-img", ["info", "-f", "vmdk", "--output=json", converted.vmdkPath]).requireSuccess()
    let json = try #require(try JSONSerialization.jsonObject(with: Data(info.stdoutBytes)) as? [String: Any])
    #expect(json["format"] as? String == "vmdk")
    #expect((json["virtual-size"] as? NSNumber)?.uint64Value == converted.size)
    let specific = (json["format-specific"] as? [String: Any])?["data"] as? [String: Any]
    #expect(specific?["create-type"] as? String == createType)
    let extent = (specific?["extents"] as? [[String: Any]])?.first
    #expect((extent?["compressed"] as? Bool ?? false) == (createType == "streamOptimized"))
    #expect((extent?["virtual-size"] as? NSNumber)?.uint64Value == converted.size)
    #expect(converted.summary.fileSize == (try RawFile(path: converted.vmdkPath, mode: .readOnly).size))
}

/// The raw disk's bytes at `offset`.
func rawBytes(_ converted: Converted, count: Int, at offset: UInt64) throws -> [UInt8] {
    let file = try RawFile(path: converted.rawPath, mode: .readOnly)
    var bytes = [UInt8](repeating: 0, count: count)
    let got = try bytes.withUnsafeMutableBytes { try file.read(into: $0, at: offset) }
    // Past the end of the disk a grain reads as zeros.
    for i in got..<count { bytes[i] = 0 }
    return bytes
}

func options(_ subformat: WriterOptions.VMDKSubformat, _ adapter: WriterOptions.VMDKAdapter = .lsilogic) -> WriterOptions {
    var options = WriterOptions()
    options.vmdkSubformat = subformat
    options.vmdkAdapter = adapter
    return options
}
