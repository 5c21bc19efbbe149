/// Every error Rehost reports to a user conforms to this: `description` is one line that names
/// the file, the offset where it matters, and what was expected.
public protocol RehostError: Error, CustomStringConvertible, Sendable {
    /// A fault of the host or the network rather than of the input (out of space, an I/O error,
    /// a server down): the same run may pass later. `rehost` exits 75 (EX_TEMPFAIL) for these,
    /// so that batch engines retry them.
    var isTransient: Bool { get }
}

extension RehostError {
    public var isTransient: Bool { false }
}

/// Errors from plain file I/O, shared by every layer.
public enum FileError: RehostError, Equatable {
    case open(path: String, errno: Int32)
    case read(path: String, offset: UInt64, errno: Int32)
    case shortRead(path: String, offset: UInt64, wanted: Int, got: Int)
    case write(path: String, offset: UInt64, errno: Int32)
    case truncate(path: String, size: UInt64, errno: Int32)
    case sync(path: String, errno: Int32)
    case rename(from: String, to: String, errno: Int32)
    case map(path: String, errno: Int32)
    case stat(path: String, errno: Int32)
    case notAFile(path: String, found: String)

    public var description: String {
        switch self {
        case let .open(path, e): return "\(path): cannot open: \(errnoText(e))"
        case let .read(path, offset, e): return "\(path): read failed at byte \(offset): \(errnoText(e))"
        case let .shortRead(path, offset, wanted, got):
            return "\(path): truncated: wanted \(wanted) bytes at byte \(offset), the file ends after \(got)"
        case let .write(path, offset, e): return "\(path): write failed at byte \(offset): \(errnoText(e))"
        case let .truncate(path, size, e): return "\(path): cannot set size to \(size) bytes: \(errnoText(e))"
        case let .sync(path, e): return "\(path): fsync failed: \(errnoText(e))"
        case let .rename(from, to, e): return "cannot rename \(from) to \(to): \(errnoText(e))"
        case let .map(path, e): return "\(path): mmap failed: \(errnoText(e))"
        case let .stat(path, e): return "\(path): \(errnoText(e))"
        case let .notAFile(path, found): return "\(path): \(found), not a regular file or a block device; refused (reading it could block or never end)"
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension FileError {
    /// Faults of the host rather than of the image: the same run may pass later (space freed, the
    /// disk or server back). `rehost` exits 75 (EX_TEMPFAIL) for them, so batch engines retry.
    public static let transientErrnos: [Int32] = [ENOSPC, EDQUOT, EIO, ESTALE, ENOMEM, ETIMEDOUT, ENFILE, EMFILE, EAGAIN]

    public var isTransient: Bool {
        switch self {
        case let .read(_, _, code), let .write(_, _, code), let .truncate(_, _, code), let .sync(_, code),
             let .rename(_, _, code), let .open(_, code), let .map(_, code):
            return Self.transientErrnos.contains(code)
        case .shortRead, .stat, .notAFile:
            return false
        }
    }
}

public func errnoText(_ code: Int32) -> String {
    String(cString: strerror(code))
}
