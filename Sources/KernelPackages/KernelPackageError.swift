import Compression
import ImageCore
import Initrd

/// Bounds for reading one package. Nothing a header claims is allocated before it is checked
/// against these and against the file itself.
public struct PackageLimits: Sendable, Equatable {
    /// The largest decompressed payload (RPM cpio archive, DEB data.tar), headers and padding
    /// included. A distribution kernel with all its modules expands to 300–600 MiB.
    public var maxExpandedBytes: Int
    /// The most entries (files, directories, links) a package may hold; a kernel has 2k–8k.
    public var maxFiles: Int
    /// The longest path or link target, in bytes (PATH_MAX).
    public var maxNameLength: Int

    public init(maxExpandedBytes: Int = 2 << 30, maxFiles: Int = 200_000, maxNameLength: Int = 4096) {
        self.maxExpandedBytes = maxExpandedBytes
        self.maxFiles = maxFiles
        self.maxNameLength = maxNameLength
    }

    public static let `default` = PackageLimits()
}

/// Errors from reading kernel packages. `path` is the package file; offsets are bytes in it,
/// or, where the message says so, bytes in a decompressed member (the payload, data.tar).
public enum KernelPackageError: RehostError, Equatable {
    /// Neither an RPM lead (ed ab ee db) nor an ar archive (!<arch>) at byte 0.
    case notAPackage(path: String, found: String)
    /// The file (or the named member) ends at `offset` inside `needed`.
    case truncated(path: String, offset: UInt64, needed: String)
    /// The bytes at `offset` break the format: `expected` says what should be there.
    case corrupt(path: String, offset: UInt64, expected: String)
    /// Valid, but a variant Rehost does not read.
    case unsupported(path: String, offset: UInt64, what: String)
    /// An entry name that would leave the package's root ("..") or is empty.
    case unsafePath(path: String, offset: UInt64, name: String)
    /// An entry beneath a symlink the package itself installs: writing it would follow the link,
    /// possibly out of the guest's root.
    case throughSymlink(path: String, offset: UInt64, name: String, symlink: String)
    /// The payload expands beyond `PackageLimits.maxExpandedBytes`, or holds more entries than
    /// `maxFiles`.
    case tooLarge(path: String, what: String, limit: Int)
    /// A well-formed package that installs no kernel.
    case notAKernel(path: String, package: String, reason: String)
    /// A compressed member does not decompress.
    case compression(StreamCompressionError)
    /// The RPM payload's cpio archive does not parse.
    case cpio(CpioError)
    case file(FileError)

    public var description: String {
        switch self {
        case let .notAPackage(path, found):
            return "\(path): not an RPM or DEB package: expected the RPM lead magic ed ab ee db or the ar magic \"!<arch>\\n\" at byte 0, found \(found)"
        case let .truncated(path, offset, needed):
            return "\(path): truncated at byte \(offset): the file ends inside \(needed)"
        case let .corrupt(path, offset, expected):
            return "\(path): damaged at byte \(offset): expected \(expected)"
        case let .unsupported(path, offset, what):
            return "\(path): at byte \(offset): \(what) is not supported"
        case let .unsafePath(path, offset, name):
            return "\(path): entry at byte \(offset) has the unsafe name \"\(name)\": names must stay inside the package root (no \"..\")"
        case let .throughSymlink(path, offset, name, symlink):
            return "\(path): entry at byte \(offset), \(name), lies beneath \(symlink), a symlink the package installs; installing it would follow the link"
        case let .tooLarge(path, what, limit):
            return "\(path): \(what) exceeds the limit of \(limit)"
        case let .notAKernel(path, package, reason):
            return "\(path): package \(package) installs no kernel (\(reason))"
        case let .compression(error): return error.description
        case let .cpio(error): return error.description
        case let .file(error): return error.description
        }
    }
}

/// Bytes quoted for a message: printable ASCII kept, anything else as \xNN, at most 32 bytes.
func quoted(_ bytes: some Collection<UInt8>) -> String {
    var text = "\""
    for byte in bytes.prefix(32) {
        if byte >= 0x20 && byte < 0x7F && byte != UInt8(ascii: "\"") && byte != UInt8(ascii: "\\") {
            text.unicodeScalars.append(Unicode.Scalar(byte))
        } else {
            let digits = Array("0123456789abcdef")
            text += "\\x" + String([digits[Int(byte >> 4)], digits[Int(byte & 0xF)]])
        }
    }
    return text + (bytes.count > 32 ? "...\"" : "\"")
}

/// Hexadecimal bytes for a message: "ed ab ee db".
func hexBytes(_ bytes: some Collection<UInt8>) -> String {
    let digits = Array("0123456789abcdef")
    return bytes.map { String([digits[Int($0 >> 4)], digits[Int($0 & 0xF)]]) }.joined(separator: " ")
}
