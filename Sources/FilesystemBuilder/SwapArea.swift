import ImageCore

/// A swap area as `mkswap` writes it, for a swap file (`SwapFile`) or a swap partition: only the
/// first page is written, the rest reads as zeros from the sparse output.
///
/// The first page holds the version-1 swap header (util-linux `include/swapheader.h`,
/// little-endian as on the guests Rehost converts):
/// ```
///      0  bootbits     1024 bytes, zero
///   1024  version      u32 = 1
///   1028  last_page    u32 = size / 4096 - 1
///   1032  nr_badpages  u32 = 0
///   1036  uuid         16 bytes (RFC 4122 order, as uuid_generate gives them)
///   1052  volume_name  16 bytes, NUL-padded
///   1068  padding      117 u32, then badpages[]: zero
///   4086  "SWAPSPACE2" (the last 10 bytes of the page)
/// ```
public enum SwapArea {
    /// The page size the header is laid out for (x86; the kernel reads the signature at the end
    /// of its own page).
    public static let pageSize: UInt64 = 4096
    /// mkswap's minimum: ten pages.
    public static let minimumSize: UInt64 = 10 * pageSize
    public static let signature = Array("SWAPSPACE2".utf8)

    /// Why `size` cannot be a swap area's size, or nil when it can.
    public static func problem(withSize size: UInt64) -> String? {
        if size % pageSize != 0 { return "a swap area's size is a whole number of 4 KiB pages" }
        if size < minimumSize { return "a swap area holds at least 10 pages (40 KiB)" }
        if size / pageSize - 1 > UInt64(UInt32.max) { return "a swap area holds at most 2^32 pages" }
        return nil
    }

    /// The first page of a swap area of `size` bytes.
    public static func header(size: UInt64, uuid: [UInt8], label: String = "") -> [UInt8] {
        precondition(problem(withSize: size) == nil && uuid.count == 16)
        var page = [UInt8](repeating: 0, count: Int(pageSize))
        func put(_ value: UInt32, at offset: Int) {
            for i in 0..<4 { page[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt32(i))) }
        }
        put(1, at: 1024)
        put(UInt32(size / pageSize - 1), at: 1028)
        put(0, at: 1032)
        page.replaceSubrange(1036..<1052, with: uuid)
        let name = Array(label.utf8.prefix(16))
        page.replaceSubrange(1052..<1052 + name.count, with: name)
        page.replaceSubrange(page.count - signature.count..<page.count, with: signature)
        return page
    }

    /// Makes `size` bytes of `disk` at `offset` (a swap partition, its bytes zero in the new sparse
    /// disk) a swap area of `uuid`: the header page is all that is written.
    public static func write(to disk: RawFile, at offset: UInt64, size: UInt64, uuid: [UInt8]) throws {
        try disk.write(header(size: size, uuid: uuid), at: offset)
    }
}
