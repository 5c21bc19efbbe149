import ImageCore

/// VMware's sparse extent ("hosted sparse", VMDK version 1-3), as described in VMware's
/// "Virtual Disk Format 5.0" technical note. All integers are little-endian; offsets and sizes
/// in the header are in 512-byte sectors. Both subformats Rehost writes are one file holding the
/// header, an embedded text descriptor and the grains:
///
/// monolithicSparse (version 1, seekable, tables preallocated, like VMware Workstation writes it):
/// ```
/// sector 0        SparseExtentHeader (512 bytes, magic "KDMV")
/// 1 ..< 21        descriptor text, zero padded (descriptorOffset 1, descriptorSize 20)
/// rgdOffset       redundant grain directory: one u32 per grain table (sector of its copy)
///                 redundant grain tables: 512 u32 entries (4 sectors) each
/// gdOffset        grain directory, then the grain tables it points to
/// overHead        (rounded up to a whole grain) first grain; grains are 64 KiB of raw data,
///                 appended in ascending LBA order; a grain table entry is the grain's sector,
///                 0 = unallocated (reads as zeros)
/// ```
///
/// streamOptimized (version 3, written strictly front to back, as ESXi, AWS and OVF tools want):
/// ```
/// sector 0        header: flags newline-detection | compressed | markers, compressAlgorithm 1
///                 (deflate), gdOffset = GD_AT_END (the real one is in the footer)
/// 1 ..< 21        descriptor
/// 21 ..< 128      zeros: grains start on a grain boundary (overHead 128), as VMware's tools lay it out
/// grains          per allocated grain in ascending LBA order: u64 LBA, u32 compressed size, the
///                 zlib stream of the whole 64 KiB grain; padded with zeros to a sector
/// GT marker       (u64 numSectors = 4, u32 size 0, u32 type 1, zero padded to 512) and the grain
///                 table (2048 bytes), right after the last grain it covers, before the grains of
///                 the next table (as VMware's own StreamVmdkWriter does); a grain table entry is
///                 the sector of the grain's marker; tables without data are not written
/// ... grains and tables alternate up to the last table with data
/// GD marker       (numSectors, 0, type 2), then the grain directory (u32 per table: the sector of
///                 the table, 0 = every grain of that table is unallocated), padded to a sector
/// footer marker   (1, 0, type 3), then a copy of the header with the real gdOffset
/// EOS marker      512 zero bytes (type 0): the file ends here, 1536 bytes after the footer marker
/// ```
///
/// Limits: capacity is a u64 of sectors, but a grain table entry is a u32 sector number, so a
/// sparse file can address at most 2^32 sectors = 2 TiB of grains plus metadata; Rehost refuses
/// virtual disks above 2 TiB - 64 MiB (room for the tables). The writers keep one grain table
/// (2 KiB) and, for streamOptimized, the grain directory (4 bytes per 32 MiB of disk: 256 KiB at
/// 2 TiB) in memory, and gather 16 MiB of grains at a time.
public enum VMDK {
    /// "KDMV" read as a little-endian u32.
    public static let magic: UInt32 = 0x564D_444B
    public static let sectorSize = 512
    /// 128 sectors = 64 KiB: the grain size every VMware product uses by default.
    public static let grainSectors: UInt64 = 128
    public static let grainBytes = Int(grainSectors) * sectorSize
    /// 512 entries of 4 bytes: one grain table is 4 sectors and covers 32 MiB.
    public static let entriesPerGrainTable = 512
    public static let grainTableBytes = entriesPerGrainTable * 4
    public static let grainTableSectors = UInt64(grainTableBytes / sectorSize)
    public static let descriptorOffset: UInt64 = 1
    public static let descriptorSectors: UInt64 = 20
    /// The header's gdOffset when the grain directory's location is only in the footer.
    public static let gdAtEnd: UInt64 = 0xFFFF_FFFF_FFFF_FFFF
    /// Grain table entries are u32 sectors; keep 64 MiB below 2 TiB for the metadata.
    public static let maximumVirtualSize: UInt64 = (1 << 41) - (64 << 20)

    public struct Flags: OptionSet, Sendable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        /// The four newline characters in the header are valid (detects FTP text-mode damage).
        public static let validNewlineDetection = Flags(rawValue: 1 << 0)
        /// A redundant grain directory and redundant grain tables exist (rgdOffset).
        public static let redundantGrainTable = Flags(rawValue: 1 << 1)
        /// Grain table entry 1 means "a grain of zeros" (qemu's zeroed_grain, VMware's version 2).
        public static let zeroGrains = Flags(rawValue: 1 << 2)
        public static let compressedGrains = Flags(rawValue: 1 << 16)
        public static let markers = Flags(rawValue: 1 << 17)
    }

    /// The type field of a metadata marker (a marker whose size field is 0).
    public enum MarkerType: UInt32, Sendable {
        case endOfStream = 0
        case grainTable = 1
        case grainDirectory = 2
        case footer = 3
    }
}

/// Problems found while decoding a VMDK (the writer's own output, in tests and in the OVA).
public enum VMDKError: RehostError, Equatable {
    case truncated(path: String, offset: UInt64, wanted: Int, available: Int)
    case badMagic(path: String, offset: UInt64, found: UInt32)
    case badField(path: String, offset: UInt64, field: String, found: UInt64, expected: String)
    case badMarker(path: String, offset: UInt64, reason: String)
    case badDescriptor(path: String, line: Int, reason: String)

    public var description: String {
        switch self {
        case let .truncated(path, offset, wanted, available):
            return "\(path): truncated at byte \(offset): wanted \(wanted) bytes, \(available) available"
        case let .badMagic(path, offset, found):
            return "\(path): no sparse extent header at byte \(offset): magic 0x\(String(found, radix: 16)), expected 0x564d444b (\"KDMV\")"
        case let .badField(path, offset, field, found, expected):
            return "\(path): header at byte \(offset): \(field) is \(found), expected \(expected)"
        case let .badMarker(path, offset, reason):
            return "\(path): marker at byte \(offset): \(reason)"
        case let .badDescriptor(path, line, reason):
            return "\(path): descriptor line \(line): \(reason)"
        }
    }
}
