import ImageCore

/// The classic DOS partition table in sector 0 of a disk.
///
/// ```
///   0x000 ┌──────────────────────────────┐
///         │ boot code (440 bytes)        │
///   0x1B8 │ disk signature (u32 LE)      │
///   0x1BC │ 2 zero bytes                 │
///   0x1BE │ entry 1 (16 bytes)           │  status, CHS first, type, CHS last,
///   0x1CE │ entry 2                      │  first LBA (u32 LE), sector count (u32 LE)
///   0x1DE │ entry 3                      │
///   0x1EE │ entry 4                      │
///   0x1FE │ 55 AA                        │
///   0x200 └──────────────────────────────┘
/// ```
public struct MBR: Sendable, Equatable {
    public static let sectorSize = 512
    public static let bootCodeSize = 440
    public static let diskSignatureOffset = 0x1B8
    public static let partitionTableOffset = 0x1BE
    public static let entrySize = 16
    public static let bootSignatureOffset = 0x1FE
    public static let linuxPartitionType: UInt8 = 0x83

    /// Bytes 0..<440; zeros when the disk has no boot loader yet.
    public var bootCode: [UInt8]
    public var diskSignature: UInt32
    /// Exactly four slots; `nil` is an unused entry. Slot 0 is what Linux calls partition 1.
    public var partitions: [MBRPartition?]

    public init(bootCode: [UInt8] = [UInt8](repeating: 0, count: MBR.bootCodeSize), diskSignature: UInt32,
                partitions: [MBRPartition?]) {
        precondition(bootCode.count == MBR.bootCodeSize, "MBR boot code must be \(MBR.bootCodeSize) bytes")
        precondition(partitions.count <= 4, "an MBR holds at most four partitions")
        self.bootCode = bootCode
        self.diskSignature = diskSignature
        self.partitions = partitions + [MBRPartition?](repeating: nil, count: 4 - partitions.count)
    }

    public static func entryOffset(slot: Int) -> Int { partitionTableOffset + slot * entrySize }

    /// The 512-byte sector.
    public func encode() -> [UInt8] {
        var sector = [UInt8](repeating: 0, count: MBR.sectorSize)
        sector.replaceSubrange(0..<MBR.bootCodeSize, with: bootCode)
        sector.storeLE(diskSignature, at: MBR.diskSignatureOffset)
        for (slot, partition) in partitions.enumerated() {
            guard let partition else { continue }
            sector.replaceSubrange(MBR.entryOffset(slot: slot)..<MBR.entryOffset(slot: slot) + MBR.entrySize,
                                   with: partition.encodeEntry())
        }
        sector[MBR.bootSignatureOffset] = 0x55
        sector[MBR.bootSignatureOffset + 1] = 0xAA
        return sector
    }

    /// Reads and validates a sector: boot signature, status bytes, entries that start after the
    /// MBR, stay within `diskSectors` when it is known, and do not overlap. `source` names the
    /// disk in error messages. CHS fields are ignored: every tool since the 1990s uses the LBA ones.
    public static func decode(_ sector: [UInt8], diskSectors: UInt64? = nil, source: String = "MBR") throws -> MBR {
        guard sector.count == sectorSize else {
            throw DiskLayoutError.wrongSectorSize(source: source, expected: sectorSize, got: sector.count)
        }
        let signature = sector.loadLE(UInt16.self, at: bootSignatureOffset)
        guard signature == 0xAA55 else {
            throw DiskLayoutError.badBootSignature(source: source, offset: bootSignatureOffset, found: signature)
        }
        var partitions: [MBRPartition?] = []
        for slot in 0..<4 {
            let offset = entryOffset(slot: slot)
            let status = sector[offset]
            let type = sector[offset + 4]
            let firstLBA = sector.loadLE(UInt32.self, at: offset + 8)
            let count = sector.loadLE(UInt32.self, at: offset + 12)
            // Type 0 marks an unused entry whatever else it holds.
            guard type != 0, count != 0 else { partitions.append(nil); continue }
            guard status == 0x00 || status == 0x80 else {
                throw DiskLayoutError.badPartitionStatus(source: source, offset: offset, found: status)
            }
            guard firstLBA >= 1 else {
                throw DiskLayoutError.partitionStartsInMBR(source: source, offset: offset, firstLBA: UInt64(firstLBA))
            }
            let partition = MBRPartition(bootable: status == 0x80, type: type, firstLBA32: firstLBA, sectorCount32: count)
            if let diskSectors, partition.endLBA > diskSectors {
                throw DiskLayoutError.partitionBeyondDisk(source: source, offset: offset,
                                                          lastLBA: partition.endLBA - 1, diskSectors: diskSectors)
            }
            for (earlierSlot, earlier) in partitions.enumerated() {
                guard let earlier else { continue }
                if partition.firstLBA64 < earlier.endLBA && earlier.firstLBA64 < partition.endLBA {
                    throw DiskLayoutError.overlappingPartitions(source: source, firstOffset: entryOffset(slot: earlierSlot),
                                                                secondOffset: offset)
                }
            }
            partitions.append(partition)
        }
        return MBR(bootCode: Array(sector[0..<bootCodeSize]),
                   diskSignature: sector.loadLE(UInt32.self, at: diskSignatureOffset),
                   partitions: partitions)
    }
}

/// One primary partition. Start and length are 32-bit sector numbers, so nothing at or past
/// 2^32 sectors (2 TiB with 512-byte sectors) can be described.
public struct MBRPartition: Sendable, Equatable, Codable {
    public var bootable: Bool
    public var type: UInt8
    public let firstLBA: UInt32
    public let sectorCount: UInt32

    init(bootable: Bool, type: UInt8, firstLBA32 firstLBA: UInt32, sectorCount32 sectorCount: UInt32) {
        self.bootable = bootable
        self.type = type
        self.firstLBA = firstLBA
        self.sectorCount = sectorCount
    }

    /// Refuses partitions an MBR cannot hold: empty, or start or length beyond 32 bits.
    public init(bootable: Bool, type: UInt8, firstLBA: UInt64, sectorCount: UInt64) throws {
        guard sectorCount > 0 else { throw DiskLayoutError.emptyPartition(firstLBA: firstLBA) }
        guard firstLBA <= UInt64(UInt32.max), sectorCount <= UInt64(UInt32.max) else {
            throw DiskLayoutError.beyondMBRLimit(firstLBA: firstLBA, sectorCount: sectorCount)
        }
        self.init(bootable: bootable, type: type, firstLBA32: UInt32(firstLBA), sectorCount32: UInt32(sectorCount))
    }

    var firstLBA64: UInt64 { UInt64(firstLBA) }
    /// One past the last sector.
    public var endLBA: UInt64 { UInt64(firstLBA) + UInt64(sectorCount) }

    func encodeEntry() -> [UInt8] {
        var entry = [UInt8](repeating: 0, count: MBR.entrySize)
        entry[0] = bootable ? 0x80 : 0x00
        entry.replaceSubrange(1..<4, with: CHS(lba: firstLBA64).encoded)
        entry[4] = type
        entry.replaceSubrange(5..<8, with: CHS(lba: endLBA - 1).encoded)
        entry.storeLE(firstLBA, at: 8)
        entry.storeLE(sectorCount, at: 12)
        return entry
    }
}

/// A cylinder/head/sector address in the conventional translated geometry of 255 heads and 63
/// sectors per track. Addresses past cylinder 1023 are written as the 1023/254/63 marker (FE FF FF),
/// which tells readers to use the LBA fields.
public struct CHS: Sendable, Equatable {
    public static let heads: UInt64 = 255
    public static let sectorsPerTrack: UInt64 = 63
    public static let maximum = CHS(cylinder: 1023, head: 254, sector: 63)

    public let cylinder: UInt16
    public let head: UInt8
    /// 1-based, as the BIOS counts.
    public let sector: UInt8

    public init(cylinder: UInt16, head: UInt8, sector: UInt8) {
        self.cylinder = cylinder
        self.head = head
        self.sector = sector
    }

    public init(lba: UInt64) {
        let cylinder = lba / (CHS.heads * CHS.sectorsPerTrack)
        guard cylinder <= 1023 else { self = CHS.maximum; return }
        self.init(cylinder: UInt16(cylinder),
                  head: UInt8((lba / CHS.sectorsPerTrack) % CHS.heads),
                  sector: UInt8(lba % CHS.sectorsPerTrack + 1))
    }

    /// Head; sector in bits 0-5 with cylinder bits 8-9 in bits 6-7; cylinder bits 0-7.
    public var encoded: [UInt8] {
        [head, sector | UInt8((cylinder >> 2) & 0xC0), UInt8(cylinder & 0xFF)]
    }

    public init(encoded bytes: [UInt8]) {
        precondition(bytes.count == 3)
        self.init(cylinder: UInt16(bytes[2]) | (UInt16(bytes[1] & 0xC0) << 2), head: bytes[0], sector: bytes[1] & 0x3F)
    }
}
