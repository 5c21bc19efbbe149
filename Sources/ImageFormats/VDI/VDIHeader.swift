import ImageCore

/// VirtualBox Disk Image (VDI), header version 1.1, as VirtualBox 4+ writes it (VBox/Storage/
/// VDICore.h). All integers little-endian.
///
/// ```
/// file offset        contents
/// 0                  pre-header (72 bytes)
///   0   char[64]       "<<< Oracle VM VirtualBox Disk Image >>>\n", NUL-padded
///   64  u32            signature 0xbeda107f (bytes 7f 10 da be)
///   68  u32            version 0x00010001 (1.1)
/// 72                 header 1.1+ (cbHeader = 400 bytes)
///   72  u32 cbHeader         400          76  u32 type     1 dynamic, 2 fixed
///   80  u32 flags            0            84  char[256]    comment
///   340 u32 offBlocks        block map    344 u32 offData  first data block
///   348 u32 x4 legacy geometry: cylinders, heads, sectors (0 = let the reader compute), 512
///   364 u32 dummy            0            368 u64 cbDisk   virtual size in bytes
///   376 u32 cbBlock          1 MiB        380 u32 cbBlockExtra 0
///   384 u32 cBlocks          ceil(cbDisk / cbBlock)
///   388 u32 cBlocksAllocated
///   392 uuid create   408 uuid modify   424 uuid linkage (0)   440 uuid parent modify (0)
///   456 u32 x4 LCHS geometry: cylinders, heads, sectors (0 = compute), 512
/// 472..<512          zero (qemu reads a 512-byte header)
/// 1 MiB              block map: cBlocks x u32, block index in the data area,
///                    0xFFFFFFFF free (reads as zero), 0xFFFFFFFE zero
/// 1 MiB + align(cBlocks x 4, 1 MiB)   data: block i of the file at offData + i x cbBlock
/// ```
/// UUIDs are VirtualBox RTUUIDs: the first three fields little-endian (Microsoft GUID order).
/// Both offsets are aligned to 1 MiB, as VirtualBox itself does since 4.0 (VDI_DATA_ALIGN).
public struct VDIHeader: Equatable, Sendable {
    public enum ImageType: UInt32, Sendable { case dynamic = 1, fixed = 2 }

    public static let fileInfo = "<<< Oracle VM VirtualBox Disk Image >>>\n"
    public static let signature: UInt32 = 0xBEDA_107F
    public static let version: UInt32 = 0x0001_0001
    public static let preHeaderSize = 72
    /// sizeof(VDIHEADER1PLUS).
    public static let headerSize: UInt32 = 400
    /// The bytes `encoded()` produces and `decode` reads.
    public static let encodedSize = 512
    public static let blockSize: UInt32 = 1 << 20
    public static let alignment: UInt64 = 1 << 20
    public static let sectorSize: UInt32 = 512
    public static let freeBlock: UInt32 = 0xFFFF_FFFF
    public static let zeroBlock: UInt32 = 0xFFFF_FFFE
    /// offData is a u32 aligned to 1 MiB, so at most 4095 MiB; it lies 1 MiB past offBlocks,
    /// so the block map may fill at most 4094 MiB = 4094 x 2^18 entries of 4 bytes. qemu's own
    /// cap (UINT32_MAX / 4 blocks) is larger. 1,073,217,536 blocks of 1 MiB is about 1 PiB.
    public static let maximumBlocks: UInt32 = 4094 << 18

    public var imageType: ImageType
    public var flags: UInt32 = 0
    public var comment = ""
    public var blockMapOffset: UInt32
    public var dataOffset: UInt32
    public var legacyGeometry = Geometry()
    public var diskSize: UInt64
    public var blockSize: UInt32 = VDIHeader.blockSize
    public var blockExtra: UInt32 = 0
    public var blockCount: UInt32
    public var allocatedBlocks: UInt32
    /// RFC 4122 byte order (as the text form reads); stored in GUID order.
    public var uuidCreate: [UInt8]
    public var uuidModify: [UInt8]
    public var uuidLinkage = [UInt8](repeating: 0, count: 16)
    public var uuidParentModify = [UInt8](repeating: 0, count: 16)
    public var lchsGeometry = Geometry()
    /// Kept from decoding so checks can see what the file said.
    public var headerSize: UInt32 = VDIHeader.headerSize
    public var fileInfoText = VDIHeader.fileInfo

    public struct Geometry: Equatable, Sendable {
        public var cylinders: UInt32 = 0
        public var heads: UInt32 = 0
        public var sectors: UInt32 = 0
        public var sectorSize: UInt32 = VDIHeader.sectorSize
        public init() {}
    }

    /// The header VirtualBox would write for a new image of `diskSize` bytes.
    public init(imageType: ImageType, diskSize: UInt64, uuidCreate: [UInt8], uuidModify: [UInt8]) {
        self.imageType = imageType
        self.diskSize = diskSize
        // Rounded up, as VirtualBox and qemu do, so the last block may be partly past the disk's end.
        // Clamped, not trapping: `decode` builds one from an untrusted size and checks it afterwards.
        let block = UInt64(VDIHeader.blockSize)
        blockCount = UInt32(clamping: diskSize / block + (diskSize % block == 0 ? 0 : 1))
        allocatedBlocks = imageType == .fixed ? blockCount : 0
        blockMapOffset = UInt32(VDIHeader.alignment)
        let mapBytes = UInt64(blockCount) * 4
        dataOffset = UInt32(clamping: VDIHeader.alignment + (mapBytes + VDIHeader.alignment - 1) / VDIHeader.alignment * VDIHeader.alignment)
        self.uuidCreate = uuidCreate
        self.uuidModify = uuidModify
    }

    public func encoded() -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: VDIHeader.encodedSize)
        for (i, byte) in Array(fileInfoText.utf8.prefix(63)).enumerated() { bytes[i] = byte }
        bytes.storeLE(VDIHeader.signature, at: 64)
        bytes.storeLE(VDIHeader.version, at: 68)
        bytes.storeLE(headerSize, at: 72)
        bytes.storeLE(imageType.rawValue, at: 76)
        bytes.storeLE(flags, at: 80)
        for (i, byte) in Array(comment.utf8.prefix(255)).enumerated() { bytes[84 + i] = byte }
        bytes.storeLE(blockMapOffset, at: 340)
        bytes.storeLE(dataOffset, at: 344)
        Self.store(legacyGeometry, in: &bytes, at: 348)
        bytes.storeLE(UInt32(0), at: 364)
        bytes.storeLE(diskSize, at: 368)
        bytes.storeLE(blockSize, at: 376)
        bytes.storeLE(blockExtra, at: 380)
        bytes.storeLE(blockCount, at: 384)
        bytes.storeLE(allocatedBlocks, at: 388)
        for (offset, uuid) in [(392, uuidCreate), (408, uuidModify), (424, uuidLinkage), (440, uuidParentModify)] {
            bytes.replaceSubrange(offset..<(offset + 16), with: ImageUUID.swappingGUIDFields(uuid))
        }
        Self.store(lchsGeometry, in: &bytes, at: 456)
        return bytes
    }

    /// Parses and checks the first 512 bytes of a VDI file against what VirtualBox and qemu
    /// require. `path` names the file in errors.
    public static func decode(_ bytes: [UInt8], path: String) throws -> VDIHeader {
        guard bytes.count >= encodedSize else {
            throw VDIError.truncated(path: path, offset: 0, wanted: encodedSize, got: bytes.count)
        }
        func check(_ condition: Bool, _ offset: Int, _ field: String, _ found: UInt64, _ expected: String) throws {
            if !condition { throw VDIError.badField(path: path, offset: UInt64(offset), field: field, found: found, expected: expected) }
        }
        let signature = bytes.loadLE(UInt32.self, at: 64)
        try check(signature == Self.signature, 64, "signature", UInt64(signature), "0xbeda107f")
        let version = bytes.loadLE(UInt32.self, at: 68)
        try check(version == Self.version, 68, "version", UInt64(version), "0x00010001 (1.1)")
        let headerSize = bytes.loadLE(UInt32.self, at: 72)
        // 384 is sizeof(VDIHEADER1) (qemu writes it); 400 adds the LCHS geometry.
        try check(headerSize >= 384 && Int(headerSize) <= encodedSize - preHeaderSize, 72, "header size", UInt64(headerSize), "384...440")
        let rawType = bytes.loadLE(UInt32.self, at: 76)
        guard let type = ImageType(rawValue: rawType) else {
            throw VDIError.badField(path: path, offset: 76, field: "image type", found: UInt64(rawType), expected: "1 (dynamic) or 2 (fixed)")
        }
        var header = VDIHeader(imageType: type, diskSize: bytes.loadLE(UInt64.self, at: 368),
                               uuidCreate: ImageUUID.swappingGUIDFields(Array(bytes[392..<408])),
                               uuidModify: ImageUUID.swappingGUIDFields(Array(bytes[408..<424])))
        header.headerSize = headerSize
        header.fileInfoText = String(decoding: bytes[0..<64].prefix { $0 != 0 }, as: UTF8.self)
        header.flags = bytes.loadLE(UInt32.self, at: 80)
        header.comment = String(decoding: bytes[84..<340].prefix { $0 != 0 }, as: UTF8.self)
        header.blockMapOffset = bytes.loadLE(UInt32.self, at: 340)
        header.dataOffset = bytes.loadLE(UInt32.self, at: 344)
        header.legacyGeometry = load(bytes, at: 348)
        header.blockSize = bytes.loadLE(UInt32.self, at: 376)
        header.blockExtra = bytes.loadLE(UInt32.self, at: 380)
        header.blockCount = bytes.loadLE(UInt32.self, at: 384)
        header.allocatedBlocks = bytes.loadLE(UInt32.self, at: 388)
        header.uuidLinkage = ImageUUID.swappingGUIDFields(Array(bytes[424..<440]))
        header.uuidParentModify = ImageUUID.swappingGUIDFields(Array(bytes[440..<456]))
        header.lchsGeometry = headerSize >= 400 ? load(bytes, at: 456) : Geometry()

        // VirtualBox reads any power of two (vdiValidateHeader); qemu only 1 MiB, the size every
        // VirtualBox and qemu release writes. Below a sector, blocks would not stay aligned.
        try check(header.blockSize >= sectorSize && header.blockSize & (header.blockSize - 1) == 0, 376, "block size",
                  UInt64(header.blockSize), "a power of two of at least 512 (1048576 as VirtualBox writes)")
        try check(header.blockExtra == 0, 380, "block extra", UInt64(header.blockExtra), "0")
        try check(header.legacyGeometry.sectorSize == sectorSize, 360, "sector size", UInt64(header.legacyGeometry.sectorSize), "512")
        try check(header.diskSize > 0, 368, "disk size", header.diskSize, "more than 0")
        try check(header.blockCount <= maximumBlocks, 384, "block count", UInt64(header.blockCount), "at most \(maximumBlocks)")
        try check(UInt64(header.blockCount) * UInt64(header.blockSize) >= header.diskSize, 384, "block count",
                  UInt64(header.blockCount), "enough \(header.blockSize)-byte blocks for \(header.diskSize) bytes")
        try check(header.allocatedBlocks <= header.blockCount, 388, "allocated blocks", UInt64(header.allocatedBlocks),
                  "at most the block count \(header.blockCount)")
        try check(header.blockMapOffset >= UInt32(preHeaderSize) + 384 && header.blockMapOffset % 512 == 0, 340,
                  "block map offset", UInt64(header.blockMapOffset), "a multiple of 512 past the header")
        try check(UInt64(header.dataOffset) >= UInt64(header.blockMapOffset) + UInt64(header.blockCount) * 4 && header.dataOffset % 512 == 0,
                  344, "data offset", UInt64(header.dataOffset), "a multiple of 512 past the block map")
        try check(header.uuidCreate.contains { $0 != 0 }, 392, "creation UUID", 0, "not null")
        try check(header.uuidModify.contains { $0 != 0 }, 408, "modification UUID", 0, "not null")
        return header
    }

    private static func store(_ geometry: Geometry, in bytes: inout [UInt8], at offset: Int) {
        bytes.storeLE(geometry.cylinders, at: offset)
        bytes.storeLE(geometry.heads, at: offset + 4)
        bytes.storeLE(geometry.sectors, at: offset + 8)
        bytes.storeLE(geometry.sectorSize, at: offset + 12)
    }

    private static func load(_ bytes: [UInt8], at offset: Int) -> Geometry {
        var geometry = Geometry()
        geometry.cylinders = bytes.loadLE(UInt32.self, at: offset)
        geometry.heads = bytes.loadLE(UInt32.self, at: offset + 4)
        geometry.sectors = bytes.loadLE(UInt32.self, at: offset + 8)
        geometry.sectorSize = bytes.loadLE(UInt32.self, at: offset + 12)
        return geometry
    }
}

public enum VDIError: RehostError, Equatable {
    case truncated(path: String, offset: UInt64, wanted: Int, got: Int)
    case badField(path: String, offset: UInt64, field: String, found: UInt64, expected: String)
    case sizeNotWholeSectors(size: UInt64)
    case tooLarge(size: UInt64, maximum: UInt64)

    public var description: String {
        switch self {
        case let .truncated(path, offset, wanted, got):
            return "\(path): VDI truncated: wanted \(wanted) bytes at byte \(offset), got \(got)"
        case let .badField(path, offset, field, found, expected):
            return "\(path): VDI \(field) at byte \(offset) is \(found) (0x\(String(found, radix: 16))), expected \(expected)"
        case let .sizeNotWholeSectors(size):
            return "vdi: the disk size \(size) is not a whole number of 512-byte sectors"
        case let .tooLarge(size, maximum):
            return "vdi: the disk size \(size) is more than the VDI maximum of \(maximum) bytes"
        }
    }
}
