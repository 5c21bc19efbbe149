import CExt2fs
import ImageCore

public typealias InodeNumber = UInt32

public struct Ext2DirectoryEntry: Sendable {
    /// Names are bytes: Linux allows any byte but '/' and NUL, and guests do have non-UTF-8 names.
    public let name: [UInt8]
    public let inode: InodeNumber
    public var nameString: String { String(decoding: name, as: UTF8.self) }
}

/// A run of logically contiguous blocks of a file that are also contiguous on disk.
public struct Ext2BlockRun: Equatable, Sendable {
    public var logical: UInt64
    public var physical: UInt64
    public var count: UInt64
}

public let ext2RootInode: InodeNumber = InodeNumber(EXT2_ROOT_INO)

extension Ext2Filesystem {
    public func readInode(_ ino: InodeNumber) throws -> Ext2Inode {
        var inode = Ext2Inode()
        let size = Int32(min(inodeSize, MemoryLayout<ext2_inode_large>.size))
        try withUnsafeMutablePointer(to: &inode.raw) { large in
            try large.withMemoryRebound(to: ext2_inode.self, capacity: 1) { small in
                try check(ext2fs_read_inode_full(fs, ino, small, size), "reading inode \(ino)")
            }
        }
        return inode
    }

    /// The entries of a directory, without "." and "..", in on-disk order.
    public func directoryEntries(_ dir: InodeNumber) throws -> [Ext2DirectoryEntry] {
        final class Collector { var entries: [Ext2DirectoryEntry] = [] }
        let collector = Collector()
        let code = withExtendedLifetime(collector) {
            ext2fs_dir_iterate2(fs, dir, 0, nil, { _, _, dirent, _, _, _, priv in
                guard let dirent, let priv else { return 0 }
                let collector = Unmanaged<Collector>.fromOpaque(priv).takeUnretainedValue()
                let length = Int(ext2fs_dirent_name_len(dirent))
                let name = withUnsafeBytes(of: dirent.pointee.name) { Array($0.prefix(length)) }
                // The name field is declared as 255 bytes; longer records are impossible in ext2.
                if name != [0x2E] && name != [0x2E, 0x2E] && dirent.pointee.inode != 0 {
                    collector.entries.append(Ext2DirectoryEntry(name: name, inode: dirent.pointee.inode))
                }
                return 0
            }, Unmanaged.passUnretained(collector).toOpaque())
        }
        try check(code, "reading directory inode \(dir)")
        return collector.entries
    }

    /// The mapped data blocks of a file, merged into runs; holes are the gaps between runs.
    /// Extents marked unwritten read as zeros, so they are left out like holes.
    public func blockRuns(_ ino: InodeNumber) throws -> [Ext2BlockRun] {
        final class Collector { var runs: [Ext2BlockRun] = [] }
        let collector = Collector()
        let inode = try readInode(ino)
        if inode.flags & Ext2InodeFlags.extents != 0 {
            return try extentRuns(ino)
        }
        let code = withExtendedLifetime(collector) {
            ext2fs_block_iterate3(fs, ino, BLOCK_FLAG_READ_ONLY | BLOCK_FLAG_DATA_ONLY, nil, { _, blocknr, blockcnt, _, _, priv in
                guard let blocknr, let priv, blockcnt >= 0 else { return 0 }
                let collector = Unmanaged<Collector>.fromOpaque(priv).takeUnretainedValue()
                let logical = UInt64(blockcnt), physical = UInt64(blocknr.pointee)
                if var last = collector.runs.last, last.logical + last.count == logical, last.physical + last.count == physical {
                    last.count += 1
                    collector.runs[collector.runs.count - 1] = last
                } else {
                    collector.runs.append(Ext2BlockRun(logical: logical, physical: physical, count: 1))
                }
                return 0
            }, Unmanaged.passUnretained(collector).toOpaque())
        }
        try check(code, "mapping the blocks of inode \(ino)")
        return collector.runs
    }

    private func extentRuns(_ ino: InodeNumber) throws -> [Ext2BlockRun] {
        var handle: ext2_extent_handle_t?
        try check(ext2fs_extent_open(fs, ino, &handle), "opening the extent tree of inode \(ino)")
        defer { ext2fs_extent_free(handle) }
        var runs: [Ext2BlockRun] = []
        var extent = ext2fs_extent()
        var op = Int32(EXT2_EXTENT_ROOT)
        while true {
            let code = ext2fs_extent_get(handle, op, &extent)
            if code == EXT2_ET_EXTENT_NO_NEXT || code == EXT2_ET_EXTENT_NO_DOWN && op == Int32(EXT2_EXTENT_ROOT) { break }
            try check(code, "walking the extent tree of inode \(ino)")
            op = Int32(EXT2_EXTENT_NEXT)
            let flags = Int32(extent.e_flags)
            guard flags & Int32(EXT2_EXTENT_FLAGS_LEAF) != 0, flags & Int32(EXT2_EXTENT_FLAGS_UNINIT) == 0 else { continue }
            runs.append(Ext2BlockRun(logical: UInt64(extent.e_lblk), physical: UInt64(extent.e_pblk), count: UInt64(extent.e_len)))
        }
        return runs
    }

    /// Reads `count` whole blocks starting at physical block `block` into `buffer`.
    public func readBlocks(_ block: UInt64, count: Int, into buffer: UnsafeMutableRawPointer) throws {
        try check(rehost_io_read_blk64(fs.pointee.io, block, Int32(count), buffer), "reading \(count) blocks at block \(block)")
    }

    /// Writes `count` whole blocks at physical block `block`.
    public func writeBlocks(_ block: UInt64, count: Int, from buffer: UnsafeRawPointer) throws {
        try check(rehost_io_write_blk64(fs.pointee.io, block, Int32(count), buffer), "writing \(count) blocks at block \(block)")
    }

    /// The whole contents of a (small) file: for configuration files, not for bulk data.
    public func readWholeFile(_ ino: InodeNumber, limit: UInt64 = 64 << 20) throws -> [UInt8] {
        var inode = try readInode(ino)
        guard inode.size <= limit else {
            throw Ext2FormatError.tooLarge(image: image, what: "the size of inode \(ino)", value: inode.size, limit: limit)
        }
        var file: ext2_file_t?
        try inode.withMutableSmallInode { small in
            try check(ext2fs_file_open2(fs, ino, small, 0, &file), "opening inode \(ino)")
        }
        defer { ext2fs_file_close(file) }
        var bytes = [UInt8](repeating: 0, count: Int(inode.size))
        var done = 0
        while done < bytes.count {
            var got: UInt32 = 0
            let code = bytes.withUnsafeMutableBytes { buffer in
                ext2fs_file_read(file, buffer.baseAddress! + done, UInt32(min(buffer.count - done, 1 << 20)), &got)
            }
            try check(code, "reading inode \(ino)")
            if got == 0 { break }
            done += Int(got)
        }
        return Array(bytes.prefix(done))
    }

    /// A symlink's target, whether stored in the inode (fast) or in a block (slow).
    public func readLink(_ ino: InodeNumber) throws -> [UInt8] {
        var inode = try readInode(ino)
        let isFast = inode.withMutableSmallInode { ext2fs_is_fast_symlink($0) } != 0
        if isFast && inode.flags & 0x1000_0000 == 0 {
            let bytes = withUnsafeBytes(of: inode.raw.i_block) { Array($0) }
            return Array(bytes.prefix(Int(min(inode.size, UInt64(bytes.count)))))
        }
        return try readWholeFile(ino, limit: UInt64(blockSize))
    }

    /// Extended attributes as (name, value) pairs, values exactly as stored on disk (POSIX ACLs in
    /// ext4's compact form, which `setExtendedAttributes` writes back unchanged).
    public func extendedAttributes(_ ino: InodeNumber) throws -> [(name: String, value: [UInt8])] {
        var handle: OpaquePointer?
        try check(ext2fs_xattrs_open(fs, ino, &handle), "opening the extended attributes of inode \(ino)")
        defer { ext2fs_xattrs_close(&handle) }
        try useRawValues(handle)
        try check(ext2fs_xattrs_read(handle), "reading the extended attributes of inode \(ino)")
        final class Collector { var attributes: [(name: String, value: [UInt8])] = [] }
        let collector = Collector()
        let code = withExtendedLifetime(collector) {
            ext2fs_xattrs_iterate(handle, { name, value, length, priv in
                guard let name, let priv else { return 0 }
                let collector = Unmanaged<Collector>.fromOpaque(priv).takeUnretainedValue()
                let bytes = value.map { Array(UnsafeRawBufferPointer(start: $0, count: length)) } ?? []
                collector.attributes.append((String(cString: name), bytes))
                return 0
            }, Unmanaged.passUnretained(collector).toOpaque())
        }
        try check(code, "listing the extended attributes of inode \(ino)")
        return collector.attributes
    }

    /// libext2fs converts POSIX ACLs between the on-disk and the Linux xattr forms by default, but
    /// only in some calls; copying the stored bytes both ways is exact and needs no conversion.
    func useRawValues(_ handle: OpaquePointer?) throws {
        var flags = UInt32(XATTR_HANDLE_FLAG_RAW)
        try check(ext2fs_xattrs_flags(handle, &flags, nil), "configuring an extended-attribute handle")
    }

    /// Resolves an absolute guest path; symlinks resolve inside the guest (absolute targets start
    /// at the guest's root). The last component is followed only when `followLast` is set.
    public func lookup(_ path: String, followLast: Bool = true) throws -> InodeNumber? {
        var ino: ext2_ino_t = 0
        let code = followLast
            ? ext2fs_namei_follow(fs, ext2RootInode, ext2RootInode, path, &ino)
            : ext2fs_namei(fs, ext2RootInode, ext2RootInode, path, &ino)
        if code == EXT2_ET_FILE_NOT_FOUND || code == EXT2_ET_NO_DIRECTORY || code == EXT2_ET_SYMLINK_LOOP { return nil }
        try check(code, "looking up", path)
        return ino
    }
}
