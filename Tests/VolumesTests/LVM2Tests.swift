import Foundation
import ImageCore
import ImageFormats
import Testing
import TestSupport
@testable import Volumes

/// A disk in memory, for hostile variations of a PV.
final class MemoryDisk: RandomAccessDisk {
    var bytes: [UInt8]
    let name: String
    var size: UInt64 { UInt64(bytes.count) }
    init(_ bytes: [UInt8], name: String = "memory") { self.bytes = bytes; self.name = name }
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws {
        try checkRange(offset: offset, count: buffer.count)
        for i in 0..<buffer.count { buffer[i] = bytes[Int(offset) + i] }
    }
}

/// Runs Fixtures/lvm2-write.py on a fresh zero file of `size` bytes and returns its bytes.
func writtenPV(size: Int = 48 << 20, arguments: [String]) throws -> [UInt8] {
    let dir = try TemporaryDirectory(prefix: "rehost-lvm")
    let path = dir.file("pv.img")
    _ = FileManager.default.createFile(atPath: path, contents: nil)
    try FileHandle(forWritingAtPath: path)!.truncate(atOffset: UInt64(size))
    _ = try Command.run("/usr/bin/python3", ["\(Fixture.repositoryRoot)/Fixtures/lvm2-write.py", path,
                                             "--offset", "0", "--size", "\(size)"] + arguments).requireSuccess()
    return Array(try Data(contentsOf: URL(fileURLWithPath: path)))
}

func resign(label bytes: inout [UInt8]) {
    let crc = LVM2.crc(bytes[532..<1024])
    bytes.storeLE(crc, at: 528)
}

func resign(metadataHeader bytes: inout [UInt8]) {
    bytes.storeLE(LVM2.crc(bytes[4100..<4608]), at: 4096)
}

@Suite struct LVM2CRCTests {
    @Test func crcMatchesLVM2() {
        // lvm2's calc_crc over the empty string is its seed; over "a" it differs from zlib's CRC-32.
        #expect(LVM2.crc([]) == 0xf597a6cf)
        #expect(LVM2.crc(Array("123456789".utf8), initial: 0xffff_ffff) == ~UInt32(0xcbf4_3926))
    }

    @Test func uuidDashes() {
        #expect(LVM2.dashed("dOn48byobO1IlGi5xMRHjl9QiKT0MWfT") == "dOn48b-yobO-1IlG-i5xM-RHjl-9QiK-T0MWfT")
        #expect(LVM2.undashed("dOn48b-yobO-1IlG-i5xM-RHjl-9QiK-T0MWfT") == "dOn48byobO1IlGi5xMRHjl9QiKT0MWfT")
    }
}

@Suite struct LVM2RealPVTests {
    /// The first MiB of a PV written by lvm2 2.03.16 itself (pvcreate, vgcreate -s 4m, two
    /// lvcreate -L 8M, lvextend LogVol00 to 16M: LogVol00 is extents 0-1 then 4-5, LogVol01 2-3),
    /// on a 64 MiB loop device; see Fixtures/README.md.
    static func realPV() throws -> MemoryDisk {
        let gz = "\(Fixture.repositoryRoot)/Fixtures/lvm2-real-pv.head.gz"
        let head = try Command.run("/bin/gzip", ["-dc", gz]).requireSuccess().stdoutBytes
        var bytes = [UInt8](repeating: 0, count: 64 << 20)
        bytes.replaceSubrange(0..<head.count, with: head)
        // Mark each extent's first bytes so the mapping can be checked.
        for extent in 0..<15 { bytes[(1 << 20) + extent * (4 << 20)] = UInt8(0xe0 + extent) }
        return MemoryDisk(bytes, name: "real.img")
    }

    @Test func readsWhatLVM2Wrote() throws {
        let disk = try Self.realPV()
        let found = try #require(try LVM2.examine(disk))
        #expect(found.label.sector == 1)
        #expect(found.label.deviceSize == 64 << 20)
        #expect(found.label.dataAreas == [LVM2.DiskArea(offset: 1 << 20, size: 0)])
        #expect(found.label.metadataAreas == [LVM2.DiskArea(offset: 4096, size: 1_044_480)])
        let vg = try #require(found.group)
        #expect(vg.name == "VolGroup00")
        #expect(vg.extentSize == 8192)
        #expect(vg.physicalVolumes.map(\.peStart) == [2048])
        #expect(LVM2.undashed(vg.physicalVolumes[0].id) == found.label.uuid)
        #expect(vg.logicalVolumes.map(\.name) == ["LogVol00", "LogVol01"])
        #expect(vg.logicalVolumes[0].segments.map(\.extentCount) == [2, 2])
        #expect(vg.logicalVolumes[0].segments.map { $0.stripes[0].startExtent } == [0, 4])

        let groups = LVM2.assemble([found])
        #expect(groups.count == 1 && groups[0].missing.isEmpty)
        let lv0 = try groups[0].open(vg.logicalVolumes[0])
        #expect(lv0.size == 16 << 20)
        #expect(lv0.name == "VolGroup00/LogVol00")
        let extentBytes: UInt64 = 4 << 20
        #expect(try lv0.read(count: 1, at: 0) == [0xe0])
        #expect(try lv0.read(count: 1, at: extentBytes) == [0xe1])
        #expect(try lv0.read(count: 1, at: 2 * extentBytes) == [0xe4])
        #expect(try lv0.read(count: 1, at: 3 * extentBytes) == [0xe5])
        // A read across the segment boundary joins both PV ranges.
        let across = try lv0.read(count: 2, at: 2 * extentBytes - 1)
        #expect(across == [0, 0xe4])
        #expect(lv0.contiguousRun == nil)
        let lv1 = try groups[0].open(vg.logicalVolumes[1])
        #expect(try lv1.read(count: 1, at: 0) == [0xe2])
        #expect(lv1.contiguousRun?.offset == (1 << 20) + 2 * extentBytes)
        #expect(throws: DiskRangeError.self) { try lv1.read(count: 2, at: lv1.size - 1) }
    }

    @Test func metadataWrappedAroundTheCircularBuffer() throws {
        // Move the real text so it wraps the end of the area: its tail continues after the header.
        let disk = try Self.realPV()
        let header = try LVM2.MetadataArea.read(LVM2.DiskArea(offset: 4096, size: 1_044_480), from: disk)
        let text = Array(disk.bytes[Int(4096 + header.offset) ..< Int(4096 + header.offset + header.size)])
        let newOffset = 1_044_480 - 100
        for (i, byte) in text.enumerated() {
            let at = i < 100 ? 4096 + newOffset + i : 4096 + 512 + (i - 100)
            disk.bytes[at] = byte
        }
        disk.bytes.storeLE(UInt64(newOffset), at: 4096 + 40)
        resign(metadataHeader: &disk.bytes)
        let moved = try LVM2.MetadataArea.read(LVM2.DiskArea(offset: 4096, size: 1_044_480), from: disk)
        #expect(try moved.text(from: disk).hasPrefix("VolGroup00 {"))
        #expect(try LVM2.examine(disk)?.group?.logicalVolumes.count == 2)
    }
}

@Suite struct LVM2WriterTests {
    @Test func stripedAcrossTwoPVs() throws {
        let common = ["--vg", "vgdata", "--pvs", "2", "--extent-mib", "1", "--lv", "data:8:striped:64", "--lv", "solo:2"]
        let pv0 = MemoryDisk(try writtenPV(size: 16 << 20, arguments: common + ["--pv-index", "0"]), name: "disk0")
        let pv1 = MemoryDisk(try writtenPV(size: 16 << 20, arguments: common + ["--pv-index", "1"]), name: "disk1")
        // Tag each 64 KiB chunk of both data areas with (pv, chunk).
        for (index, pv) in [pv0, pv1].enumerated() {
            for chunk in 0..<64 { pv.bytes[(1 << 20) + chunk * 65536] = UInt8(index * 100 + chunk) }
        }
        let found = try [pv0, pv1].compactMap { try LVM2.examine($0) }
        let groups = LVM2.assemble(found)
        #expect(groups.count == 1)
        let vg = groups[0].group
        let data = try groups[0].open(try #require(vg.logicalVolumes.first { $0.name == "data" }))
        #expect(data.size == 8 << 20)
        // dm-stripe: chunk n goes to stripe n % 2, row n / 2.
        for n in 0..<8 {
            let expected = UInt8((n % 2) * 100 + n / 2)
            #expect(try data.read(count: 1, at: UInt64(n) * 65536) == [expected])
        }
        #expect(data.contiguousRun == nil)
        // With one disk missing, the striped LV cannot be opened and says which PV is missing.
        let partial = LVM2.assemble([found[0]])
        #expect(partial[0].missing.map(\.name) == ["pv1"])
        #expect(throws: LVMError.self) { _ = try partial[0].open(vg.logicalVolumes[0]) }
    }
}

@Suite struct LVM2HostileTests {
    static func pv() throws -> [UInt8] {
        try writtenPV(size: 24 << 20, arguments: ["--vg", "vg", "--lv", "root:4"])
    }

    @Test func noLabelIsNoPV() throws {
        #expect(try LVM2.examine(MemoryDisk([UInt8](repeating: 0, count: 8192))) == nil)
        #expect(try LVM2.examine(MemoryDisk([UInt8](repeating: 0, count: 100))) == nil)
    }

    @Test func badLabelChecksum() throws {
        var bytes = try Self.pv()
        bytes[600] ^= 1
        #expect(throws: LVMError.self) { _ = try LVM2.examine(MemoryDisk(bytes)) }
        do { _ = try LVM2.examine(MemoryDisk(bytes)) } catch let error as LVMError {
            guard case .labelChecksum = error else { Issue.record("\(error)"); return }
        }
    }

    @Test func labelClaimingAnotherSector() throws {
        var bytes = try Self.pv()
        bytes.storeLE(UInt64(3), at: 520)
        resign(label: &bytes)
        #expect(throws: LVMError.badLabel(disk: "memory", sector: 1, reason: "it says it is in sector 3")) {
            _ = try LVM2.examine(MemoryDisk(bytes))
        }
    }

    @Test func endlessAreaList() throws {
        var bytes = try Self.pv()
        for at in stride(from: 512 + 32 + 40, to: 1024 - 16, by: 16) { bytes.storeLE(UInt64(4096), at: at) }
        resign(label: &bytes)
        #expect(throws: LVMError.self) { _ = try LVM2.examine(MemoryDisk(bytes)) }
    }

    @Test func badMetadataChecksum() throws {
        var bytes = try Self.pv()
        bytes[4608 + 3] ^= 0x20   // a byte of the text
        #expect(throws: LVMError.self) { _ = try LVM2.examine(MemoryDisk(bytes)) }
        var header = try Self.pv()
        header[4096 + 30] ^= 1
        #expect(throws: LVMError.self) { _ = try LVM2.examine(MemoryDisk(header)) }
    }

    @Test func metadataAreaPastTheDisk() throws {
        var bytes = try Self.pv()
        bytes.storeLE(UInt64.max - 10, at: 512 + 32 + 32 + 8 + 32 + 8)   // the metadata area's size
        resign(label: &bytes)
        #expect(throws: LVMError.self) { _ = try LVM2.examine(MemoryDisk(bytes)) }
    }

    @Test func hugeTextSize() throws {
        var bytes = try Self.pv()
        bytes.storeLE(UInt64(1) << 62, at: 4096 + 48)
        resign(metadataHeader: &bytes)
        #expect(throws: LVMError.self) { _ = try LVM2.examine(MemoryDisk(bytes)) }
    }

    static func group(_ text: String) throws -> LVM2.VolumeGroup {
        try LVM2.VolumeGroup(parsing: try LVM2.TextParser.parse(text, source: "test"))
    }

    static func vg(extentSize: String = "8192", peCount: String = "10", segments: String) -> String {
        """
        vg { id = "x" seqno = 1 extent_size = \(extentSize)
        physical_volumes { pv0 { id = "a" pe_start = 2048 pe_count = \(peCount) } }
        logical_volumes { lv { id = "y" status = ["READ", "VISIBLE"] \(segments) } }
        }
        """
    }

    @Test func parsesGoodText() throws {
        let root = try LVM2.TextParser.parse("""
            # comment
            a = "x\\"y\\\\z"   # escapes
            b = -12
            c = [ "p", 1, 2 ]
            d { e = [] f { g = 1.5 } }
            """, source: "t")
        #expect(root["a"] == .string("x\"y\\z"))
        #expect(root["b"] == .integer(-12))
        #expect(root["c"] == .array([.string("p"), .integer(1), .integer(2)]))
        #expect(root["d"]?.section?["f"]?.section?["g"] == .real(1.5))
    }

    @Test(arguments: [
        ("a = ", "no value"),
        ("a = \"open", "an unterminated string"),
        ("a { b = 1", "an unclosed section"),
        ("}", "a stray brace"),
        ("a = [1, [2]]", "nested arrays"),
        ("a = 99999999999999999999", "a number beyond 64 bits"),
        ("a = 1 a = 2", "a duplicate key"),
        ("a = @", "garbage"),
        (String(repeating: "a { ", count: 40) + String(repeating: "} ", count: 40), "deep nesting"),
    ])
    func refusesBadText(text: String, what: String) {
        #expect(throws: LVMError.self, "\(what)") { _ = try LVM2.TextParser.parse(text, source: "t") }
    }

    @Test func refusesSegmentsPastThePV() {
        let text = Self.vg(segments: """
            segment_count = 1 segment1 { start_extent = 0 extent_count = 8 type = "striped" stripe_count = 1 stripes = ["pv0", 5] }
            """)
        #expect(throws: LVMError.extentsOutsidePhysicalVolume(logicalVolume: "vg/lv", physicalVolume: "pv0", lastExtent: 12, peCount: 10)) {
            _ = try Self.group(text)
        }
    }

    @Test func refusesHugeNumbers() {
        for (extent, count, stripe) in [("0", "10", "0"), ("8192", "9223372036854775807", "0"), ("99999999999", "10", "0"),
                                        ("8192", "10", "9223372036854775800"), ("8192", "-1", "0")] {
            let text = Self.vg(extentSize: extent, peCount: count, segments: """
                segment_count = 1 segment1 { start_extent = 0 extent_count = 1 type = "striped" stripe_count = 1 stripes = ["pv0", \(stripe)] }
                """)
            #expect(throws: LVMError.self, "\(extent) \(count) \(stripe)") { _ = try Self.group(text) }
        }
    }

    /// Two segments, each inside its own PV, whose sum in bytes overflows 64 bits.
    @Test func refusesAnLVLargerThan64BitsOfBytes() {
        let text = """
            vg { id = "x" seqno = 1 extent_size = 4294967296
            physical_volumes { pv0 { id = "a" pe_start = 2048 pe_count = 4194303 } pv1 { id = "b" pe_start = 2048 pe_count = 4194303 } }
            logical_volumes { lv { id = "y" status = ["VISIBLE"] segment_count = 2
              segment1 { start_extent = 0 extent_count = 4194303 type = "striped" stripe_count = 1 stripes = ["pv0", 0] }
              segment2 { start_extent = 4194303 extent_count = 4194303 type = "striped" stripe_count = 1 stripes = ["pv1", 0] } } }
            }
            """
        #expect(throws: LVMError.self) { _ = try Self.group(text) }
    }

    @Test func refusesInconsistentSegments() {
        for segments in [
            "segment_count = 2 segment1 { start_extent = 0 extent_count = 1 type = \"striped\" stripe_count = 1 stripes = [\"pv0\", 0] }",
            "segment_count = 1 segment1 { start_extent = 3 extent_count = 1 type = \"striped\" stripe_count = 1 stripes = [\"pv0\", 0] }",
            "segment_count = 1 segment1 { start_extent = 0 extent_count = 3 type = \"striped\" stripe_count = 2 stripe_size = 128 stripes = [\"pv0\", 0, \"pv0\", 4] }",
            "segment_count = 1 segment1 { start_extent = 0 extent_count = 2 type = \"striped\" stripe_count = 2 stripe_size = 100 stripes = [\"pv0\", 0, \"pv0\", 4] }",
            "segment_count = 1 segment1 { start_extent = 0 extent_count = 1 type = \"striped\" stripe_count = 1 stripes = [\"pv9\", 0] }",
            "segment_count = 1 segment1 { start_extent = 0 extent_count = 1 type = \"striped\" stripe_count = 1 stripes = [\"pv0\"] }",
        ] {
            #expect(throws: LVMError.self, "\(segments)") { _ = try Self.group(Self.vg(segments: segments)) }
        }
        // A stripe chunk that does not divide the extent (6 MiB extents, 4 MiB chunks).
        let uneven = Self.vg(extentSize: "12288", segments: """
            segment_count = 1 segment1 { start_extent = 0 extent_count = 2 type = "striped" stripe_count = 2 stripe_size = 8192 stripes = ["pv0", 0, "pv0", 4] }
            """)
        #expect(throws: LVMError.self) { _ = try Self.group(uneven) }
    }

    @Test func otherSegmentTypesAreRefusedWhenOpened() throws {
        let vg = try Self.group(Self.vg(segments: """
            segment_count = 1 segment1 { start_extent = 0 extent_count = 2 type = "thin" thin_pool = "pool" }
            """))
        #expect(vg.logicalVolumes[0].unsupported == "thin")
        let group = LVM2.AssembledGroup(group: vg, disks: ["pv0": MemoryDisk([UInt8](repeating: 0, count: 1 << 20))])
        #expect(throws: LVMError.unsupportedSegment(logicalVolume: "vg/lv", type: "thin")) { _ = try group.open(vg.logicalVolumes[0]) }
    }

    @Test func pvSmallerThanItsExtents() throws {
        let bytes = try Self.pv()
        let truncated = MemoryDisk(Array(bytes[0..<(8 << 20)]))
        let found = try #require(try LVM2.examine(truncated))
        let group = try #require(LVM2.assemble([found]).first)
        #expect(group.missing.map(\.name) == ["pv0"])
        let needed: UInt64 = (1 << 20) + 5 * (4 << 20)
        let expected = LVMError.physicalVolumeTooSmall(physicalVolume: "vg/pv0", disk: "memory", needed: needed, size: 8 << 20)
        #expect(group.problems == [expected])
        #expect(throws: LVMError.self) { _ = try group.open(group.group.logicalVolumes[0]) }
    }
}
