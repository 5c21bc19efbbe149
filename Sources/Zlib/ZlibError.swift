import ImageCore

/// Errors from inflating and deflating; `name` is the file (or the caller's label) being decoded.
public enum ZlibError: RehostError, Equatable {
    case corrupt(name: String, compressedOffset: UInt64, reason: String)
    case truncated(name: String, compressedOffset: UInt64)
    case trailingGarbage(name: String, compressedOffset: UInt64)
    case outputTooLarge(name: String, capacity: Int)
    case library(name: String, operation: String, code: Int32)

    public var description: String {
        switch self {
        case let .corrupt(name, offset, reason):
            return "\(name): corrupt gzip data at compressed byte \(offset): \(reason)"
        case let .truncated(name, offset):
            return "\(name): truncated: the gzip stream ends early at compressed byte \(offset)"
        case let .trailingGarbage(name, offset):
            return "\(name): unexpected data after the last gzip member at compressed byte \(offset)"
        case let .outputTooLarge(name, capacity):
            return "\(name): compressed data inflates to more than the expected \(capacity) bytes"
        case let .library(name, operation, code):
            return "\(name): zlib \(operation) failed with code \(code)"
        }
    }
}
