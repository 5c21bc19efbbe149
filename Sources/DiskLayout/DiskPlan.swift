import ImageCore

/// The layout of the disk `convert` builds:
///
/// ```
///   sector 0        MBR (boot.img code + partition table)
///   sectors 1-2047  gap holding GRUB's core.img
///   sector 2048     partition 1: bootable, type 0x83, ext3, a whole number of MiB
///   ...             up to the end of the disk
/// ```
public struct DiskPlan: Sendable, Equatable, Codable {
    public static let sectorSize: UInt64 = 512
    /// 1 MiB: the alignment every partitioning tool uses since 2010, and room for core.img.
    public static let partitionStartSector: UInt64 = 2048
    public static let alignment: UInt64 = ByteCount.MiB
    /// The largest disk whose single partition an MBR can describe: the partition's sector
    /// count must fit in 32 bits, and partitions are whole MiB, so 2 TiB - 1 MiB plus the gap.
    public static let maximumDiskSize: UInt64 = 2 * ByteCount.TiB

    public let diskSize: UInt64
    /// Bytes from the start of the disk to the partition (1 MiB).
    public let partitionOffset: UInt64
    public let partitionSize: UInt64
    public let diskSignature: UInt32

    public var partitionStartSector: UInt64 { partitionOffset / DiskPlan.sectorSize }
    public var partitionSectorCount: UInt64 { partitionSize / DiskPlan.sectorSize }
    public var diskSectors: UInt64 { diskSize / DiskPlan.sectorSize }

    /// A plan whose partition fills the disk from sector 2048 to the end. `diskSize` is rounded
    /// up to a whole MiB; a nil `diskSignature` draws a random non-zero one.
    public init(diskSize: UInt64, diskSignature: UInt32? = nil) throws {
        let offset = DiskPlan.partitionStartSector * DiskPlan.sectorSize
        guard diskSize <= DiskPlan.maximumDiskSize else { throw DiskLayoutError.diskTooLargeForMBR(diskSize: diskSize) }
        let rounded = roundUp(diskSize, to: DiskPlan.alignment)
        guard rounded > offset else {
            throw DiskLayoutError.inconsistentPlan("disk size \(diskSize) bytes leaves no room for a partition after the first MiB")
        }
        try self.init(diskSize: rounded, partitionOffset: offset, partitionSize: rounded - offset,
                      diskSignature: diskSignature ?? UInt32.random(in: 1...UInt32.max))
    }

    init(diskSize: UInt64, partitionOffset: UInt64, partitionSize: UInt64, diskSignature: UInt32) throws {
        guard partitionOffset == DiskPlan.partitionStartSector * DiskPlan.sectorSize else {
            throw DiskLayoutError.inconsistentPlan("partition offset \(partitionOffset): expected 1048576")
        }
        guard partitionSize > 0, partitionSize % DiskPlan.alignment == 0 else {
            throw DiskLayoutError.inconsistentPlan("partition size \(partitionSize): expected a positive multiple of 1 MiB")
        }
        guard partitionOffset + partitionSize <= diskSize, diskSize % DiskPlan.sectorSize == 0 else {
            throw DiskLayoutError.inconsistentPlan(
                "partition ends at byte \(partitionOffset + partitionSize): expected at or before the disk end \(diskSize)")
        }
        guard diskSize <= DiskPlan.maximumDiskSize else { throw DiskLayoutError.diskTooLargeForMBR(diskSize: diskSize) }
        self.diskSize = diskSize
        self.partitionOffset = partitionOffset
        self.partitionSize = partitionSize
        self.diskSignature = diskSignature
    }

    /// Decoding re-checks the invariants, so a hand-edited plan cannot describe an impossible disk.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        try self.init(diskSize: try container.decode(UInt64.self, forKey: .diskSize),
                      partitionOffset: try container.decode(UInt64.self, forKey: .partitionOffset),
                      partitionSize: try container.decode(UInt64.self, forKey: .partitionSize),
                      diskSignature: try container.decode(UInt32.self, forKey: .diskSignature))
    }

    /// The plan for a conversion.
    ///
    /// - `requestedSize` (from `--size`): rounded up to a whole MiB, and refused when its partition
    ///   is smaller than `minimumFilesystemBytes(usedBytes:)`.
    /// - Without it, the partition gets
    ///   `max(roundUp(used + used/4 + 256 MiB, 64 MiB), roundUp(sourceFilesystemSize, 1 MiB))`:
    ///   a quarter more than the data for growth, 256 MiB for inode tables, journal and breathing
    ///   room, and never less than the source filesystem, so the guest keeps the free space it had
    ///   (the outputs are sparse, so unused space costs nothing). The result is at least 256 MiB and
    ///   at least the minimum estimate; the disk is 1 MiB larger for the MBR gap.
    public static func make(requestedSize: UInt64?, usedBytes: UInt64, sourceFilesystemSize: UInt64,
                            diskSignature: UInt32? = nil) throws -> DiskPlan {
        let gap = partitionStartSector * sectorSize
        let minimum = minimumFilesystemBytes(usedBytes: usedBytes)
        if let requestedSize {
            let disk = roundUp(requestedSize, to: alignment)
            guard disk <= maximumDiskSize else { throw DiskLayoutError.diskTooLargeForMBR(diskSize: disk) }
            guard disk >= gap + minimum else {
                throw DiskLayoutError.diskTooSmall(diskSize: disk, filesystemNeeds: minimum, data: usedBytes)
            }
            return try DiskPlan(diskSize: disk, diskSignature: diskSignature)
        }
        let withHeadroom = roundUp(saturatingAdd(saturatingAdd(usedBytes, usedBytes / 4), 256 * ByteCount.MiB),
                                   to: 64 * ByteCount.MiB)
        let partition = max(withHeadroom, roundUp(sourceFilesystemSize, to: alignment), minimum, 256 * ByteCount.MiB)
        let disk = saturatingAdd(partition, gap)
        guard disk <= maximumDiskSize else { throw DiskLayoutError.diskTooLargeForMBR(diskSize: disk) }
        return try DiskPlan(diskSize: disk, diskSignature: diskSignature)
    }

    /// A conservative size, in whole MiB, for an ext3 filesystem (4 KiB blocks, 128-byte inodes,
    /// one inode per 16 KiB) that holds `usedBytes` of file data:
    ///
    ///     size = (data + 1% + journal + 16 MiB) / (1 - 1/128 - 5%)
    ///
    /// 1% covers ext3's indirect blocks (one 4 KiB block maps 4 MiB) and directories; 1/128 of the
    /// filesystem is inode tables (128 bytes per 16 KiB); 5% is the root reserve; 16 MiB covers
    /// bitmaps, group descriptors, reserved GDT blocks and slack. The journal follows mke2fs's
    /// default for the filesystem's size, so the estimate is refined until it is stable.
    public static func minimumFilesystemBytes(usedBytes: UInt64) -> UInt64 {
        let fixed = saturatingAdd(saturatingAdd(usedBytes, usedBytes / 100), 16 * ByteCount.MiB)
        var estimate = fixed
        for _ in 0..<4 {
            let needed = saturatingAdd(fixed, defaultJournalBytes(filesystemBytes: estimate))
            // 1 - 1/128 - 1/20 = 2412/2560
            let (scaled, overflow) = needed.multipliedReportingOverflow(by: 2560)
            let quotient = overflow ? UInt64.max : scaled / 2412 + (scaled % 2412 == 0 ? 0 : 1)
            let next = roundUp(quotient, to: alignment)
            if next == estimate { break }
            estimate = next
        }
        return estimate
    }

    /// mke2fs's default journal length for a filesystem of 4 KiB blocks of this size.
    static func defaultJournalBytes(filesystemBytes: UInt64) -> UInt64 {
        let blocks = filesystemBytes / 4096
        let journalBlocks: UInt64
        switch blocks {
        case ..<32768: journalBlocks = 1024
        case ..<(256 * 1024): journalBlocks = 4096
        case ..<(512 * 1024): journalBlocks = 8192
        case ..<(4096 * 1024): journalBlocks = 16384
        case ..<(8192 * 1024): journalBlocks = 32768
        case ..<(16384 * 1024): journalBlocks = 65536
        case ..<(32768 * 1024): journalBlocks = 131072
        default: journalBlocks = 262144
        }
        return journalBlocks * 4096
    }

    /// The partition table: one bootable Linux partition, no boot code.
    public var mbrTable: MBR {
        // The initialisers guarantee the sector count fits in 32 bits.
        let partition = try! MBRPartition(bootable: true, type: MBR.linuxPartitionType,
                                          firstLBA: partitionStartSector, sectorCount: partitionSectorCount)
        return MBR(diskSignature: diskSignature, partitions: [partition])
    }

    /// The 512-byte sector 0, with no boot code yet.
    public func mbr() -> [UInt8] { mbrTable.encode() }
}

func roundUp(_ value: UInt64, to multiple: UInt64) -> UInt64 {
    let remainder = value % multiple
    return remainder == 0 ? value : saturatingAdd(value, multiple - remainder) / multiple * multiple
}

func saturatingAdd(_ a: UInt64, _ b: UInt64) -> UInt64 {
    let (sum, overflow) = a.addingReportingOverflow(b)
    return overflow ? UInt64.max : sum
}
