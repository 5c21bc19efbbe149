import Ext2
import ImageCore

/// A swap file in the new root filesystem, as `fallocate` + `mkswap` would make it, written
/// without writing its zeros: `SwapArea`'s header page, and nothing else.
///
/// The kernel refuses swap files with holes, so every block is allocated and mapped (ext3 has no
/// extents: through indirect blocks, which are written); only the header page is written. The
/// other blocks read as zeros because the new filesystem starts on a sparse output.
public enum SwapFile {
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
        let headerBlocks = (SwapArea.pageSize + blockSize - 1) / blockSize
        var first = SwapArea.header(size: size, uuid: uuid)
        first += [UInt8](repeating: 0, count: Int(headerBlocks * blockSize) - first.count)
        try first.withUnsafeBytes { try writer.write($0, atBlock: 0) }
        try writer.allocate((size + blockSize - 1) / blockSize - headerBlocks, atBlock: headerBlocks)
        try writer.finish(size: size)
        try filesystem.link(parent: root, name: Array(name.utf8), inode: ino, fileType: template.directoryFileType)
        return ino
    }
}
