import ImageCore

/// The VHDX format ([MS-VHDX] v1.0), as Rehost writes it and the constants its reader checks.
/// Every integer is little-endian; GUIDs are stored in Microsoft order (the first three fields
/// little-endian, see `ImageUUID.swappingGUIDFields`).
///
/// ```
///  0        file type identifier: "vhdxfile", creator (UTF-16LE, 512 bytes)       64 KiB
///  64 KiB   header 1 (4 KiB used): "head", CRC-32C, sequence number, GUIDs, log   64 KiB
///  128 KiB  header 2 (the same, another sequence number; the higher valid one wins) 64 KiB
///  192 KiB  region table 1: "regi", CRC-32C over 64 KiB, entries (GUID, offset, length, required)
///  256 KiB  region table 2 (a copy)                                                ... 1 MiB
///  1 MiB    log, 1 MiB of zeros: no entries, LogGuid zero (nothing to replay). qemu refuses a
///           log offset below 1 MiB and needs the room to log its own BAT updates later.
///  2 MiB    metadata region, 1 MiB: table ("metadata", entries) at 0, items from 64 KiB:
///           file parameters (block size, flags), virtual disk size, page 83 GUID,
///           logical sector size (512), physical sector size (4096, or 512 if the
///           disk does not end on a 4 KiB boundary)
///  3 MiB    BAT, rounded up to 1 MiB: a u64 per entry, state in bits 0-2, file offset in MiB
///           in bits 20-63; after every `chunkRatio` payload entries, one sector bitmap entry
///  then     payload blocks, 1 MiB aligned
///
/// chunk ratio = 2^23 x logical sector size / block size (128 for 32 MiB blocks, 4096 for 1 MiB)
/// payload block i is BAT entry i + i / chunkRatio
/// entries = blocks + (blocks - 1) / chunkRatio  (no parent: no bitmap after the last chunk)
/// ```
public enum VHDX {
    public static let signature = Array("vhdxfile".utf8)
    public static let headerOffsets: [UInt64] = [64 << 10, 128 << 10]
    public static let regionTableOffsets: [UInt64] = [192 << 10, 256 << 10]
    public static let headerSize = 4096
    public static let regionTableSize = 64 << 10
    public static let metadataTableSize = 64 << 10
    /// "head", "regi" read as little-endian u32.
    static let headerSignature: UInt32 = 0x6461_6568
    static let regionSignature: UInt32 = 0x6967_6572
    static let metadataSignature = Array("metadata".utf8)
    static let MiB: UInt64 = 1 << 20

    public static let logOffset: UInt64 = 1 << 20
    public static let logLength: UInt32 = 1 << 20
    public static let metadataOffset: UInt64 = 2 << 20
    public static let metadataLength: UInt32 = 1 << 20
    public static let batOffset: UInt64 = 3 << 20

    /// The spec's limits: block sizes 1 MiB to 256 MiB, powers of two; disks up to 64 TiB.
    public static let minimumBlockSize: UInt32 = 1 << 20
    public static let maximumBlockSize: UInt32 = 256 << 20
    public static let maximumDiskSize: UInt64 = 64 << 40
    public static let logicalSectorSize: UInt32 = 512
    public static let physicalSectorSize: UInt32 = 4096

    // Region and metadata item GUIDs, in RFC (text) order; `guid(_:)` gives the file's bytes.
    static let batRegion = "2DC27766-F623-4200-9D64-115E9BFD4A08"
    static let metadataRegion = "8B7CA206-4790-4B9A-B8FE-575F050F886E"
    static let fileParameters = "CAA16737-FA36-4D43-B3B6-33F0AA44E76B"
    static let virtualDiskSize = "2FA54224-CD1B-4876-B211-5DBED83BF4B8"
    static let page83Data = "BECA12AB-B2E6-4523-93EF-C309E000C746"
    static let logicalSectorSizeItem = "8141BF1D-A96F-4709-BA47-F233A8FAAB5F"
    static let physicalSectorSizeItem = "CDA348C7-445D-4471-9CC9-E9885251C556"
    static let parentLocator = "A8D35F2D-B30B-454D-ABF7-D3D84834AB0C"

    /// A GUID's 16 bytes as the file holds them.
    static func guid(_ text: String) -> [UInt8] {
        ImageUUID.swappingGUIDFields(UUIDBytes.parse(text)!)
    }

    /// BAT entry states (bits 0-2).
    public enum BlockState: UInt64, Sendable {
        case notPresent = 0, undefined = 1, zero = 2, unmapped = 3, fullyPresent = 6, partiallyPresent = 7
    }

    /// Payload blocks per sector bitmap block.
    public static func chunkRatio(blockSize: UInt32, logicalSectorSize: UInt32) -> UInt64 {
        (UInt64(1) << 23) * UInt64(logicalSectorSize) / UInt64(blockSize)
    }

    /// BAT entries of a disk without a parent.
    public static func batEntries(blocks: UInt64, chunkRatio: UInt64) -> UInt64 {
        blocks == 0 ? 0 : blocks + (blocks - 1) / chunkRatio
    }
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as VHDX checksums its headers, region
/// tables and log entries.
public enum CRC32C {
    private static let table: [UInt32] = (0..<256).map { index in
        var crc = UInt32(index)
        for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
        return crc
    }

    public static func checksum(_ bytes: some Collection<UInt8>) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes { crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
        return ~crc
    }

    /// The checksum of `bytes` with its 4-byte checksum field at `field` taken as zero.
    static func checksum(_ bytes: [UInt8], zeroing field: Int) -> UInt32 {
        var copy = bytes
        copy.storeLE(UInt32(0), at: field)
        return checksum(copy)
    }
}

/// A VHDX header (4 KiB of the 64 KiB slot).
struct VHDXHeader: Equatable {
    var sequenceNumber: UInt64
    var fileWriteGuid: [UInt8]
    var dataWriteGuid: [UInt8]
    var logGuid: [UInt8]
    var logVersion: UInt16 = 0
    var version: UInt16 = 1
    var logLength: UInt32
    var logOffset: UInt64

    func encoded() -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: VHDX.headerSize)
        bytes.storeLE(VHDX.headerSignature, at: 0)
        bytes.storeLE(sequenceNumber, at: 8)
        bytes.replaceSubrange(16..<32, with: fileWriteGuid)
        bytes.replaceSubrange(32..<48, with: dataWriteGuid)
        bytes.replaceSubrange(48..<64, with: logGuid)
        bytes.storeLE(logVersion, at: 64)
        bytes.storeLE(version, at: 66)
        bytes.storeLE(logLength, at: 68)
        bytes.storeLE(logOffset, at: 72)
        bytes.storeLE(CRC32C.checksum(bytes), at: 4)
        return bytes
    }

    /// nil when the signature or the checksum is wrong (the other header may still be good).
    static func decode(_ bytes: [UInt8]) -> VHDXHeader? {
        guard bytes.count >= VHDX.headerSize, bytes.loadLE(UInt32.self, at: 0) == VHDX.headerSignature,
              bytes.loadLE(UInt32.self, at: 4) == CRC32C.checksum(Array(bytes[0..<VHDX.headerSize]), zeroing: 4) else { return nil }
        return VHDXHeader(sequenceNumber: bytes.loadLE(UInt64.self, at: 8), fileWriteGuid: Array(bytes[16..<32]),
                          dataWriteGuid: Array(bytes[32..<48]), logGuid: Array(bytes[48..<64]),
                          logVersion: bytes.loadLE(UInt16.self, at: 64), version: bytes.loadLE(UInt16.self, at: 66),
                          logLength: bytes.loadLE(UInt32.self, at: 68), logOffset: bytes.loadLE(UInt64.self, at: 72))
    }
}

/// A region table entry: where the BAT or the metadata lies.
struct VHDXRegion: Equatable {
    var guid: [UInt8]
    var fileOffset: UInt64
    var length: UInt32
    var required: Bool

    static let entrySize = 32
    /// The spec's cap on entries in the 64 KiB table.
    static let maximumEntries = 2047

    static func encodeTable(_ regions: [VHDXRegion]) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: VHDX.regionTableSize)
        bytes.storeLE(VHDX.regionSignature, at: 0)
        bytes.storeLE(UInt32(regions.count), at: 8)
        for (index, region) in regions.enumerated() {
            let at = 16 + index * entrySize
            bytes.replaceSubrange(at..<(at + 16), with: region.guid)
            bytes.storeLE(region.fileOffset, at: at + 16)
            bytes.storeLE(region.length, at: at + 24)
            bytes.storeLE(UInt32(region.required ? 1 : 0), at: at + 28)
        }
        bytes.storeLE(CRC32C.checksum(bytes), at: 4)
        return bytes
    }
}

/// A metadata table entry.
struct VHDXMetadataItem {
    var guid: [UInt8]
    var offset: UInt32
    var length: UInt32
    var isUser: Bool
    var isVirtualDisk: Bool
    var isRequired: Bool

    static let entrySize = 32
    static let maximumEntries = 2047

    /// The table (64 KiB) followed by the items' bytes at their offsets, `VHDX.metadataLength` in all.
    static func encodeRegion(_ items: [(item: VHDXMetadataItem, data: [UInt8])]) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: Int(VHDX.metadataLength))
        bytes.replaceSubrange(0..<8, with: VHDX.metadataSignature)
        bytes.storeLE(UInt16(items.count), at: 10)
        for (index, entry) in items.enumerated() {
            let at = 32 + index * entrySize
            let item = entry.item
            bytes.replaceSubrange(at..<(at + 16), with: item.guid)
            bytes.storeLE(item.offset, at: at + 16)
            bytes.storeLE(item.length, at: at + 20)
            let flags = (item.isUser ? 1 : 0) | (item.isVirtualDisk ? 2 : 0) | (item.isRequired ? 4 : 0)
            bytes.storeLE(UInt32(flags), at: at + 24)
            bytes.replaceSubrange(Int(item.offset)..<(Int(item.offset) + entry.data.count), with: entry.data)
        }
        return bytes
    }
}
