import CBlkid
import ImageCore
#if canImport(Glibc)
import Glibc
#endif

/// What libblkid found in a filesystem superblock.
public struct FilesystemProbe: Sendable, Equatable {
    /// libblkid's TYPE: "ext2", "ext3", "ext4", "vfat", "swap", ...
    public var type: String
    public var label: String?
    public var uuid: String?
    public var version: String?
    /// "filesystem", "raid", "crypto", "other".
    public var usage: String?

    public init(type: String, label: String?, uuid: String?, version: String?, usage: String?) {
        self.type = type
        self.label = label
        self.uuid = uuid
        self.version = version
        self.usage = usage
    }

    public var isExt: Bool { ["ext2", "ext3", "ext4"].contains(type) }
}

/// One entry of a partition table, with offsets converted to bytes.
public struct PartitionProbe: Sendable, Equatable {
    public var number: Int
    public var startBytes: UInt64
    public var sizeBytes: UInt64
    /// The MBR type byte (0x83 Linux); 0 on GPT.
    public var typeCode: Int
    /// The GPT type GUID, lowercase; nil on MBR.
    public var typeGUID: String?
    /// MBR active flag (0x80), or GPT "legacy BIOS bootable" attribute; nil for other tables.
    public var bootable: Bool?
    public var isExtended: Bool
    public var isLogical: Bool

    public var endBytes: UInt64 { startBytes + sizeBytes }
}

public struct PartitionTableProbe: Sendable, Equatable {
    /// "dos" or "gpt" (libblkid's names).
    public var type: String
    public var partitions: [PartitionProbe]
}

/// Low-level libblkid probes on a file opened read-only: nothing is cached in /run/blkid and the
/// file is never written.
public enum BlkidProbe {
    /// The largest partition start or size taken from a table, in sectors: 2^54 - 1, so byte
    /// counts stay below 2^63.
    static let maximumSectors: Int64 = (1 << 54) - 1
    /// Probes the superblock of the filesystem that starts `offset` bytes into `path` and spans
    /// `size` bytes (to the end of the file when nil). Returns nil when nothing is recognised.
    public static func probeFilesystem(path: String, offset: UInt64 = 0, size: UInt64? = nil) throws -> FilesystemProbe? {
        try withFile(path) { try probeFilesystem(descriptor: $0, name: path, offset: offset, size: size) }
    }

    /// As `probeFilesystem(path:offset:size:)`, on a descriptor open for reading (a memfd holding
    /// the bytes a disk image's format gives); `name` is used in messages.
    public static func probeFilesystem(descriptor: Int32, name path: String, offset: UInt64 = 0,
                                       size: UInt64? = nil) throws -> FilesystemProbe? {
        try withProbe(descriptor: descriptor, path: path, offset: offset, size: size) { probe in
            blkid_probe_enable_superblocks(probe, 1)
            blkid_probe_set_superblocks_flags(probe, BLKID_SUBLKS_LABEL | BLKID_SUBLKS_UUID | BLKID_SUBLKS_TYPE
                                              | BLKID_SUBLKS_VERSION | BLKID_SUBLKS_USAGE)
            blkid_probe_enable_partitions(probe, 0)
            switch blkid_do_safeprobe(probe) {
            case 0: break
            case 1: return nil
            case -2: throw BlkidError.ambivalent(path: path, offset: offset)
            default: throw BlkidError.probeFailed(path: path, offset: offset)
            }
            guard let type = value(probe, "TYPE") else { return nil }
            return FilesystemProbe(type: type, label: value(probe, "LABEL"), uuid: value(probe, "UUID"),
                                   version: value(probe, "VERSION"), usage: value(probe, "USAGE"))
        }
    }

    /// Reads the partition table at the start of `path`. Returns nil when there is none.
    public static func probePartitions(path: String) throws -> PartitionTableProbe? {
        try withFile(path) { try probePartitions(descriptor: $0, name: path) }
    }

    /// As `probePartitions(path:)`, on a descriptor open for reading.
    public static func probePartitions(descriptor: Int32, name path: String) throws -> PartitionTableProbe? {
        try withProbe(descriptor: descriptor, path: path, offset: 0, size: nil) { probe in
            blkid_probe_enable_superblocks(probe, 0)
            blkid_probe_enable_partitions(probe, 1)
            blkid_probe_set_partitions_flags(probe, BLKID_PARTS_ENTRY_DETAILS)
            guard let list = blkid_probe_get_partitions(probe) else { return nil }
            guard let table = blkid_partlist_get_table(list), let typeName = blkid_parttable_get_type(table) else {
                return nil
            }
            let tableType = String(cString: typeName)
            var partitions: [PartitionProbe] = []
            let count = blkid_partlist_numof_partitions(list)
            for index in 0..<max(count, 0) {
                guard let entry = blkid_partlist_get_partition(list, index) else { continue }
                // libblkid counts in 512-byte sectors for regular files. A GPT entry may say up to
                // 2^64 - 1: clamped below 2^54 sectors, so bytes and start + size never overflow
                // (such a partition is past the end of any file and refused as that).
                let start = UInt64(min(max(blkid_partition_get_start(entry), 0), Self.maximumSectors)) * 512
                let size = UInt64(min(max(blkid_partition_get_size(entry), 0), Self.maximumSectors)) * 512
                let flags = blkid_partition_get_flags(entry)
                let guid = tableType == "gpt" ? blkid_partition_get_type_string(entry).map { String(cString: $0).lowercased() } : nil
                let bootable: Bool?
                switch tableType {
                case "dos": bootable = flags & 0x80 != 0
                case "gpt": bootable = flags & (1 << 2) != 0
                default: bootable = nil
                }
                partitions.append(PartitionProbe(
                    number: Int(blkid_partition_get_partno(entry)), startBytes: start, sizeBytes: size,
                    typeCode: Int(blkid_partition_get_type(entry)), typeGUID: guid, bootable: bootable,
                    isExtended: blkid_partition_is_extended(entry) != 0,
                    isLogical: blkid_partition_is_logical(entry) != 0))
            }
            return PartitionTableProbe(type: tableType, partitions: partitions)
        }
    }

    private static func withFile<T>(_ path: String, _ body: (Int32) throws -> T) throws -> T {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw BlkidError.open(path: path, errno: errno) }
        defer { close(fd) }
        return try body(fd)
    }

    private static func withProbe<T>(descriptor fd: Int32, path: String, offset: UInt64, size: UInt64?,
                                     _ body: (blkid_probe) throws -> T) throws -> T {
        guard let probe = blkid_new_probe() else { throw BlkidError.probeCreation(path: path) }
        defer { blkid_free_probe(probe) }
        // size 0 means "to the end of the file" for libblkid.
        guard blkid_probe_set_device(probe, fd, blkid_loff_t(offset), blkid_loff_t(size ?? 0)) == 0 else {
            throw BlkidError.setDevice(path: path, offset: offset)
        }
        return try body(probe)
    }

    private static func value(_ probe: blkid_probe, _ name: String) -> String? {
        var data: UnsafePointer<CChar>? = nil
        var length = 0
        guard blkid_probe_lookup_value(probe, name, &data, &length) == 0, let data else { return nil }
        // `length` counts the terminating NUL.
        let text = String(cString: data)
        return text.isEmpty ? nil : text
    }
}
