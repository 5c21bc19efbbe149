import Ext2
import ImageCore

/// A swap file in the new root filesystem, as `fallocate` + `mkswap` would make it, written
/// without writing its zeros.
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
/// The kernel refuses swap files with holes, so every block is allocated and mapped (ext3 has no
/// extents: through indirect blocks, which are written); only the header page is written. The
/// other blocks read as zeros because the new filesystem starts on a sparse output.
public enum SwapFile {
    /// The page size the header is laid out for (x86; the kernel reads the signature at the end
    /// of its own page).
    public static let pageSize: UInt64 = 4096
    /// mkswap's minimum: ten pages.
    public static let minimumSize: UInt64 = 10 * pageSize
    public static let signature = Array("SWAPSPACE2".utf8)

    /// Why `size` cannot be a swap file's size, or nil when it can.
    public static func problem(withSize size: UInt64) -> String? {
        if size % pageSize != 0 { return "a swap file's size is a whole number of 4 KiB pages" }
        if size < minimumSize { return "a swap file holds at least 10 pages (40 KiB)" }
        if size / pageSize - 1 > UInt64(UInt32.max) { return "a swap file holds at most 2^32 pages" }
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

    /// Creates `/<name>` in `filesystem`'s root directory: a regular file of `size` bytes, mode
    /// 0600, owned by root, every block allocated, with a swap header of `uuid`. Returns its inode.
    @discardableResult
    public static func create(in filesystem: Ext2Filesystem, name: String, size: UInt64, uuid: [UInt8],
                              time: UInt32) throws -> InodeNumber {
        let root = ext2RootInode
        var template = Ext2Inode()
        template.mode = 0o100600
        template.linksCount = 1
        template.times = Ext2Inode.Times(all: time)
        let ino = try filesystem.createNode(parent: root, inode: template)
        let blockSize = UInt64(filesystem.blockSize)
        let writer = try Ext2Filesystem.BlockWriter(filesystem, ino)
        // The header page, padded to whole blocks (a block larger than a page holds it all).
        let headerBlocks = (pageSize + blockSize - 1) / blockSize
        var first = header(size: size, uuid: uuid)
        first += [UInt8](repeating: 0, count: Int(headerBlocks * blockSize) - first.count)
        try first.withUnsafeBytes { try writer.write($0, atBlock: 0) }
        try writer.allocate((size + blockSize - 1) / blockSize - headerBlocks, atBlock: headerBlocks)
        try writer.finish(size: size)
        try filesystem.link(parent: root, name: Array(name.utf8), inode: ino, fileType: template.directoryFileType)
        return ino
    }
}
