import CExt2fs
import ImageCore

#if canImport(Glibc)
import Glibc
#endif

/// An ext2/3/4 filesystem inside a file, at a byte offset (a bare image at 0, a partition of a
/// disk image further in), opened through libext2fs's unix I/O manager. libext2fs allows no
/// concurrent use of one handle, so neither does this class: it is not Sendable.
public final class Ext2Filesystem {
    let fs: ext2_filsys
    /// The image file and, for a partition, its offset: used in every error message.
    public let image: String
    public let offset: UInt64
    public let writable: Bool
    private var closed = false
    /// The block source a filesystem opened with `init(source:name:)` is read through.
    private let sourceChannel: SourceChannel?
    /// The file libext2fs reads and writes itself (unix io), for telling a full host disk apart.
    private let hostFile: String?

    /// Opens the filesystem read-only (the input is never modified) or read-write.
    public init(path: String, offset: UInt64 = 0, writable: Bool = false) throws {
        Self.registerErrorTables()
        var handle: ext2_filsys?
        var flags = EXT2_FLAG_64BITS | EXT2_FLAG_IGNORE_CSUM_ERRORS
        if writable { flags |= EXT2_FLAG_RW }
        let options = offset > 0 ? "offset=\(offset)" : ""
        let code = ext2fs_open2(path, options, flags, 0, 0, rehost_unix_io_manager(), &handle)
        let label = offset > 0 ? "\(path) at byte \(offset)" : path
        guard code == 0, let handle else {
            throw Ext2Error(operation: "opening the ext2/3/4 filesystem", image: label, subject: nil, code: Int(code))
        }
        self.fs = handle
        self.image = label
        self.offset = offset
        self.writable = writable
        self.sourceChannel = nil
        self.hostFile = path
        if writable {
            // The times libext2fs stamps itself (s_wtime on close): Rehost's clock.
            handle.pointee.now = Ext2Filesystem.libext2fsNow
            try check(ext2fs_read_bitmaps(fs), "reading the allocation bitmaps")
        }
    }

    /// Opens the filesystem that fills `source` (from its byte 0) through a libext2fs io_manager
    /// that reads the source: no file is needed. Read-only, or read-write for an
    /// `Ext2WritableBlockSource`. `name` is used in every message.
    public init(source: any Ext2BlockSource, name: String, writable: Bool = false) throws {
        Self.registerErrorTables()
        let channel = SourceChannel(source: source, name: name)
        var handle: ext2_filsys?
        var flags = EXT2_FLAG_64BITS | EXT2_FLAG_IGNORE_CSUM_ERRORS
        if writable { flags |= EXT2_FLAG_RW }
        let code = withExtendedLifetime(channel) {
            ext2fs_open2(channel.deviceName, "", flags, 0, 0, SourceChannel.manager, &handle)
        }
        guard code == 0, let handle else {
            var error = Ext2Error(operation: "opening the ext2/3/4 filesystem", image: name, subject: nil, code: Int(code))
            error.cause = channel.takeError().map { "\($0)" }
            throw error
        }
        self.fs = handle
        self.image = name
        self.offset = 0
        self.writable = writable
        self.sourceChannel = channel
        self.hostFile = nil
        if writable {
            handle.pointee.now = Ext2Filesystem.libext2fsNow
            try check(ext2fs_read_bitmaps(fs), "reading the allocation bitmaps")
        }
    }

    init(adopting handle: ext2_filsys, path: String, image: String, offset: UInt64) {
        self.fs = handle
        self.image = image
        self.offset = offset
        self.writable = true
        self.sourceChannel = nil
        self.hostFile = path
    }

    /// Writes every dirty structure (superblock, group descriptors, bitmaps) and releases the handle.
    public func close() throws {
        guard !closed else { return }
        closed = true
        var handle: ext2_filsys? = fs
        try check(ext2fs_close_free(&handle), "writing the filesystem metadata")
    }

    deinit {
        if !closed {
            // An abandoned handle must not write half-finished metadata: free it without flushing.
            ext2fs_free(fs)
        }
    }

    static func registerErrorTables() {
        rehost_init_error_tables()
    }

    /// The time libext2fs stamps itself (s_wtime on every close, the times of the directories it
    /// makes): Rehost's clock. 0 there means "not set, use the real time", so a
    /// SOURCE_DATE_EPOCH of 0 becomes 1.
    static var libext2fsNow: time_t { time_t(max(1, Reproducibility.now())) }

    /// Less than a megabyte left for this user on the filesystem holding `path`.
    static func hostIsFull(_ path: String) -> Bool {
        var info = statvfs()
        guard statvfs(path, &info) == 0 else { return false }
        return UInt64(info.f_bavail) * UInt64(info.f_frsize) < 1 << 20
    }

    func check(_ code: errcode_t, _ operation: @autoclosure () -> String, _ subject: @autoclosure () -> String? = nil) throws {
        guard code == 0 else {
            var error = Ext2Error(operation: operation(), image: image, subject: subject(), code: Int(code))
            error.cause = sourceChannel?.takeError().map { "\($0)" }
            // unix io reports a write the host's disk cut short as a short write, and a full
            // disk as ENOSPC, which libext2fs's callers also use for a full filesystem: the
            // host file's own filesystem tells them apart.
            if let hostFile, [errcode_t(EXT2_ET_SHORT_WRITE), errcode_t(ENOSPC), errcode_t(EDQUOT)].contains(code),
               Self.hostIsFull(hostFile) {
                error.hostErrno = code == errcode_t(EDQUOT) ? EDQUOT : ENOSPC
            }
            throw error
        }
    }

    // MARK: Superblock facts

    public var blockSize: Int { Int(rehost_block_size(fs)) }
    public var inodeSize: Int { Int(rehost_inode_size(fs)) }
    public var blocksCount: UInt64 { UInt64(ext2fs_blocks_count(fs.pointee.super)) }
    public var freeBlocksCount: UInt64 { UInt64(ext2fs_free_blocks_count(fs.pointee.super)) }
    public var inodesCount: UInt32 { fs.pointee.super.pointee.s_inodes_count }
    public var freeInodesCount: UInt32 { fs.pointee.super.pointee.s_free_inodes_count }
    public var firstInode: UInt32 { rehost_first_inode(fs) }
    public var sizeInBytes: UInt64 { blocksCount * UInt64(blockSize) }
    public var usedBytes: UInt64 { (blocksCount - freeBlocksCount) * UInt64(blockSize) }
    public var usedInodes: UInt32 { inodesCount - freeInodesCount }
    public var hasJournal: Bool { rehost_has_journal(fs) != 0 }
    public var hasExtents: Bool { rehost_has_extents(fs) != 0 }
    public var defaultMountOptions: UInt32 { fs.pointee.super.pointee.s_default_mount_opts }
    public var reservedBlocksCount: UInt64 { UInt64(ext2fs_r_blocks_count(fs.pointee.super)) }

    public var label: String {
        withUnsafeBytes(of: fs.pointee.super.pointee.s_volume_name) { bytes in
            String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
        }
    }

    public var uuid: [UInt8] {
        withUnsafeBytes(of: fs.pointee.super.pointee.s_uuid) { Array($0) }
    }

    /// "ext2", "ext3" or "ext4", by the features the kernel would need.
    public var typeName: String {
        let sb = fs.pointee.super.pointee
        let ext4Incompat = UInt32(EXT3_FEATURE_INCOMPAT_EXTENTS | EXT4_FEATURE_INCOMPAT_64BIT | EXT4_FEATURE_INCOMPAT_FLEX_BG)
        let ext4RoCompat = UInt32(EXT4_FEATURE_RO_COMPAT_HUGE_FILE | EXT4_FEATURE_RO_COMPAT_GDT_CSUM | EXT4_FEATURE_RO_COMPAT_METADATA_CSUM)
        if sb.s_feature_incompat & ext4Incompat != 0 || sb.s_feature_ro_compat & ext4RoCompat != 0 { return "ext4" }
        return hasJournal ? "ext3" : "ext2"
    }

    /// Feature names as dumpe2fs prints them.
    public var featureNames: [String] {
        var names: [String] = []
        let sb = fs.pointee.super.pointee
        for (mask, compat, name) in Self.featureTable {
            let value: UInt32 = compat == 0 ? sb.s_feature_compat : compat == 1 ? sb.s_feature_incompat : sb.s_feature_ro_compat
            if value & mask != 0 { names.append(name) }
        }
        return names
    }

    private static let featureTable: [(UInt32, Int, String)] = [
        (UInt32(EXT3_FEATURE_COMPAT_HAS_JOURNAL), 0, "has_journal"),
        (UInt32(EXT2_FEATURE_COMPAT_EXT_ATTR), 0, "ext_attr"),
        (UInt32(EXT2_FEATURE_COMPAT_RESIZE_INODE), 0, "resize_inode"),
        (UInt32(EXT2_FEATURE_COMPAT_DIR_INDEX), 0, "dir_index"),
        (UInt32(EXT2_FEATURE_INCOMPAT_FILETYPE), 1, "filetype"),
        (UInt32(EXT3_FEATURE_INCOMPAT_EXTENTS), 1, "extent"),
        (UInt32(EXT4_FEATURE_INCOMPAT_64BIT), 1, "64bit"),
        (UInt32(EXT4_FEATURE_INCOMPAT_FLEX_BG), 1, "flex_bg"),
        (UInt32(EXT4_FEATURE_INCOMPAT_INLINE_DATA), 1, "inline_data"),
        (UInt32(EXT2_FEATURE_RO_COMPAT_SPARSE_SUPER), 2, "sparse_super"),
        (UInt32(EXT2_FEATURE_RO_COMPAT_LARGE_FILE), 2, "large_file"),
        (UInt32(EXT4_FEATURE_RO_COMPAT_HUGE_FILE), 2, "huge_file"),
        (UInt32(EXT4_FEATURE_RO_COMPAT_GDT_CSUM), 2, "uninit_bg"),
        (UInt32(EXT4_FEATURE_RO_COMPAT_DIR_NLINK), 2, "dir_nlink"),
        (UInt32(EXT4_FEATURE_RO_COMPAT_EXTRA_ISIZE), 2, "extra_isize"),
        (UInt32(EXT4_FEATURE_RO_COMPAT_METADATA_CSUM), 2, "metadata_csum"),
    ]

    /// Hash and signedness facts the copy keeps so the guest's kernel sees the same behaviour.
    var superblockFlags: UInt32 { fs.pointee.super.pointee.s_flags }
}
