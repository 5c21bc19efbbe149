/// CRC-32 as GPT uses it (UEFI spec 2.10, appendix: the IEEE 802.3 polynomial 0x04C11DB7, reflected
/// 0xEDB88320, initial value and final XOR 0xFFFFFFFF: the same function as zlib's `crc32`).
/// DiskLayout sits on ImageCore alone, so it carries this table version rather than link zlib
/// for the few kilobytes a GPT checksums.
enum CRC32 {
    static let table: [UInt32] = (0..<256).map { index in
        var value = UInt32(index)
        for _ in 0..<8 { value = value & 1 != 0 ? (value >> 1) ^ 0xEDB8_8320 : value >> 1 }
        return value
    }

    static func checksum<C: Collection>(_ bytes: C) -> UInt32 where C.Element == UInt8 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes { crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
        return crc ^ 0xFFFF_FFFF
    }
}
