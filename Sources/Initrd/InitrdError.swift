import Compression
import ImageCore

/// Bounds for reading one cpio archive. Sizes in a header never drive an allocation beyond the
/// input itself; these bound the work and the entry table.
public struct CpioLimits: Sendable, Equatable {
    /// Entries per archive, the trailer not counted.
    public var maxEntries: Int
    /// Longest name in bytes, its NUL included (the kernel refuses names above PATH_MAX, 4096).
    public var maxNameLength: Int

    public init(maxEntries: Int = 1_000_000, maxNameLength: Int = 4096) {
        self.maxEntries = maxEntries
        self.maxNameLength = maxNameLength
    }

    public static let `default` = CpioLimits()
}

/// Errors from reading cpio newc archives. Offsets are bytes in the named file (or, inside a
/// compressed member, in its decompressed content, which `name` then says).
public enum CpioError: RehostError, Equatable {
    case truncated(name: String, offset: UInt64, needed: String)
    case badMagic(name: String, offset: UInt64, found: String)
    /// 070707: the portable ASCII (odc) format, which the kernel refuses.
    case oldCharacterFormat(name: String, offset: UInt64)
    case badField(name: String, offset: UInt64, field: String, text: String)
    case badName(name: String, offset: UInt64, detail: String)
    case nameTooLong(name: String, offset: UInt64, length: Int, limit: Int)
    case checksumMismatch(name: String, offset: UInt64, path: String, stored: UInt32, computed: UInt32)
    case tooManyEntries(name: String, offset: UInt64, limit: Int)
    case missingTrailer(name: String, offset: UInt64)

    public var description: String {
        switch self {
        case let .truncated(name, offset, needed):
            return "\(name): truncated cpio archive: it ends at byte \(offset), inside \(needed)"
        case let .badMagic(name, offset, found):
            return "\(name): no cpio newc header at byte \(offset): expected magic 070701 or 070702, found \(found)"
        case let .oldCharacterFormat(name, offset):
            return "\(name): cpio header at byte \(offset) is the old character format (070707), which the kernel refuses; write it with `cpio -o -H newc`"
        case let .badField(name, offset, field, text):
            return "\(name): cpio header at byte \(offset): field \(field) is \"\(text)\", expected 8 hexadecimal digits"
        case let .badName(name, offset, detail):
            return "\(name): cpio entry at byte \(offset): \(detail)"
        case let .nameTooLong(name, offset, length, limit):
            return "\(name): cpio entry at byte \(offset): name size \(length) exceeds the limit of \(limit) bytes"
        case let .checksumMismatch(name, offset, path, stored, computed):
            return "\(name): cpio entry \(path) at byte \(offset): data checksum \(hex(computed)) differs from the stored \(hex(stored))"
        case let .tooManyEntries(name, offset, limit):
            return "\(name): cpio archive has more than \(limit) entries (entry at byte \(offset))"
        case let .missingTrailer(name, offset):
            return "\(name): cpio archive ends at byte \(offset) without a TRAILER!!! entry"
        }
    }
}

/// Bounds for walking a whole initramfs image.
public struct InitramfsLimits: Sendable, Equatable {
    /// Decompressed bytes over all members.
    public var maxDecompressedBytes: Int
    /// Entries over all members and archives.
    public var maxEntries: Int
    /// Longest name in bytes, its NUL included.
    public var maxNameLength: Int

    public init(maxDecompressedBytes: Int = 4 << 30, maxEntries: Int = 1_000_000, maxNameLength: Int = 4096) {
        self.maxDecompressedBytes = maxDecompressedBytes
        self.maxEntries = maxEntries
        self.maxNameLength = maxNameLength
    }

    public static let `default` = InitramfsLimits()
}

/// Errors from walking an initramfs image the way the kernel does.
public enum InitrdError: RehostError, Equatable {
    /// Bytes the kernel would stop at: neither zeros, nor a 4-aligned newc archive, nor a known
    /// compression magic.
    case notInitramfs(name: String, offset: UInt64, detail: String)
    /// A compressed member whose content does not end between archives, or holds other bytes
    /// between them ("junk in compressed archive").
    case junkInCompressedMember(name: String, memberOffset: UInt64, format: StreamCompression, detail: String)
    case cpio(CpioError)
    case compression(StreamCompressionError)
    case tooManyEntries(name: String, limit: Int)

    public var description: String {
        switch self {
        case let .notInitramfs(name, offset, detail):
            return "\(name): not an initramfs: \(detail) at byte \(offset)"
        case let .junkInCompressedMember(name, offset, format, detail):
            return "\(name): \(format.rawValue) member at byte \(offset): \(detail)"
        case let .cpio(error):
            return error.description
        case let .compression(error):
            return error.description
        case let .tooManyEntries(name, limit):
            return "\(name): more than \(limit) cpio entries in all members"
        }
    }
}

private func hex(_ value: UInt32) -> String {
    let digits = String(value, radix: 16)
    return "0x" + String(repeating: "0", count: max(0, 8 - digits.count)) + digits
}
