import Foundation
import ImageCore
import ImageFormats
import Testing
import TestSupport

/// Every in-place writer against qemu's own reading of the result: an image made by qemu-img from
/// a disk of data, zeros and holes, some units (clusters, blocks, grains) rewritten through the
/// writer (allocated ones, unallocated ones, compressed ones, the last one cut short by the disk's
/// end), then `qemu-img check` where qemu has one and `qemu-img convert -O raw` must give the
/// original bytes with exactly those units replaced.
@Suite struct InPlaceDiskWriterTests {
    /// 6 MiB and 3 sectors: data in patches, zeros and holes between them.
    static let sourceSize: UInt64 = 6 << 20 + 1536

    func makeSource(_ path: String) throws {
        try makeSparseFile(path, size: Self.sourceSize)
        let file = try RawFile(path: path, mode: .readWrite)
        let patches: [(UInt64, Int)] = [(0, 65536), ((1 << 20) + 512, 70000), (3 << 20, 1 << 20), (Self.sourceSize - 5000, 5000)]
        for (index, (offset, count)) in patches.enumerated() {
            try file.write(sampleBytes(count: count, seed: UInt64(index + 1)), at: offset)
        }
    }

    @Test(arguments: [
        (["-O", "qcow2"], "qcow2"), (["-O", "qcow2", "-c"], "qcow2"), (["-O", "qcow2", "-o", "compat=0.10"], "qcow2"),
        (["-O", "qcow2", "-o", "cluster_size=4096"], "qcow2"), (["-O", "qcow2", "-c", "-o", "cluster_size=512"], "qcow2"),
        (["-O", "qcow2", "-c", "-o", "compression_type=zstd"], "qcow2"), (["-O", "qcow2", "-o", "refcount_bits=8"], "qcow2"),
        (["-O", "vdi"], "vdi"), (["-O", "vdi", "-o", "static=on"], "vdi"),
        (["-O", "vpc"], "vpc"), (["-O", "vpc", "-o", "subformat=fixed"], "vpc"),
        (["-O", "vmdk"], "vmdk"), (["-O", "vmdk", "-o", "zeroed_grain=on"], "vmdk"),
        (["-O", "vhdx", "-o", "block_size=1M"], "vhdx"), (["-O", "vhdx"], "vhdx"),
        (["-O", "vhdx", "-o", "subformat=fixed,block_size=1M"], "vhdx"),
    ])
    func writesWhatQemuReadsBack(convert: [String], format: String) throws {
        let dir = try TestDirectory()
        let source = dir.file("source.raw"), image = dir.file("image.\(format)")
        try makeSource(source)
        _ = try run("qemu-img", ["convert", "-f", "raw"] + convert + [source, image])
        let reference = dir.file("reference.raw")
        _ = try run("qemu-img", ["convert", "-f", format, "-O", "raw", image, reference])
        var expected = try readAll(reference)
        let size = UInt64(expected.count)

        let writer: any InPlaceDiskWriter
        switch format {
        case "qcow2": writer = try QCOW2InPlaceWriter(path: image)
        case "vdi": writer = try VDIInPlaceWriter(path: image)
        case "vpc": writer = try VHDInPlaceWriter(path: image)
        case "vhdx": writer = try VHDXInPlaceWriter(path: image)
        default: writer = try VMDKInPlaceWriter(path: image)
        }
        let unit = writer.unitSize
        let last = (size - 1) / unit
        // The first unit (data), one in a hole, one straddling data and zeros, the last (cut short).
        // (A unit larger than the disk, VHDX's 32 MiB block, leaves only the first.)
        let units = Array(Set([0, (2 << 20) / unit, ((3 << 20) + (1 << 19)) / unit, last, max(1, last / 2)])).filter { $0 <= last }.sorted()
        var contents: [UInt64: [UInt8]] = [:]
        for (index, number) in units.enumerated() {
            contents[number] = sampleBytes(count: Int(unit), seed: 100 + UInt64(index))
            let start = Int(number * unit), count = Int(min(unit, size - number * unit))
            expected.replaceSubrange(start..<(start + count), with: contents[number]![0..<count])
        }
        try writer.plan(units)
        try writer.commit { contents[$0]! }

        if format != "vpc" {
            let check = try Command.run("qemu-img", ["check", "-f", format, image])
            #expect(check.status == 0 && !check.stdout.contains("leaked"), "\(convert): \(check.stdout)\(check.stderr)")
        }
        let back = dir.file("back.raw")
        _ = try run("qemu-img", ["convert", "-f", format, "-O", "raw", image, back])
        let got = try readAll(back)
        #expect(got.count == expected.count, "\(convert): \(got.count) bytes back, \(expected.count) expected")
        if got.count == expected.count {
            let differs = got.withUnsafeBytes { a in expected.withUnsafeBytes { b in memcmp(a.baseAddress!, b.baseAddress!, a.count) != 0 } }
            #expect(!differs, "\(convert): qemu reads other bytes than were written")
        }
        // And Rehost's own reader agrees.
        let input = try InputImageBytes.read(image)
        #expect(input == expected, "\(convert): Rehost's reader reads other bytes")
    }
}

/// The virtual disk of an image as Rehost's own reader gives it.
enum InputImageBytes {
    static func read(_ path: String) throws -> [UInt8] {
        let reader = try #require(try DiskImageReaders.open(path: path) as? any RandomAccessDiskImageReader)
        let disk = reader.randomAccess()
        return try disk.read(count: Int(disk.size), at: 0)
    }
}
