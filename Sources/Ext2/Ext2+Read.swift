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

/// A file's block map as read from a possibly damaged filesystem: the runs that can be read, and
/// what was wrong with the rest (those blocks read as zeros).
public struct Ext2BlockMap: Sendable {
    public var runs: [Ext2BlockRun]
    public var problems: [String]
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
    /// Extents marked unwritten read as zeros, so they are left out like holes. Throws on any
    /// damage: for files this program wrote itself. A source's files go through `checkedBlockMap`.
    public func blockRuns(_ ino: InodeNumber) throws -> [Ext2BlockRun] {
        let map = try checkedBlockMap(ino)
        if let problem = map.problems.first {
            throw Ext2FormatError.corrupt(image: image, what: "inode \(ino): \(problem)")
        }
        return map.runs
    }

    /// The block map of a file that may be damaged, checked against the filesystem: runs only
    /// for blocks inside it (from `s_first_data_block` to the block count), in ascending logical
    /// order without overlaps. Whatever is wrong (a block or an indirect block outside the
    /// filesystem, a damaged extent tree, overlapping extents) is said in `problems`, and the
    /// blocks concerned are left out, so they read as zeros.
    public func checkedBlockMap(_ ino: InodeNumber) throws -> Ext2BlockMap {
        let inode = try readInode(ino)
        var map = inode.flags & Ext2InodeFlags.extents != 0 ? try extentMap(ino) : try indirectMap(ino)
        // Keep what lies inside the filesystem, clipping runs that cross its end.
        let first = firstDataBlock, end = blocksCount
        var kept: [Ext2BlockRun] = []
        var outside: UInt64 = 0, example: (logical: UInt64, physical: UInt64)?
        var logicalEnd: UInt64 = 0
        for var run in map.runs {
            if run.logical < logicalEnd {
                map.problems.append("logical block \(run.logical) is mapped twice (overlapping extents); the second mapping is ignored")
                let skip = min(run.count, logicalEnd - run.logical)
                run.logical += skip; run.physical &+= skip; run.count -= skip
                if run.count == 0 { continue }
            }
            // Split the run at the filesystem's bounds.
            var runStart = run.logical, physical = run.physical, left = run.count
            while left > 0 {
                let inside = physical >= first && physical < end
                let span: UInt64
                if inside {
                    span = min(left, end - physical)
                    kept.append(Ext2BlockRun(logical: runStart, physical: physical, count: span))
                } else {
                    span = physical < first ? min(left, first - physical) : left
                    if example == nil { example = (runStart, physical) }
                    outside += span
                }
                runStart += span; physical &+= span; left -= span
            }
            logicalEnd = run.logical + run.count
        }
        if let example {
            map.problems.append("\(outside) block\(outside == 1 ? "" : "s") mapped outside the filesystem (logical block \(example.logical) at block \(example.physical); the filesystem has \(end)) read as zeros")
        }
        map.runs = kept
        return map
    }

    /// The first block that may hold data: 1 for 1 KiB blocks, 0 otherwise.
    public var firstDataBlock: UInt64 { UInt64(fs.pointee.super.pointee.s_first_data_block) }

    /// The largest size a regular file can have, as e2fsck computes it: direct, indirect, double
    /// and triple indirect blocks for a block-mapped file, 2^32 blocks for an extent-mapped one.
    public func maximumFileSize(extents: Bool) -> UInt64 {
        let blockSize = UInt64(self.blockSize)
        if extents { return (1 << (32 + UInt64(blockSize.trailingZeroBitCount))) - 1 }
        let perBlock = blockSize / 4
        return (12 + perBlock + perBlock * perBlock + perBlock * perBlock * perBlock) * blockSize
    }

    /// The root directory must be a directory: a filesystem whose root inode is anything else is corrupt.
    public func checkRootDirectory() throws {
        let root = try readInode(ext2RootInode)
        guard root.kind == .directory else {
            throw Ext2FormatError.corrupt(image: image, what: "the root inode (\(ext2RootInode)) is \(root.article), not a directory")
        }
    }

    private func indirectMap(_ ino: InodeNumber) throws -> Ext2BlockMap {
        final class Collector { var runs: [Ext2BlockRun] = [] }
        let collector = Collector()
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
        // An indirect block outside the filesystem stops only its own branch: the rest is mapped.
        let badIndirect: [errcode_t] = [EXT2_ET_BAD_IND_BLOCK, EXT2_ET_BAD_DIND_BLOCK, EXT2_ET_BAD_TIND_BLOCK].map { errcode_t($0) }
        if badIndirect.contains(code) {
            Ext2Filesystem.registerErrorTables()
            return Ext2BlockMap(runs: collector.runs, problems: [String(cString: error_message(code)).lowercased() + ": the blocks it maps read as zeros"])
        }
        try check(code, "mapping the blocks of inode \(ino)")
        return Ext2BlockMap(runs: collector.runs, problems: [])
    }

    private func extentMap(_ ino: InodeNumber) throws -> Ext2BlockMap {
        var handle: ext2_extent_handle_t?
        let opened = ext2fs_extent_open(fs, ino, &handle)
        if opened != 0 {
            return Ext2BlockMap(runs: [], problems: ["its extent tree cannot be read (\(Ext2Error.text(opened))): the file reads as zeros"])
        }
        defer { ext2fs_extent_free(handle) }
        var map = Ext2BlockMap(runs: [], problems: [])
        var extent = ext2fs_extent()
        var op = Int32(EXT2_EXTENT_ROOT)
        var steps = 0
        while true {
            let code = ext2fs_extent_get(handle, op, &extent)
            if code == EXT2_ET_EXTENT_NO_NEXT || code == EXT2_ET_EXTENT_NO_DOWN && op == Int32(EXT2_EXTENT_ROOT) { break }
            steps += 1
            if code != 0 || steps > 1 << 24 {
                let after = map.runs.last.map { $0.logical + $0.count } ?? 0
                map.problems.append("its extent tree is damaged (\(code != 0 ? Ext2Error.text(code) : "too many extents")): the blocks after logical block \(after) read as zeros")
                break
            }
            op = Int32(EXT2_EXTENT_NEXT)
            let flags = Int32(extent.e_flags)
            guard flags & Int32(EXT2_EXTENT_FLAGS_LEAF) != 0, flags & Int32(EXT2_EXTENT_FLAGS_UNINIT) == 0 else { continue }
            map.runs.append(Ext2BlockRun(logical: UInt64(extent.e_lblk), physical: UInt64(extent.e_pblk), count: UInt64(extent.e_len)))
        }
        return map
    }

    /// Reads `count` whole blocks starting at physical block `block` into `buffer`.
    public func readBlocks(_ block: UInt64, count: Int, into buffer: UnsafeMutableRawPointer) throws {
        try check(rehost_io_read_blk64(fs.pointee.io, block, Int32(count), buffer), "reading \(count) blocks at block \(block)")
    }

    /// Writes `count` whole blocks at physical block `block`, straight to the file: unix_io would
    /// keep a run of four blocks or fewer in its cache and write it later, which holds no gain for
    /// file data written once, pushes metadata out of that cache, and keeps the bytes out of the
    /// file where the disk digest taken during the copy would read them. A count in bytes (given
    /// negative) is always written at once.
    public func writeBlocks(_ block: UInt64, count: Int, from buffer: UnsafeRawPointer) throws {
        let units = count <= 4 ? -Int32(count * blockSize) : Int32(count)
        try check(rehost_io_write_blk64(fs.pointee.io, block, units, buffer), "writing \(count) blocks at block \(block)")
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
