import CExt2fs
import ImageCore

#if canImport(Glibc)
import Glibc
#endif

extension Ext2Filesystem {
    public func writeInode(_ ino: InodeNumber, _ inode: Ext2Inode) throws {
        var copy = inode
        let size = Int32(min(inodeSize, MemoryLayout<ext2_inode_large>.size))
        if inodeSize <= 128 { copy.raw.i_extra_isize = 0 }
        try copy.withMutableSmallInode { small in
            try check(ext2fs_write_inode_full(fs, ino, small, size), "writing inode \(ino)")
        }
    }

    /// Adds a directory entry; a full directory is grown by a block and the link retried
    /// (Debian's libext2fs 1.47.0 has no EXT2FS_LINK_EXPAND to do it for us).
    public func link(parent: InodeNumber, name: [UInt8], inode ino: InodeNumber, fileType: Int32) throws {
        let cName = name + [0]
        for attempt in 0..<2 {
            let code = cName.withUnsafeBufferPointer { p in
                p.withMemoryRebound(to: CChar.self) { ext2fs_link(fs, parent, $0.baseAddress, ino, fileType) }
            }
            if code == EXT2_ET_DIR_NO_SPACE && attempt == 0 {
                try check(ext2fs_expand_dir(fs, parent), "growing directory inode \(parent)")
                continue
            }
            try check(code, "linking \(String(decoding: name, as: UTF8.self)) into directory inode \(parent)")
            return
        }
    }

    func allocateInode(parent: InodeNumber, mode: UInt16) throws -> InodeNumber {
        var ino: ext2_ino_t = 0
        try check(ext2fs_new_inode(fs, parent, Int32(mode), nil, &ino), "allocating an inode")
        return ino
    }

    /// Creates an empty directory and links it under `parent`; returns its inode.
    public func makeDirectory(parent: InodeNumber, name: [UInt8]) throws -> InodeNumber {
        let ino = try createDirectory(parent: parent)
        try link(parent: parent, name: name, inode: ino, fileType: Int32(EXT2_FT_DIR))
        return ino
    }

    /// Creates an empty directory whose ".." is `parent`, not yet named in `parent`.
    public func createDirectory(parent: InodeNumber) throws -> InodeNumber {
        let ino = try allocateInode(parent: parent, mode: 0o040755)
        try check(ext2fs_mkdir(fs, parent, ino, nil), "creating a directory under inode \(parent)")
        return ino
    }

    /// Creates a symlink (fast when the target fits in the inode) and links it under `parent`.
    public func makeSymlink(parent: InodeNumber, name: [UInt8], target: [UInt8]) throws -> InodeNumber {
        let ino = try createSymlink(parent: parent, target: target)
        try link(parent: parent, name: name, inode: ino, fileType: Int32(EXT2_FT_SYMLINK))
        return ino
    }

    /// Creates a symlink not yet named in any directory.
    public func createSymlink(parent: InodeNumber, target: [UInt8]) throws -> InodeNumber {
        guard target.count < blockSize else {
            throw Ext2FormatError.unsupported(image: image, path: String(decoding: target, as: UTF8.self),
                                              what: "a symlink target of \(target.count) bytes")
        }
        let ino = try allocateInode(parent: parent, mode: 0o120777)
        var cTarget = target.map { CChar(bitPattern: $0) } + [0]
        try check(ext2fs_symlink(fs, parent, ino, nil, &cTarget), "creating a symlink under inode \(parent)")
        return ino
    }

    /// Creates a regular file, device node, FIFO or socket from `inode` and links it under `parent`.
    public func makeNode(parent: InodeNumber, name: [UInt8], inode template: Ext2Inode) throws -> InodeNumber {
        let ino = try createNode(parent: parent, inode: template)
        try link(parent: parent, name: name, inode: ino, fileType: template.directoryFileType)
        return ino
    }

    /// Creates a regular file, device node, FIFO or socket from `inode` (its mode, owner, times,
    /// links count and, for devices, device numbers), not yet named in any directory. Regular
    /// files start empty: write their data with `BlockWriter` or `FileWriter`.
    public func createNode(parent: InodeNumber, inode template: Ext2Inode) throws -> InodeNumber {
        let ino = try allocateInode(parent: parent, mode: template.mode)
        var inode = template
        inode.size = 0
        inode.raw.i_blocks = 0
        inode.raw.i_file_acl = 0
        inode.raw.osd2.linux2.l_i_file_acl_high = 0
        inode.raw.osd2.linux2.l_i_blocks_hi = 0
        inode.flags &= Ext2InodeFlags.semantic
        let isDevice = inode.kind == .characterDevice || inode.kind == .blockDevice
        if !isDevice { inode.blockMap = [UInt32](repeating: 0, count: 15) }
        inode.raw.i_extra_isize = inodeSize <= 128 ? 0 : 32
        let extentMapped = inode.kind == .regular && hasExtents
        try inode.withMutableSmallInode { small in
            try check(ext2fs_write_new_inode(fs, ino, small), "writing new inode \(ino)")
            if extentMapped {
                // An empty extent header makes the new file extent-mapped, as the kernel would.
                var handle: ext2_extent_handle_t?
                try check(ext2fs_extent_open2(fs, ino, small, &handle), "starting the extent tree of inode \(ino)")
                ext2fs_extent_free(handle)
            }
        }
        ext2fs_inode_alloc_stats2(fs, ino, 1, 0)
        return ino
    }

    /// Replaces all extended attributes of an inode.
    public func setExtendedAttributes(_ ino: InodeNumber, _ attributes: [(name: String, value: [UInt8])]) throws {
        var handle: OpaquePointer?
        try check(ext2fs_xattrs_open(fs, ino, &handle), "opening the extended attributes of inode \(ino)")
        var closed = false
        defer { if !closed { ext2fs_xattrs_close(&handle) } }
        try useRawValues(handle)
        try check(ext2fs_xattrs_read(handle), "reading the extended attributes of inode \(ino)")
        for (name, value) in attributes {
            let code = value.withUnsafeBytes { ext2fs_xattr_set(handle, name, $0.baseAddress, $0.count) }
            try check(code, "setting extended attribute \(name) on inode \(ino)")
        }
        closed = true
        try check(ext2fs_xattrs_close(&handle), "writing the extended attributes of inode \(ino)")
    }

    /// Removes the directory entry `name` from `parent`, and frees the inode when it was the last link.
    public func unlink(parent: InodeNumber, name: [UInt8]) throws {
        let cName = name.map { CChar(bitPattern: $0) } + [0]
        var ino: ext2_ino_t = 0
        try check(ext2fs_lookup(fs, parent, cName, Int32(name.count), nil, &ino), "looking up \(String(decoding: name, as: UTF8.self))")
        try check(ext2fs_unlink(fs, parent, cName, ino, 0), "unlinking \(String(decoding: name, as: UTF8.self))")
        var inode = try readInode(ino)
        if inode.kind == .directory {
            throw Ext2FormatError.unsupported(image: image, path: String(decoding: name, as: UTF8.self), what: "removing a directory")
        }
        if inode.linksCount > 1 {
            inode.linksCount -= 1
            try writeInode(ino, inode)
            return
        }
        try release(ino, inode)
    }

    /// Drops the inode's reference to its extended-attribute block, freeing the block when no
    /// other inode shares it.
    func releaseAttributeBlock(_ ino: InodeNumber, _ inode: inout Ext2Inode) throws {
        let attributeBlock = inode.extendedAttributeBlock
        guard attributeBlock != 0 else { return }
        var remaining: UInt32 = 0
        try check(ext2fs_adjust_ea_refcount3(fs, attributeBlock, nil, -1, &remaining, ino), "releasing the attribute block of inode \(ino)")
        if remaining == 0 { ext2fs_block_alloc_stats2(fs, attributeBlock, -1) }
        inode.raw.i_file_acl = 0
        inode.raw.osd2.linux2.l_i_file_acl_high = 0
    }

    private func release(_ ino: InodeNumber, _ inode: Ext2Inode) throws {
        var inode = inode
        // A fast symlink's i_blocks counts its extended-attribute block (a SELinux label beside a
        // 128-byte inode): libext2fs says whether i_block holds blocks, as e2fsck asks it.
        let symlinkHasBlocks = inode.kind == .symlink && inode.withMutableSmallInode { ext2fs_inode_has_valid_blocks2(fs, $0) != 0 }
        if inode.kind == .regular || symlinkHasBlocks {
            try inode.withMutableSmallInode { small in
                try check(ext2fs_punch(fs, ino, small, nil, 0, ~0), "freeing the blocks of inode \(ino)")
            }
        }
        try releaseAttributeBlock(ino, &inode)
        inode.linksCount = 0
        inode.raw.i_dtime = UInt32(clamping: Reproducibility.now())
        try writeInode(ino, inode)
        ext2fs_inode_alloc_stats2(fs, ino, -1, 0)
    }

    /// Replaces a regular file's contents in place, keeping its inode, owner, mode and attributes.
    public func replaceContents(_ ino: InodeNumber, with bytes: [UInt8], modificationTime: UInt32) throws {
        let writer = try FileWriter(self, ino)
        try writer.truncate(to: 0)
        try bytes.withUnsafeBytes { try writer.write($0, at: 0) }
        try writer.truncate(to: UInt64(bytes.count))
        try writer.close()
        var inode = try readInode(ino)
        inode.times.modification = modificationTime
        inode.times.change = modificationTime
        try writeInode(ino, inode)
    }

    /// Buffered writes into one file through libext2fs, which allocates blocks as data arrives;
    /// offsets never written stay holes.
    public final class FileWriter {
        let owner: Ext2Filesystem
        let ino: InodeNumber
        var file: ext2_file_t?

        public init(_ filesystem: Ext2Filesystem, _ ino: InodeNumber) throws {
            owner = filesystem
            self.ino = ino
            try owner.check(ext2fs_file_open(filesystem.fs, ino, EXT2_FILE_WRITE, &file), "opening inode \(ino) for writing")
        }

        public func write(_ buffer: UnsafeRawBufferPointer, at offset: UInt64) throws {
            try owner.check(ext2fs_file_llseek(file, offset, EXT2_SEEK_SET, nil), "seeking in inode \(ino)")
            var done = 0
            while done < buffer.count {
                var written: UInt32 = 0
                let chunk = UInt32(min(buffer.count - done, 1 << 30))
                try owner.check(ext2fs_file_write(file, buffer.baseAddress! + done, chunk, &written), "writing inode \(ino)")
                done += Int(written)
            }
        }

        public func truncate(to size: UInt64) throws {
            try owner.check(ext2fs_file_set_size2(file, ext2_off64_t(size)), "setting the size of inode \(ino)")
        }

        public func close() throws {
            guard file != nil else { return }
            let code = ext2fs_file_close(file)
            file = nil
            try owner.check(code, "closing inode \(ino)")
        }

        deinit { if file != nil { ext2fs_file_close(file) } }
    }
}
