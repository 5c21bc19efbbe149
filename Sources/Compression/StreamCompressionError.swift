import ImageCore

/// Errors from decoding compressed streams (initramfs members, compressed kernel modules).
/// Offsets are byte offsets in the named file: the caller's `baseOffset` plus the position
/// inside the member.
public enum StreamCompressionError: RehostError, Equatable {
    /// The data breaks the format at `offset` (bad magic, bad block, failed checksum).
    case corrupt(name: String, offset: UInt64, format: StreamCompression, detail: String)
    /// The input ends at `offset` before the member's end.
    case truncated(name: String, offset: UInt64, format: StreamCompression)
    /// The member decompresses to more than `limit` bytes (a bomb, or a limit set too low).
    case outputTooLarge(name: String, format: StreamCompression, limit: Int)
    /// A format, or a variant of one, this build does not decode.
    case unsupported(name: String, format: StreamCompression, advice: String)
    /// The library refused to start (out of memory): not the input's fault.
    case library(name: String, format: StreamCompression, operation: String, code: Int32)

    public var description: String {
        switch self {
        case let .corrupt(name, offset, format, detail):
            return "\(name): corrupt \(format.rawValue) data at byte \(offset): \(detail)"
        case let .truncated(name, offset, format):
            return "\(name): truncated: the \(format.rawValue) stream ends at byte \(offset) before its end"
        case let .outputTooLarge(name, format, limit):
            return "\(name): \(format.rawValue) data decompresses to more than the allowed \(limit) bytes"
        case let .unsupported(name, format, advice):
            return "\(name): \(format.rawValue) compression is not supported: \(advice)"
        case let .library(name, format, operation, code):
            return "\(name): \(format.rawValue) \(operation) failed with code \(code)"
        }
    }
}
