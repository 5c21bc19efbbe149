import ImageCore

/// The dynamic disk header of a dynamic VHD, 1024 bytes at the footer's data offset (512).
/// Big-endian.
///
/// ```
///   0   char[8] "cxsparse"     8  u64 data offset 0xFFFFFFFFFFFFFFFF (unused)
///   16  u64 table offset (the BAT; 1536 here)
///   24  u32 header version 0x00010000
///   28  u32 max table entries = ceil(disk size / block size)
///   32  u32 block size 2 MiB   36  u32 checksum (as the footer's, over these 1024 bytes)
///   40  u8[16] parent UUID 0   56 u32 parent timestamp 0   60 u32 reserved
///   64  u16[256] parent name 0 576 parent locators 8 x 24 bytes, 0   768..<1024 reserved 0
/// ```
/// The BAT holds one big-endian u32 per block: the sector number of the block's sector bitmap,
/// or 0xFFFFFFFF for a block never written (reads as zeros). Each block is a 512-byte sector
/// bitmap (one bit per 512-byte sector of the 2 MiB block: 4096 bits) then the block's data.
public struct VHDDynamicHeader: Equatable, Sendable {
    public static let size = 1024
    public static let cookie = "cxsparse"
    public static let headerVersion: UInt32 = 0x0001_0000
    public static let blockSize: UInt32 = 2 << 20
    /// 2 MiB / 512 sectors, one bit each, is 512 bytes: a single sector.
    public static let bitmapSize = 512
    public static let unusedBlock: UInt32 = 0xFFFF_FFFF

    public var dataOffset: UInt64 = .max
    public var tableOffset: UInt64
    public var headerVersion = VHDDynamicHeader.headerVersion
    public var maxTableEntries: UInt32
    public var blockSize = VHDDynamicHeader.blockSize
    public var checksum: UInt32 = 0

    public init(tableOffset: UInt64, maxTableEntries: UInt32) {
        self.tableOffset = tableOffset
        self.maxTableEntries = maxTableEntries
    }

    public func encoded() -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: Self.size)
        bytes.replaceSubrange(0..<8, with: Array(Self.cookie.utf8))
        bytes.storeBE(dataOffset, at: 8)
        bytes.storeBE(tableOffset, at: 16)
        bytes.storeBE(headerVersion, at: 24)
        bytes.storeBE(maxTableEntries, at: 28)
        bytes.storeBE(blockSize, at: 32)
        bytes.storeBE(VHDChecksum.compute(bytes, skipping: 36), at: 36)
        return bytes
    }

    public static func decode(_ bytes: [UInt8], path: String, offset: UInt64) throws -> VHDDynamicHeader {
        guard bytes.count >= size else { throw VHDError.truncated(path: path, offset: offset, wanted: size, got: bytes.count) }
        func bad(_ at: Int, _ field: String, _ found: UInt64, _ expected: String) -> VHDError {
            .badField(path: path, offset: offset + UInt64(at), field: field, found: found, expected: expected)
        }
        guard bytes[0..<8].elementsEqual(cookie.utf8) else {
            throw VHDError.badCookie(path: path, offset: offset, found: String(decoding: bytes[0..<8], as: UTF8.self), expected: cookie)
        }
        var header = VHDDynamicHeader(tableOffset: bytes.loadBE(UInt64.self, at: 16), maxTableEntries: bytes.loadBE(UInt32.self, at: 28))
        header.dataOffset = bytes.loadBE(UInt64.self, at: 8)
        header.headerVersion = bytes.loadBE(UInt32.self, at: 24)
        header.blockSize = bytes.loadBE(UInt32.self, at: 32)
        header.checksum = bytes.loadBE(UInt32.self, at: 36)
        let computed = VHDChecksum.compute(Array(bytes[0..<size]), skipping: 36)
        guard header.checksum == computed else { throw bad(36, "dynamic header checksum", UInt64(header.checksum), "0x\(String(computed, radix: 16))") }
        guard header.headerVersion == headerVersion else { throw bad(24, "dynamic header version", UInt64(header.headerVersion), "0x00010000") }
        guard header.blockSize >= 512, header.blockSize & (header.blockSize - 1) == 0 else {
            throw bad(32, "block size", UInt64(header.blockSize), "a power of two of at least 512")
        }
        guard header.tableOffset % 512 == 0 else { throw bad(16, "table offset", header.tableOffset, "a multiple of 512") }
        return header
    }
}
