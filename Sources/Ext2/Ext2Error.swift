import CExt2fs
import ImageCore

/// A libext2fs failure, with the operation, the image path and the guest path or inode it was about.
public struct Ext2Error: RehostError {
    public let operation: String
    public let image: String
    public let subject: String?
    public let code: Int
    /// What the block source said, when a read through it failed (a corrupt cluster, say).
    public var cause: String? = nil
    /// The host's disk, not the filesystem, ran out of space or quota (ENOSPC, EDQUOT).
    public var hostErrno: Int32? = nil

    /// A fault of the host, not of the image: the same run may pass once it is mended.
    public var isTransient: Bool {
        hostErrno != nil || (code < 4096 && code != Int(ENOSPC) && FileError.transientErrnos.contains(Int32(code)))
    }

    /// The filesystem ran out of blocks or inodes: for a copy, the disk is too small.
    public var isOutOfSpace: Bool {
        hostErrno == nil && [Int(EXT2_ET_DIR_NO_SPACE), Int(EXT2_ET_BLOCK_ALLOC_FAIL), Int(ENOSPC), Int(EXT2_ET_INODE_ALLOC_FAIL)].contains(code)
    }

    /// libext2fs's text for an error code.
    static func text(_ code: errcode_t) -> String {
        Ext2Filesystem.registerErrorTables()
        return String(cString: error_message(code))
    }

    public var message: String {
        if let hostErrno { return "\(errnoText(hostErrno)) (the host's disk)" }
        if code == Int(EXT2_ET_INODE_ALLOC_FAIL) { return "no free inodes left in the filesystem" }
        if isOutOfSpace { return "no space left in the filesystem" }
        Ext2Filesystem.registerErrorTables()
        return String(cString: error_message(errcode_t(code)))
    }

    public var description: String {
        let about = subject.map { " (\($0))" } ?? ""
        return "\(image): \(operation)\(about) failed: \(message)" + (cause.map { " (\($0))" } ?? "")
    }
}

/// Domain errors found while reading a filesystem, not reported by libext2fs itself.
public enum Ext2FormatError: RehostError {
    case notFound(image: String, path: String)
    case notADirectory(image: String, path: String)
    case notARegularFile(image: String, path: String)
    case unsupported(image: String, path: String, what: String)
    case tooLarge(image: String, what: String, value: UInt64, limit: UInt64)
    /// The filesystem contradicts itself in a way that makes it unusable.
    case corrupt(image: String, what: String)

    public var description: String {
        switch self {
        case let .notFound(image, path): return "\(image): \(path): no such file in the filesystem"
        case let .notADirectory(image, path): return "\(image): \(path): not a directory"
        case let .notARegularFile(image, path): return "\(image): \(path): not a regular file"
        case let .unsupported(image, path, what): return "\(image): \(path): \(what) is not supported"
        case let .tooLarge(image, what, value, limit): return "\(image): \(what) is \(value), more than the limit \(limit)"
        case let .corrupt(image, what): return "\(image): corrupt filesystem: \(what)"
        }
    }
}
