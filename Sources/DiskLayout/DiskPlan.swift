import ImageCore

/// The layout of the disk `convert` builds:
///
/// ```
///   sector 0        MBR (boot.img code + partition table)
///   sectors 1-2047  gap holding GRUB's core.img
///   sector 2048     partition 1: type 0x83, ext3, a whole number of MiB (bootable unless /boot
///                   is another partition)
///   ...             partitions 2-4 (`--keep-layout`: /, /var, ...; a swap partition, type 0x82),
///                   each starting where the one before ends, on a MiB boundary
///   ...             up to the end of the disk
/// ```
/// Only primary partitions: a guest that needs more than four is refused rather than given an
/// extended partition, whose chain of EBRs old installers and GRUB legacy read differently.
public struct DiskPlan: Sendable, Equatable, Codable {
    public static let sectorSize: UInt64 = 512
    /// 1 MiB: the alignment every partitioning tool uses since 2010, and room for core.img.
    public static let partitionStartSector: UInt64 = 2048
    public static let alignment: UInt64 = ByteCount.MiB
    /// The largest disk whose single partition an MBR can describe: the partition's sector
    /// count must fit in 32 bits, and partitions are whole MiB, so 2 TiB - 1 MiB plus the gap.
    public static let maximumDiskSize: UInt64 = 2 * ByteCount.TiB
    /// Primary partitions only (see above).
    public static let maximumPartitions = 4
    public static let swapPartitionType: UInt8 = 0x82
    /// What `Partition.use` says of a swap partition.
    public static let swapUse = "swap"

    /// One partition: what it holds (`use`: a mount point, or "swap") and where.
    public struct Partition: Sendable, Equatable, Codable {
        /// 1-based, as Linux numbers them (`/dev/vda1`, `(hd0,msdos1)`).
        public var number: Int
        public var use: String
        public var type: UInt8
        public var bootable: Bool
        public var offset: UInt64
        public var size: UInt64

        public var startSector: UInt64 { offset / DiskPlan.sectorSize }
        public var sectorCount: UInt64 { size / DiskPlan.sectorSize }
        public var end: UInt64 { offset + size }
        public var isSwap: Bool { type == DiskPlan.swapPartitionType }
    }

    /// A filesystem to give a partition: its mount point and what its source holds.
    public struct FilesystemNeed: Sendable, Equatable {
        public var mountPoint: String
        public var usedBytes: UInt64
        public var sourceFilesystemSize: UInt64

        public init(mountPoint: String, usedBytes: UInt64, sourceFilesystemSize: UInt64) {
            self.mountPoint = mountPoint
            self.usedBytes = usedBytes
            self.sourceFilesystemSize = sourceFilesystemSize
        }
    }

    public let diskSize: UInt64
    public let diskSignature: UInt32
    /// In disk order, numbered 1...
    public let partitions: [Partition]

    /// The first partition: core.img fills the gap before it.
    public var partitionOffset: UInt64 { partitions[0].offset }
    public var partitionSize: UInt64 { partitions[0].size }
    public var partitionStartSector: UInt64 { partitionOffset / DiskPlan.sectorSize }
    public var partitionSectorCount: UInt64 { partitionSize / DiskPlan.sectorSize }
    public var diskSectors: UInt64 { diskSize / DiskPlan.sectorSize }

    /// The partition mounted on `mountPoint`, if it has one.
    public func partition(for mountPoint: String) -> Partition? { partitions.first { $0.use == mountPoint } }

    /// A plan whose partition fills the disk from sector 2048 to the end. `diskSize` is rounded
    /// up to a whole MiB; a nil `diskSignature` draws a random non-zero one.
    public init(diskSize: UInt64, diskSignature: UInt32? = nil) throws {
        let offset = DiskPlan.partitionStartSector * DiskPlan.sectorSize
        guard diskSize <= DiskPlan.maximumDiskSize else { throw DiskLayoutError.diskTooLargeForMBR(diskSize: diskSize) }
        let rounded = roundUp(diskSize, to: DiskPlan.alignment)
        guard rounded > offset else {
            throw DiskLayoutError.inconsistentPlan("disk size \(diskSize) bytes leaves no room for a partition after the first MiB")
        }
        try self.init(diskSize: rounded, diskSignature: diskSignature ?? Self.randomSignature(),
                      partitions: [Partition(number: 1, use: "/", type: MBR.linuxPartitionType, bootable: true,
                                             offset: offset, size: rounded - offset)])
    }

    /// Checks what every plan must be: one to four partitions numbered 1..., the first at 1 MiB,
    /// each a positive whole number of MiB at a MiB boundary, in order without overlap, inside a
    /// disk of at most 2 TiB, at most one bootable.
    init(diskSize: UInt64, diskSignature: UInt32, partitions: [Partition]) throws {
        guard !partitions.isEmpty, partitions.count <= DiskPlan.maximumPartitions else {
            throw DiskLayoutError.tooManyPartitions(count: partitions.count, uses: partitions.map(\.use))
        }
        guard partitions[0].offset == DiskPlan.partitionStartSector * DiskPlan.sectorSize else {
            throw DiskLayoutError.inconsistentPlan("partition offset \(partitions[0].offset): expected 1048576")
        }
        var previousEnd: UInt64 = 0
        for (index, partition) in partitions.enumerated() {
            guard partition.number == index + 1 else {
                throw DiskLayoutError.inconsistentPlan("partition \(index + 1) is numbered \(partition.number)")
            }
            guard partition.size > 0, partition.size % DiskPlan.alignment == 0, partition.offset % DiskPlan.alignment == 0 else {
                throw DiskLayoutError.inconsistentPlan(
                    "partition \(partition.number) at \(partition.offset), size \(partition.size): expected positive multiples of 1 MiB")
            }
            guard partition.offset >= previousEnd else {
                throw DiskLayoutError.inconsistentPlan(
                    "partition \(partition.number) starts at byte \(partition.offset), before the end of partition \(index) at \(previousEnd)")
            }
            let (end, overflow) = partition.offset.addingReportingOverflow(partition.size)
            guard !overflow, end <= diskSize, diskSize % DiskPlan.sectorSize == 0 else {
                throw DiskLayoutError.inconsistentPlan(
                    "partition ends at byte \(overflow ? UInt64.max : end): expected at or before the disk end \(diskSize)")
            }
            previousEnd = end
        }
        guard partitions.filter(\.bootable).count <= 1 else {
            throw DiskLayoutError.inconsistentPlan("more than one partition is bootable")
        }
        guard diskSize <= DiskPlan.maximumDiskSize else { throw DiskLayoutError.diskTooLargeForMBR(diskSize: diskSize) }
        self.diskSize = diskSize
        self.diskSignature = diskSignature
        self.partitions = partitions
    }

    private enum CodingKeys: String, CodingKey {
        case diskSize, diskSignature, partitions, partitionOffset, partitionSize
    }

    /// Decoding re-checks the invariants, so a hand-edited plan cannot describe an impossible disk.
    /// A plan without `partitions` (as written before several partitions existed) is one
    /// bootable partition at `partitionOffset`.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let diskSize = try container.decode(UInt64.self, forKey: .diskSize)
        let signature = try container.decode(UInt32.self, forKey: .diskSignature)
        if let partitions = try container.decodeIfPresent([Partition].self, forKey: .partitions) {
            try self.init(diskSize: diskSize, diskSignature: signature, partitions: partitions)
        } else {
            try self.init(diskSize: diskSize, diskSignature: signature, partitions: [
                Partition(number: 1, use: "/", type: MBR.linuxPartitionType, bootable: true,
                          offset: try container.decode(UInt64.self, forKey: .partitionOffset),
                          size: try container.decode(UInt64.self, forKey: .partitionSize))])
        }
    }

    /// `partitionOffset` and `partitionSize` (the first partition) are written too, for readers
    /// of the one-partition reports.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(diskSize, forKey: .diskSize)
        try container.encode(diskSignature, forKey: .diskSignature)
        try container.encode(partitionOffset, forKey: .partitionOffset)
        try container.encode(partitionSize, forKey: .partitionSize)
        try container.encode(partitions, forKey: .partitions)
    }

    static func randomSignature() -> UInt32 { max(1, Reproducibility.uint32(for: "mbr disk signature")) }

    /// The plan for a conversion into one root filesystem: `make(requestedSize:filesystems:...)`
    /// with the root alone.
    public static func make(requestedSize: UInt64?, usedBytes: UInt64, sourceFilesystemSize: UInt64,
                            diskSignature: UInt32? = nil) throws -> DiskPlan {
        try make(requestedSize: requestedSize,
                 filesystems: [FilesystemNeed(mountPoint: "/", usedBytes: usedBytes, sourceFilesystemSize: sourceFilesystemSize)],
                 diskSignature: diskSignature)
    }

    /// The plan for a conversion: one partition per filesystem, in the order given (the root
    /// must be among them), then a swap partition of `swapBytes` (rounded up to a whole MiB) if
    /// asked. The partition mounted on /boot is bootable, else the root's.
    ///
    /// - Without `requestedSize`, each filesystem's partition gets `defaultFilesystemBytes`:
    ///   `max(roundUp(used + used/4 + 256 MiB, 64 MiB), roundUp(sourceFilesystemSize, 1 MiB))`,
    ///   a quarter more than the data for growth, 256 MiB for inode tables, journal and breathing
    ///   room, and never less than the source filesystem, so the guest keeps the free space it had
    ///   (the outputs are sparse, so unused space costs nothing). The disk is 1 MiB larger for the
    ///   MBR gap.
    /// - `requestedSize` (from `--size`) is the whole disk, rounded up to a whole MiB. After the
    ///   gap and the swap, every filesystem but the root gets its default size and the root the
    ///   rest; if that leaves the root less than `minimumFilesystemBytes`, the others are cut to
    ///   their minimum (smaller than their source, as the size forces) and the root gets the rest;
    ///   if even that is too little, the plan is refused.
    public static func make(requestedSize: UInt64?, filesystems: [FilesystemNeed], swapBytes: UInt64? = nil,
                            diskSignature: UInt32? = nil) throws -> DiskPlan {
        let gap = partitionStartSector * sectorSize
        let swap = swapBytes.map { roundUp($0, to: alignment) } ?? 0
        let count = filesystems.count + (swapBytes == nil ? 0 : 1)
        guard count <= maximumPartitions else {
            throw DiskLayoutError.tooManyPartitions(count: count, uses: filesystems.map(\.mountPoint) + (swapBytes == nil ? [] : [swapUse]))
        }
        guard let rootIndex = filesystems.firstIndex(where: { $0.mountPoint == "/" }) else {
            throw DiskLayoutError.inconsistentPlan("no filesystem is mounted on /")
        }
        let minimums = filesystems.map { minimumFilesystemBytes(usedBytes: $0.usedBytes) }
        var sizes = filesystems.map(defaultFilesystemBytes)
        let disk: UInt64
        if let requestedSize {
            disk = roundUp(requestedSize, to: alignment)
            guard disk <= maximumDiskSize else { throw DiskLayoutError.diskTooLargeForMBR(diskSize: disk) }
            let data = filesystems.reduce(0) { saturatingAdd($0, $1.usedBytes) }
            let needed = saturatingAdd(saturatingAdd(minimums.reduce(0, saturatingAdd), swap), gap)
            guard disk >= needed else {
                if count == 1 { throw DiskLayoutError.diskTooSmall(diskSize: disk, filesystemNeeds: minimums[0], data: data) }
                throw DiskLayoutError.diskTooSmallForPartitions(diskSize: disk, needs: needed, partitions: count, data: data)
            }
            let available = disk - gap - swap
            let others = sizes.indices.filter { $0 != rootIndex }.reduce(0) { saturatingAdd($0, sizes[$1]) }
            if others > available || available - others < minimums[rootIndex] {
                for index in sizes.indices where index != rootIndex { sizes[index] = minimums[index] }
            }
            sizes[rootIndex] = 0
            sizes[rootIndex] = available - sizes.reduce(0, +)
        } else {
            disk = saturatingAdd(saturatingAdd(sizes.reduce(0, saturatingAdd), swap), gap)
            guard disk <= maximumDiskSize else { throw DiskLayoutError.diskTooLargeForMBR(diskSize: disk) }
        }
        let bootable = filesystems.firstIndex { $0.mountPoint == "/boot" } ?? rootIndex
        var partitions: [Partition] = []
        var offset = gap
        for (index, filesystem) in filesystems.enumerated() {
            partitions.append(Partition(number: index + 1, use: filesystem.mountPoint, type: MBR.linuxPartitionType,
                                        bootable: index == bootable, offset: offset, size: sizes[index]))
            offset += sizes[index]
        }
        if swapBytes != nil {
            partitions.append(Partition(number: partitions.count + 1, use: swapUse, type: swapPartitionType,
                                        bootable: false, offset: offset, size: swap))
        }
        return try DiskPlan(diskSize: disk, diskSignature: diskSignature ?? randomSignature(), partitions: partitions)
    }

    /// The size a filesystem's partition gets when no `--size` is given (see `make`): at least
    /// 256 MiB and at least the minimum estimate.
    public static func defaultFilesystemBytes(_ need: FilesystemNeed) -> UInt64 {
        let used = need.usedBytes
        let withHeadroom = roundUp(saturatingAdd(saturatingAdd(used, used / 4), 256 * ByteCount.MiB), to: 64 * ByteCount.MiB)
        return max(withHeadroom, roundUp(need.sourceFilesystemSize, to: alignment), minimumFilesystemBytes(usedBytes: used),
                   256 * ByteCount.MiB)
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

    /// The partition table, no boot code.
    public var mbrTable: MBR {
        // The initialisers guarantee every start and sector count fits in 32 bits.
        MBR(diskSignature: diskSignature, partitions: partitions.map {
            try! MBRPartition(bootable: $0.bootable, type: $0.type, firstLBA: $0.startSector, sectorCount: $0.sectorCount)
        })
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
