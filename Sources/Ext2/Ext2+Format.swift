import CExt2fs
import ImageCore

#if canImport(Glibc)
import Glibc
#endif

/// What a new filesystem looks like. The defaults are boot-safe for old guests: 128-byte inodes
/// (GRUB legacy cannot read larger ones) and none of ext4's features unless `ext4` is asked for.
public struct Ext2FormatParameters: Sendable {
    public enum Flavor: String, Sendable, CaseIterable { case ext2, ext3, ext4 }

    public var flavor: Flavor = .ext3
    public var blockSize: Int = 4096
    public var blocksCount: UInt64
    public var inodesCount: UInt32
    public var inodeSize: Int = 128
    public var label: String = ""
    public var uuid: [UInt8]
    public var reservedBlocksCount: UInt64
    /// Mount options the kernel applies without being told (acl, user_xattr), kept from the source.
    public var defaultMountOptions: UInt32 = UInt32(EXT2_DEFM_XATTR_USER | EXT2_DEFM_ACL)
    /// Journal size in blocks; nil picks the size mke2fs would.
    public var journalBlocks: UInt32? = nil

    public init(flavor: Flavor, blockSize: Int, blocksCount: UInt64, inodesCount: UInt32, inodeSize: Int,
                label: String, uuid: [UInt8], reservedBlocksCount: UInt64) {
        self.flavor = flavor
        self.blockSize = blockSize
        self.blocksCount = blocksCount
        self.inodesCount = inodesCount
        self.inodeSize = inodeSize
        self.label = label
        self.uuid = uuid
        self.reservedBlocksCount = reservedBlocksCount
    }
}

extension Ext2Filesystem {
    /// Creates a new filesystem in the existing file `path`, starting at byte `offset`, the way
    /// mke2fs does: tables, root, lost+found, reserved inodes, resize inode, journal. The file
    /// must be new and sparse: inode tables and the journal are left as holes, which read as the
    /// zeros mke2fs would have written.
    public static func format(path: String, offset: UInt64, parameters p: Ext2FormatParameters) throws -> Ext2Filesystem {
        registerErrorTables()
        let image = offset > 0 ? "\(path) at byte \(offset)" : path
        func check(_ code: errcode_t, _ what: String) throws {
            guard code == 0 else { throw Ext2Error(operation: what, image: image, subject: nil, code: Int(code)) }
        }

        var sb = ext2_super_block()
        ext2fs_blocks_count_set(&sb, blk64_t(p.blocksCount))
        ext2fs_r_blocks_count_set(&sb, blk64_t(p.reservedBlocksCount))
        sb.s_log_block_size = UInt32(p.blockSize.trailingZeroBitCount - 10)
        sb.s_rev_level = UInt32(EXT2_DYNAMIC_REV)
        sb.s_inode_size = UInt16(p.inodeSize)
        sb.s_inodes_count = p.inodesCount
        sb.s_feature_compat = UInt32(EXT2_FEATURE_COMPAT_EXT_ATTR | EXT2_FEATURE_COMPAT_RESIZE_INODE | EXT2_FEATURE_COMPAT_DIR_INDEX)
        sb.s_feature_incompat = UInt32(EXT2_FEATURE_INCOMPAT_FILETYPE)
        sb.s_feature_ro_compat = UInt32(EXT2_FEATURE_RO_COMPAT_SPARSE_SUPER | EXT2_FEATURE_RO_COMPAT_LARGE_FILE)
        if p.flavor == .ext4 {
            sb.s_feature_incompat |= UInt32(EXT3_FEATURE_INCOMPAT_EXTENTS | EXT4_FEATURE_INCOMPAT_FLEX_BG)
            sb.s_feature_ro_compat |= UInt32(EXT4_FEATURE_RO_COMPAT_HUGE_FILE | EXT4_FEATURE_RO_COMPAT_DIR_NLINK)
            sb.s_log_groups_per_flex = 4
            if p.inodeSize >= 256 {
                sb.s_feature_ro_compat |= UInt32(EXT4_FEATURE_RO_COMPAT_EXTRA_ISIZE)
                sb.s_min_extra_isize = 32
                sb.s_want_extra_isize = 32
            }
        }

        var handle: ext2_filsys?
        try check(ext2fs_initialize(path, EXT2_FLAG_64BITS, &sb, rehost_unix_io_manager(), &handle),
                  "creating the filesystem")
        guard let fs = handle else { throw Ext2Error(operation: "creating the filesystem", image: image, subject: nil, code: Int(EINVAL)) }
        // From here on the handle is owned by the object, which frees it if a later step throws.
        let filesystem = Ext2Filesystem(adopting: fs, path: path, image: image, offset: offset)
        if offset > 0 {
            try check(rehost_io_set_options(fs.pointee.io, "offset=\(offset)"), "seeking to the partition")
        }

        let s = fs.pointee.super!
        withUnsafeMutableBytes(of: &s.pointee.s_uuid) { bytes in
            for i in 0..<min(16, p.uuid.count) { bytes[i] = p.uuid[i] }
        }
        let seed = Reproducibility.bytes(16, for: "directory hash seed \(UUIDBytes.format(p.uuid))")
        withUnsafeMutableBytes(of: &s.pointee.s_hash_seed) { bytes in
            for i in 0..<min(bytes.count, seed.count) { bytes[i] = seed[i] }
        }
        withUnsafeMutableBytes(of: &s.pointee.s_volume_name) { bytes in
            for (i, b) in p.label.utf8.prefix(bytes.count).enumerated() { bytes[i] = b }
        }
        s.pointee.s_def_hash_version = UInt8(EXT2_HASH_HALF_MD4)
        // x86's char is signed, and the guest's kernel hashes directory names the way this says.
        s.pointee.s_flags |= UInt32(EXT2_FLAGS_SIGNED_HASH)
        s.pointee.s_default_mount_opts = p.defaultMountOptions
        s.pointee.s_max_mnt_count = -1
        // libext2fs stamps the superblock's times with fs->now when set (and on every close).
        fs.pointee.now = Ext2Filesystem.libext2fsNow
        s.pointee.s_mkfs_time = UInt32(clamping: Reproducibility.now())
        s.pointee.s_lastcheck = s.pointee.s_mkfs_time
        s.pointee.s_wtime = s.pointee.s_mkfs_time
        ext2fs_init_csum_seed(fs)

        try check(ext2fs_allocate_tables(fs), "allocating the group tables")
        try check(ext2fs_mkdir(fs, ext2RootInode, ext2RootInode, nil), "creating the root directory")
        try check(ext2fs_mkdir(fs, ext2RootInode, 0, "lost+found"), "creating lost+found")
        var lostFound: ext2_ino_t = 0
        try check(ext2fs_lookup(fs, ext2RootInode, "lost+found", 10, nil, &lostFound), "finding lost+found")
        // e2fsck wants lost+found to have room before it needs it: 16 KiB, as mke2fs makes it.
        while try filesystem.readInode(lostFound).size < 16384 {
            try check(ext2fs_expand_dir(fs, lostFound), "growing lost+found")
        }
        for ino in (ext2RootInode + 1)..<rehost_first_inode(fs) {
            ext2fs_inode_alloc_stats2(fs, ino, 1, 0)
        }
        ext2fs_inode_alloc_stats2(fs, InodeNumber(EXT2_BAD_INO), 1, 0)
        try check(ext2fs_update_bb_inode(fs, nil), "writing the bad-blocks inode")
        if rehost_has_resize_inode(fs) != 0 {
            try check(ext2fs_create_resize_inode(fs), "creating the resize inode")
        }
        if p.flavor != .ext2 {
            var journal = ext2fs_journal_params()
            try check(ext2fs_get_journal_params(&journal, fs), "sizing the journal")
            if let blocks = p.journalBlocks { journal.num_journal_blocks = blocks }
            // The file is new and sparse, so the journal's blocks already read as zeros.
            try check(ext2fs_add_journal_inode3(fs, &journal, ~0, Int32(EXT2_MKJOURNAL_LAZYINIT)), "creating the journal")
        }
        return filesystem
    }
}
