import ImageCore
import CExt2fs

#if canImport(Glibc)
import Glibc
#endif

extension Ext2Filesystem {
    /// Removes the empty directory `name` from `parent`: its entry, its blocks, its attribute
    /// block, its inode, and the parent's link its ".." held. Refuses a directory with entries.
    public func removeDirectory(parent: InodeNumber, name: [UInt8]) throws {
        let cName = name.map { CChar(bitPattern: $0) } + [0]
        var ino: ext2_ino_t = 0
        try check(ext2fs_lookup(fs, parent, cName, Int32(name.count), nil, &ino), "looking up \(String(decoding: name, as: UTF8.self))")
        var inode = try readInode(ino)
        guard inode.kind == .directory else {
            throw Ext2FormatError.notADirectory(image: image, path: String(decoding: name, as: UTF8.self))
        }
        guard try directoryEntries(ino).allSatisfy({ $0.name == Array(".".utf8) || $0.name == Array("..".utf8) }) else {
            throw Ext2FormatError.unsupported(image: image, path: String(decoding: name, as: UTF8.self), what: "removing a directory that is not empty")
        }
        try check(ext2fs_unlink(fs, parent, cName, ino, 0), "unlinking \(String(decoding: name, as: UTF8.self))")
        try inode.withMutableSmallInode { small in
            try check(ext2fs_punch(fs, ino, small, nil, 0, ~0), "freeing the blocks of directory inode \(ino)")
        }
        inode = try readInode(ino)
        try releaseAttributeBlock(ino, &inode)
        inode.linksCount = 0
        inode.raw.i_size = 0
        inode.raw.i_dtime = UInt32(clamping: Reproducibility.now())
        try writeInode(ino, inode)
        ext2fs_inode_alloc_stats2(fs, ino, -1, 1)
        var parentInode = try readInode(parent)
        if parentInode.linksCount > 2 { parentInode.linksCount -= 1 }
        try writeInode(parent, parentInode)
    }
}
