import CExt2fs

/// A copy of an on-disk inode (the large form, so 256-byte inodes keep their extra timestamps),
/// with the fields Rehost reads and writes named plainly.
public struct Ext2Inode {
    var raw = ext2_inode_large()

    public enum Kind: Equatable, Sendable {
        case regular, directory, symlink, characterDevice, blockDevice, fifo, socket, unknown
    }

    /// The permission and kind bits together, as in `st_mode`.
    public var mode: UInt16 {
        get { raw.i_mode }
        set { raw.i_mode = newValue }
    }

    /// The kind in words, for messages: "a regular file", "a symbolic link", ...
    public var article: String {
        switch kind {
        case .regular: return "a regular file"
        case .directory: return "a directory"
        case .symlink: return "a symbolic link"
        case .characterDevice: return "a character device"
        case .blockDevice: return "a block device"
        case .fifo: return "a FIFO"
        case .socket: return "a socket"
        case .unknown: return "of unknown type 0o" + String(mode & 0o170000, radix: 8)
        }
    }

    public var permissions: UInt16 { mode & 0o7777 }

    public var kind: Kind {
        switch mode & 0o170000 {
        case 0o100000: return .regular
        case 0o040000: return .directory
        case 0o120000: return .symlink
        case 0o020000: return .characterDevice
        case 0o060000: return .blockDevice
        case 0o010000: return .fifo
        case 0o140000: return .socket
        default: return .unknown
        }
    }

    /// The directory-entry file type code for this kind (EXT2_FT_*).
    public var directoryFileType: Int32 {
        switch kind {
        case .regular: return Int32(EXT2_FT_REG_FILE)
        case .directory: return Int32(EXT2_FT_DIR)
        case .symlink: return Int32(EXT2_FT_SYMLINK)
        case .characterDevice: return Int32(EXT2_FT_CHRDEV)
        case .blockDevice: return Int32(EXT2_FT_BLKDEV)
        case .fifo: return Int32(EXT2_FT_FIFO)
        case .socket: return Int32(EXT2_FT_SOCK)
        case .unknown: return Int32(EXT2_FT_UNKNOWN)
        }
    }

    public var uid: UInt32 {
        get { withSmallInode { UInt32(rehost_inode_uid($0)) } }
        set { withMutableSmallInode { rehost_inode_set_uid($0, newValue) } }
    }

    public var gid: UInt32 {
        get { withSmallInode { UInt32(rehost_inode_gid($0)) } }
        set { withMutableSmallInode { rehost_inode_set_gid($0, newValue) } }
    }

    public var size: UInt64 {
        get { UInt64(raw.i_size) | (UInt64(raw.i_size_high) << 32) }
        set {
            raw.i_size = UInt32(truncatingIfNeeded: newValue)
            raw.i_size_high = UInt32(truncatingIfNeeded: newValue >> 32)
        }
    }

    public var linksCount: UInt16 {
        get { raw.i_links_count }
        set { raw.i_links_count = newValue }
    }

    public var flags: UInt32 {
        get { raw.i_flags }
        set { raw.i_flags = newValue }
    }

    public var generation: UInt32 {
        get { raw.i_generation }
        set { raw.i_generation = newValue }
    }

    /// The block that holds this inode's extended attributes, or 0.
    public var extendedAttributeBlock: UInt64 {
        UInt64(raw.i_file_acl) | (UInt64(raw.osd2.linux2.l_i_file_acl_high) << 32)
    }

    public var times: Times {
        get {
            Times(access: raw.i_atime, modification: raw.i_mtime, change: raw.i_ctime,
                  accessExtra: raw.i_atime_extra, modificationExtra: raw.i_mtime_extra,
                  changeExtra: raw.i_ctime_extra, creation: raw.i_crtime, creationExtra: raw.i_crtime_extra,
                  hasExtra: raw.i_extra_isize >= 24)
        }
        set {
            raw.i_atime = newValue.access
            raw.i_mtime = newValue.modification
            raw.i_ctime = newValue.change
            raw.i_atime_extra = newValue.accessExtra
            raw.i_mtime_extra = newValue.modificationExtra
            raw.i_ctime_extra = newValue.changeExtra
            raw.i_crtime = newValue.creation
            raw.i_crtime_extra = newValue.creationExtra
        }
    }

    /// The raw 60-byte block map: device numbers for device nodes, the target of fast symlinks.
    public var blockMap: [UInt32] {
        get { withUnsafeBytes(of: raw.i_block) { Array($0.bindMemory(to: UInt32.self)) } }
        set {
            withUnsafeMutableBytes(of: &raw.i_block) { bytes in
                let words = bytes.bindMemory(to: UInt32.self)
                for i in 0..<min(words.count, newValue.count) { words[i] = newValue[i] }
            }
        }
    }

    /// Seconds plus, for inodes of 256 bytes or more, the extra epoch and nanosecond words.
    public struct Times: Equatable, Sendable {
        public var access: UInt32, modification: UInt32, change: UInt32
        public var accessExtra: UInt32, modificationExtra: UInt32, changeExtra: UInt32
        public var creation: UInt32, creationExtra: UInt32
        public var hasExtra: Bool

        /// Whole seconds, the same for every timestamp.
        public init(all seconds: UInt32) {
            access = seconds; modification = seconds; change = seconds; creation = seconds
            accessExtra = 0; modificationExtra = 0; changeExtra = 0; creationExtra = 0
            hasExtra = false
        }

        init(access: UInt32, modification: UInt32, change: UInt32, accessExtra: UInt32, modificationExtra: UInt32,
             changeExtra: UInt32, creation: UInt32, creationExtra: UInt32, hasExtra: Bool) {
            self.access = access; self.modification = modification; self.change = change
            self.accessExtra = accessExtra; self.modificationExtra = modificationExtra; self.changeExtra = changeExtra
            self.creation = creation; self.creationExtra = creationExtra; self.hasExtra = hasExtra
        }

        /// Whether dropping the extra words would lose information (sub-second times or dates past 2038).
        public var usesExtraPrecision: Bool {
            hasExtra && (accessExtra | modificationExtra | changeExtra) != 0
        }
    }

    func withSmallInode<T>(_ body: (UnsafePointer<ext2_inode>) throws -> T) rethrows -> T {
        try withUnsafePointer(to: raw) { try $0.withMemoryRebound(to: ext2_inode.self, capacity: 1, body) }
    }

    mutating func withMutableSmallInode<T>(_ body: (UnsafeMutablePointer<ext2_inode>) throws -> T) rethrows -> T {
        try withUnsafeMutablePointer(to: &raw) { try $0.withMemoryRebound(to: ext2_inode.self, capacity: 1, body) }
    }

    public init() {}
}

/// Inode flags that carry meaning for the guest. Layout flags (extents, htree index, inline
/// data, huge file) describe how one filesystem stores the data and are not copied.
public enum Ext2InodeFlags {
    public static let secureDelete: UInt32 = 0x1
    public static let undelete: UInt32 = 0x2
    public static let synchronous: UInt32 = 0x8
    public static let immutable: UInt32 = 0x10
    public static let appendOnly: UInt32 = 0x20
    public static let noDump: UInt32 = 0x40
    public static let noAccessTime: UInt32 = 0x80
    public static let index: UInt32 = 0x1000
    public static let journalData: UInt32 = 0x4000
    public static let noTailMerge: UInt32 = 0x8000
    public static let directorySync: UInt32 = 0x10000
    public static let topDirectory: UInt32 = 0x20000
    public static let extents: UInt32 = 0x80000

    public static let semantic: UInt32 = secureDelete | undelete | synchronous | immutable | appendOnly | noDump
        | noAccessTime | journalData | noTailMerge | directorySync | topDirectory
}
