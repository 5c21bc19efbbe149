import Foundation

/// The kind of an inode, from the S_IFMT bits of its mode.
public enum FileKind: String, Sendable, Equatable, CustomStringConvertible {
    case file, directory, symlink, characterDevice, blockDevice, fifo, socket, unknown

    init(mode: UInt32) {
        switch mode & 0o170000 {
        case 0o100000: self = .file
        case 0o040000: self = .directory
        case 0o120000: self = .symlink
        case 0o020000: self = .characterDevice
        case 0o060000: self = .blockDevice
        case 0o010000: self = .fifo
        case 0o140000: self = .socket
        default: self = .unknown
        }
    }

    public var description: String { rawValue }
}

/// An inode time: seconds since the epoch, and nanoseconds when the inode is big enough to hold them
/// (128-byte inodes have none, so comparisons with them look at seconds only).
public struct InodeTime: Sendable, Equatable, CustomStringConvertible {
    public var seconds: Int64
    public var nanoseconds: UInt32?

    public init(seconds: Int64, nanoseconds: UInt32? = nil) {
        self.seconds = seconds
        self.nanoseconds = nanoseconds
    }

    /// Equal to the precision both sides have.
    public func matches(_ other: InodeTime) -> Bool {
        guard seconds == other.seconds else { return false }
        guard let mine = nanoseconds, let theirs = other.nanoseconds else { return true }
        return mine == theirs
    }

    public var description: String {
        let date = Date(timeIntervalSince1970: TimeInterval(seconds))
        let text = date.formatted(.iso8601)
        guard let nanoseconds else { return "\(seconds) (\(text))" }
        return "\(seconds).\(String(format: "%09u", nanoseconds)) (\(text))"
    }
}

public struct DeviceNumber: Sendable, Equatable, CustomStringConvertible {
    public var major: UInt32
    public var minor: UInt32
    public init(major: UInt32, minor: UInt32) {
        self.major = major
        self.minor = minor
    }
    public var description: String { "\(major):\(minor)" }
}

/// A run of mapped logical blocks of a regular file; everything between runs is a hole.
public struct BlockRun: Sendable, Equatable, CustomStringConvertible {
    public var first: UInt64
    public var count: UInt64
    public init(first: UInt64, count: UInt64) {
        self.first = first
        self.count = count
    }
    public var description: String { count == 1 ? "\(first)" : "\(first)-\(first + count - 1)" }
}

/// Inode flags as debugfs shows them, minus those that only describe the on-disk layout.
public struct InodeFlags: Sendable, Equatable, CustomStringConvertible {
    public var rawValue: UInt32

    /// INDEX (hashed directory), HUGE_FILE, EXTENTS, EA_INODE, EOFBLOCKS, INLINE_DATA: two correct
    /// copies of one tree may differ in these.
    public static let layoutMask: UInt32 = 0x0000_1000 | 0x0004_0000 | 0x0008_0000 | 0x0020_0000 | 0x0040_0000 | 0x1000_0000

    public static let immutable: UInt32 = 0x10
    public static let appendOnly: UInt32 = 0x20

    public init(ondisk: UInt32) { rawValue = ondisk & ~Self.layoutMask }

    private static let names: [(UInt32, String)] = [
        (0x1, "secure-delete"), (0x2, "undelete"), (0x4, "compress"), (0x8, "sync"), (0x10, "immutable"),
        (0x20, "append-only"), (0x40, "nodump"), (0x80, "noatime"), (0x100, "dirty"), (0x200, "compressed-blocks"),
        (0x400, "nocompress"), (0x800, "encrypted"), (0x2000, "afs-dir"), (0x4000, "journal-data"),
        (0x8000, "notail"), (0x10000, "dirsync"), (0x20000, "topdir"), (0x100000, "verity"),
        (0x0100_0000, "snapshot"), (0x0200_0000, "dax"), (0x2000_0000, "project-inherit"), (0x4000_0000, "casefold"),
    ]

    public var description: String {
        if rawValue == 0 { return "none" }
        var words: [String] = []
        var rest = rawValue
        for (bit, name) in Self.names where rawValue & bit != 0 {
            words.append(name)
            rest &= ~bit
        }
        if rest != 0 { words.append(String(format: "0x%x", rest)) }
        return words.joined(separator: ",")
    }
}

/// Everything the oracle knows about one path of the tree.
public struct ExtTreeEntry: Sendable, Equatable {
    /// "/" for the root, "/etc/fstab" for the others.
    public var path: String
    public var inode: UInt32
    public var kind: FileKind
    /// Permission bits including setuid, setgid and sticky (mode & 0o7777).
    public var permissions: UInt16
    public var uid: UInt32
    public var gid: UInt32
    public var size: UInt64
    public var atime: InodeTime
    public var mtime: InodeTime
    public var ctime: InodeTime
    public var linkCount: UInt32
    public var flags: InodeFlags
    /// Exact value bytes as libext2fs returns them (trailing NULs kept).
    public var xattrs: [String: [UInt8]]
    public var symlinkTarget: [UInt8]?
    public var device: DeviceNumber?
    /// Hex SHA-256 of the content of a regular file.
    public var contentSHA256: String?
    /// Mapped logical blocks of a regular file, in order, adjacent runs merged. Uninitialized
    /// extents count as holes: they hold no data and read as zeros.
    public var mappedBlocks: [BlockRun]?

    public var symlinkTargetText: String? { symlinkTarget.map { String(decoding: $0, as: UTF8.self) } }
}
