import ImageCore
import Testing
@testable import DiskLayout

@Suite struct MBRTests {
    func sampleMBR() throws -> MBR {
        var code = [UInt8](repeating: 0, count: MBR.bootCodeSize)
        for i in code.indices { code[i] = UInt8(truncatingIfNeeded: i * 7 + 3) }
        return MBR(bootCode: code, diskSignature: 0xDEAD_BEEF, partitions: [
            try MBRPartition(bootable: true, type: 0x83, firstLBA: 2048, sectorCount: 204_800),
            nil,
            try MBRPartition(bootable: false, type: 0x82, firstLBA: 206_848, sectorCount: 8192),
        ])
    }

    @Test func roundTripKeepsEveryField() throws {
        let mbr = try sampleMBR()
        let sector = mbr.encode()
        #expect(sector.count == 512)
        let decoded = try MBR.decode(sector, diskSectors: 1 << 20)
        #expect(decoded == mbr)
        #expect(decoded.partitions.count == 4)
        #expect(decoded.partitions[1] == nil && decoded.partitions[3] == nil)
        #expect(decoded.encode() == sector)
    }

    @Test func fieldsSitAtTheirOffsets() throws {
        let sector = try sampleMBR().encode()
        #expect(sector.loadLE(UInt32.self, at: 0x1B8) == 0xDEAD_BEEF)
        #expect(sector[0x1BC] == 0 && sector[0x1BD] == 0)
        #expect(sector[0x1BE] == 0x80)
        #expect(sector[0x1BE + 4] == 0x83)
        #expect(sector.loadLE(UInt32.self, at: 0x1BE + 8) == 2048)
        #expect(sector.loadLE(UInt32.self, at: 0x1BE + 12) == 204_800)
        #expect(sector[0x1CE..<0x1DE].allSatisfy { $0 == 0 })
        #expect(sector[0x1DE] == 0x00)
        #expect(sector[0x1DE + 4] == 0x82)
        #expect(sector[510] == 0x55 && sector[511] == 0xAA)
        #expect(Array(sector[0..<440]) == (try sampleMBR()).bootCode)
    }

    @Test func chsForSmallAddresses() {
        // LBA = (c * 255 + h) * 63 + (s - 1)
        #expect(CHS(lba: 0) == CHS(cylinder: 0, head: 0, sector: 1))
        #expect(CHS(lba: 62) == CHS(cylinder: 0, head: 0, sector: 63))
        #expect(CHS(lba: 63) == CHS(cylinder: 0, head: 1, sector: 1))
        #expect(CHS(lba: 2048).encoded == [0x20, 0x21, 0x00])
        #expect(CHS(lba: 16065) == CHS(cylinder: 1, head: 0, sector: 1))
        // Cylinder 1023's top bits go to the sector byte.
        let last: UInt64 = 1023 * 16065 + 254 * 63 + 62
        #expect(CHS(lba: last) == CHS(cylinder: 1023, head: 254, sector: 63))
        #expect(CHS(lba: last).encoded == [0xFE, 0xFF, 0xFF])
        let c300Address: UInt64 = 300 * 16065 + 5 * 63 + 9
        let c300 = CHS(lba: c300Address)
        #expect(c300 == CHS(cylinder: 300, head: 5, sector: 10))
        let expected: [UInt8] = [5, 10 | 0x40, 44]  // 300 = 0x12C: bits 8-9 (01) into the sector byte
        #expect(c300.encoded == expected)
        #expect(CHS(encoded: c300.encoded) == c300)
    }

    @Test func chsBeyondRangeIsTheMarker() {
        let firstBeyond: UInt64 = 1024 * 16065
        #expect(CHS(lba: firstBeyond).encoded == [0xFE, 0xFF, 0xFF])
        #expect(CHS(lba: UInt64(UInt32.max)).encoded == [0xFE, 0xFF, 0xFF])
        #expect(CHS(lba: firstBeyond - 64) == CHS(cylinder: 1023, head: 253, sector: 63))
    }

    @Test func decodeRejectsBadSignature() throws {
        var sector = try sampleMBR().encode()
        sector[511] = 0xAB
        #expect(throws: DiskLayoutError.badBootSignature(source: "disk.raw", offset: 510, found: 0xAB55)) {
            try MBR.decode(sector, source: "disk.raw")
        }
        let message = String(describing: DiskLayoutError.badBootSignature(source: "disk.raw", offset: 510, found: 0xAB55))
        #expect(message.contains("disk.raw") && message.contains("510") && message.contains("55 AB"))
    }

    @Test func decodeRejectsOverlap() throws {
        let mbr = MBR(diskSignature: 1, partitions: [
            try MBRPartition(bootable: false, type: 0x83, firstLBA: 2048, sectorCount: 4096),
            try MBRPartition(bootable: false, type: 0x83, firstLBA: 8192, sectorCount: 100),
            try MBRPartition(bootable: false, type: 0x83, firstLBA: 6143, sectorCount: 10),
        ])
        #expect(throws: DiskLayoutError.overlappingPartitions(source: "MBR", firstOffset: 0x1BE, secondOffset: 0x1DE)) {
            try MBR.decode(mbr.encode())
        }
        // Touching but not overlapping is fine.
        let adjacent = MBR(diskSignature: 1, partitions: [
            try MBRPartition(bootable: false, type: 0x83, firstLBA: 2048, sectorCount: 4096),
            try MBRPartition(bootable: false, type: 0x83, firstLBA: 6144, sectorCount: 10),
        ])
        #expect(try MBR.decode(adjacent.encode()) == adjacent)
    }

    @Test func decodeRejectsBadStatusStartAndRange() throws {
        var sector = try sampleMBR().encode()
        sector[0x1DE] = 0x01
        #expect(throws: DiskLayoutError.badPartitionStatus(source: "MBR", offset: 0x1DE, found: 0x01)) {
            try MBR.decode(sector)
        }
        var inMBR = try sampleMBR().encode()
        inMBR.storeLE(UInt32(0), at: 0x1BE + 8)
        #expect(throws: DiskLayoutError.partitionStartsInMBR(source: "MBR", offset: 0x1BE, firstLBA: 0)) {
            try MBR.decode(inMBR)
        }
        let sample = try sampleMBR().encode()
        #expect(throws: DiskLayoutError.partitionBeyondDisk(source: "MBR", offset: 0x1BE, lastLBA: 206_847,
                                                            diskSectors: 100_000)) {
            try MBR.decode(sample, diskSectors: 100_000)
        }
        #expect(throws: DiskLayoutError.wrongSectorSize(source: "MBR", expected: 512, got: 511)) {
            try MBR.decode(Array(sample[0..<511]))
        }
    }

    @Test func refusesPartitionsBeyondTwoTiB() throws {
        let twoTiBSectors = UInt64(1) << 32
        #expect(throws: DiskLayoutError.beyondMBRLimit(firstLBA: 2048, sectorCount: twoTiBSectors)) {
            try MBRPartition(bootable: true, type: 0x83, firstLBA: 2048, sectorCount: twoTiBSectors)
        }
        #expect(throws: DiskLayoutError.beyondMBRLimit(firstLBA: twoTiBSectors, sectorCount: 1)) {
            try MBRPartition(bootable: true, type: 0x83, firstLBA: twoTiBSectors, sectorCount: 1)
        }
        #expect(throws: DiskLayoutError.emptyPartition(firstLBA: 2048)) {
            try MBRPartition(bootable: true, type: 0x83, firstLBA: 2048, sectorCount: 0)
        }
        let largest = try MBRPartition(bootable: true, type: 0x83, firstLBA: 2048, sectorCount: twoTiBSectors - 1)
        #expect(largest.sectorCount == UInt32.max)
        let message = String(describing: DiskLayoutError.beyondMBRLimit(firstLBA: 2048, sectorCount: twoTiBSectors))
        #expect(message.contains("2 TiB") && message.contains("2048"))
    }
}
