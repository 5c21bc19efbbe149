import Foundation
import ImageCore
import ImageFormats
import Testing
import TestSupport

/// Every random-access reader against qemu's own reading of the same image: `qemu-img convert
/// -O raw` gives the reference, then the disk is read whole in odd-sized pieces and at random
/// offsets and lengths (crossing clusters, grains, blocks and extents).
@Suite struct RandomAccessDiskTests {
    /// 24 MiB and 3 sectors: noise, text-like runs and zeros in patches, holes between them, a
    /// last cluster cut short.
    static let sourceSize: UInt64 = 24 << 20 + 1536

    func makeSource(_ path: String) throws {
        try makeSparseFile(path, size: Self.sourceSize)
        let file = try RawFile(path: path, mode: .readWrite)
        let patches: [(UInt64, Int)] = [(0, 65536), ((1 << 20) + 512, 70000), (5 << 20, 2 << 20), (17 << 20, 1 << 19),
                                        (Self.sourceSize - 5000, 5000)]
        for (index, (offset, count)) in patches.enumerated() {
            try file.write(sampleBytes(count: count, seed: UInt64(index + 1)), at: offset)
        }
    }

    func reference(_ image: String, format: String, dir: TestDirectory) throws -> [UInt8] {
        let raw = dir.file("reference.raw")
        try? FileManager.default.removeItem(atPath: raw)
        try run("qemu-img", ["convert", "-f", format, "-O", "raw", image, raw])
        return try readAll(raw)
    }

    func compare(_ disk: any RandomAccessDisk, with expected: [UInt8], seed: UInt64) throws {
        #expect(disk.size == UInt64(expected.count))
        // Whole, in pieces of 1 MiB less a sector: every piece straddles a boundary.
        var offset = 0
        while offset < expected.count {
            let count = min(expected.count - offset, (1 << 20) - 512)
            let got = try disk.read(count: count, at: UInt64(offset))
            guard same(got, expected, at: offset) else {
                Issue.record("\(disk.name): bytes differ in \(offset)..<\(offset + count)")
                return
            }
            offset += count
        }
        var random = SplitMix(seed: seed)
        for _ in 0..<150 {
            let start = random.below(expected.count)
            let count = min(expected.count - start, random.below(200_000) + 1)
            let got = try disk.read(count: count, at: UInt64(start))
            guard same(got, expected, at: start) else {
                Issue.record("\(disk.name): bytes differ in \(start)..<\(start + count)")
                return
            }
        }
        // Past the end: refused, never read.
        #expect(throws: DiskRangeError.self) { _ = try disk.read(count: 2, at: disk.size - 1) }
        #expect(throws: DiskRangeError.self) { _ = try disk.read(count: 1, at: UInt64.max) }
    }

    /// memcmp: element-wise comparison is slow in debug builds.
    func same(_ got: [UInt8], _ expected: [UInt8], at offset: Int) -> Bool {
        got.withUnsafeBytes { a in expected.withUnsafeBytes { b in memcmp(a.baseAddress!, b.baseAddress! + offset, a.count) == 0 } }
    }

    @Test(arguments: [
        (["-O", "qcow2"], "qcow2"), (["-O", "qcow2", "-c"], "qcow2"), (["-O", "qcow2", "-o", "compat=0.10"], "qcow2"),
        (["-O", "qcow2", "-o", "cluster_size=4096"], "qcow2"), (["-O", "qcow2", "-c", "-o", "compression_type=zstd"], "qcow2"),
        (["-O", "vmdk"], "vmdk"), (["-O", "vmdk", "-o", "subformat=streamOptimized"], "vmdk"),
        (["-O", "vmdk", "-o", "subformat=monolithicFlat"], "vmdk"), (["-O", "vmdk", "-o", "subformat=twoGbMaxExtentSparse"], "vmdk"),
        (["-O", "vdi"], "vdi"), (["-O", "vdi", "-o", "static=on"], "vdi"),
        (["-O", "vpc"], "vpc"), (["-O", "vpc", "-o", "subformat=fixed"], "vpc"),
    ])
    func readsAsQemuDoes(convert: [String], format: String) throws {
        let dir = try TestDirectory()
        let source = dir.file("source.raw")
        try makeSource(source)
        let image = dir.file("disk.\(format)")
        try run("qemu-img", ["convert", "-f", "raw"] + convert + [source, image])
        let expected = try reference(image, format: format, dir: dir)
        let reader = try DiskImageReaders.open(path: image)
        let random = try #require(reader as? any RandomAccessDiskImageReader, "\(reader.variant) has no random access")
        try compare(random.randomAccess(), with: expected, seed: UInt64(convert.count))
    }

    /// 4 KiB clusters map 2 MiB per L2 table: a 24 MiB disk read through a cache of two tables
    /// evicts all the time, and reads the same.
    @Test func qcow2L2CacheStaysBounded() throws {
        let dir = try TestDirectory()
        let source = dir.file("source.raw")
        try makeSource(source)
        let image = dir.file("disk.qcow2")
        try run("qemu-img", ["convert", "-f", "raw", "-O", "qcow2", "-o", "cluster_size=4096", source, image])
        let disk = try QCOW2Reader(path: image).randomAccess(l2CacheBytes: 8192)
        try compare(disk, with: readAll(source), seed: 3)
        #expect(disk.cachedL2Tables == 2)
    }

    /// qcow2 v3 zero clusters (the zero flag, over allocated and unallocated clusters) read as zeros.
    @Test func qcow2ZeroClusters() throws {
        let dir = try TestDirectory()
        let source = dir.file("source.raw")
        try makeSource(source)
        let image = dir.file("disk.qcow2")
        try run("qemu-img", ["convert", "-f", "raw", "-O", "qcow2", source, image])
        try run("qemu-io", ["-f", "qcow2", "-c", "write -z 0 128k", "-c", "write -z 6M 64k", "-c", "write -z 20M 1M", image])
        let expected = try reference(image, format: "qcow2", dir: dir)
        #expect(expected[0..<131072].allSatisfy { $0 == 0 })
        let mapped = try run("qemu-img", ["map", "--output=json", "-f", "qcow2", image])
        #expect(String(decoding: mapped, as: UTF8.self).contains("\"zero\": true, \"data\": false"))
        let reader = try QCOW2Reader(path: image)
        try compare(reader.randomAccess(), with: expected, seed: 7)
    }

    /// A descriptor of FLAT, ZERO and SPARSE extents (qemu skips ZERO lines, so the source is
    /// the reference): each part read from its own file.
    @Test func vmdkDescriptorWithFlatZeroAndSparseExtents() throws {
        let dir = try TestDirectory()
        let source = dir.file("source.raw")
        try makeSource(source)
        let all = try readAll(source)
        let flatBytes = 8 << 20, zeroBytes = 8 << 20
        // The ZERO extent's bytes, 8..<16 MiB, cleared in the reference.
        var expected = all
        expected.replaceSubrange(flatBytes..<(flatBytes + zeroBytes), with: [UInt8](repeating: 0, count: zeroBytes))
        try writeAll(dir.file("disk-flat.vmdk"), Array([UInt8](repeating: 0xEE, count: 4096) + expected[0..<flatBytes]))
        try writeAll(dir.file("tail.raw"), Array(expected[(flatBytes + zeroBytes)...]))
        try run("qemu-img", ["convert", "-f", "raw", "-O", "vmdk", dir.file("tail.raw"), dir.file("disk-s001.vmdk")])
        let tailSectors = (expected.count - flatBytes - zeroBytes) / 512
        try writeAll(dir.file("disk.vmdk"), Array("""
            # Disk DescriptorFile
            version=1
            CID=12345678
            parentCID=ffffffff
            createType="monolithicFlat"

            # Extent description
            RW \(flatBytes / 512) FLAT "disk-flat.vmdk" 8
            RW \(zeroBytes / 512) ZERO
            RW \(tailSectors) SPARSE "disk-s001.vmdk"

            """.utf8))
        let reader = try VMDKReader(path: dir.file("disk.vmdk"))
        try compare(reader.randomAccess(), with: expected, seed: 11)
    }

    @Test func slicesStayInside() throws {
        let dir = try TestDirectory()
        let source = dir.file("source.raw")
        try makeSource(source)
        let disk = try FileDisk(path: source)
        #expect(disk.size == Self.sourceSize)
        let slice = try DiskSlice(disk, offset: 5 << 20, size: 1 << 20, name: "slice")
        #expect(try slice.read(count: 4096, at: 100) == disk.read(count: 4096, at: (5 << 20) + 100))
        #expect(throws: DiskRangeError.self) { _ = try slice.read(count: 2, at: (1 << 20) - 1) }
        #expect(throws: DiskRangeError.self) { _ = try DiskSlice(disk, offset: Self.sourceSize - 10, size: 11, name: "past") }
    }
}
