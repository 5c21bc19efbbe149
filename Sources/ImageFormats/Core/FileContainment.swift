import ImageCore
#if canImport(Glibc)
import Glibc
#endif

/// Which host files an image may make Rehost open besides its own.
///
/// An image is hostile until proven otherwise: a VMDK text descriptor names its extent files,
/// and a descriptor uploaded to a conversion service could name `/etc/shadow`, `../other-user.raw`
/// or a symlink to either, whose bytes would then be copied into the output (the class of
/// CVE-2022-47951 and CVE-2024-32498 in OpenStack). By default an image may reach only regular
/// files in its own directory, judged after every symlink is resolved; `allowed` follows any
/// path, for trusted local images (`--allow-external-files`). qcow2 backing and data files, VHD
/// and VDI parents are refused by their readers whatever this says.
public enum ExternalFiles: Sendable, Equatable {
    /// Only regular files beside the image (the default).
    case contained
    /// Any regular file or block device the image names.
    case allowed

    /// The option that turns `allowed` on, for messages.
    public static let option = "--allow-external-files"

    /// The path to open for `reference`, a file name written in `image`'s metadata (at byte
    /// `offset`): resolved against the image's directory, every symlink followed, and refused
    /// unless this policy allows it. A reference that does not exist is returned unresolved, so
    /// the caller reports it as missing. The result contains no symlink, so it can be opened with
    /// `RawFile.Mode.readOnlyNoFollow` and cannot be swapped for a link in between.
    public func resolve(_ reference: String, namedBy image: String, format: ImageFormat, at offset: UInt64,
                        what: String) throws -> String {
        let directory = Self.directory(of: image)
        let joined = reference.hasPrefix("/") ? reference : directory + "/" + reference
        func refuse(_ reason: String) -> ExternalFileError {
            ExternalFileError(image: image, format: format, offset: offset, what: what, reference: reference, reason: reason)
        }
        // Judged on the name first, so a refusal never depends on what exists on the host.
        if self == .contained {
            if reference.hasPrefix("/") { throw refuse("an absolute path") }
            if Self.directory(of: Self.normalized(joined)) != Self.normalized(directory) {
                throw refuse("a path outside the image's own directory")
            }
        }
        let linkReason = "a symlink that does not resolve to a file in the image's own directory"
        guard let resolved = Self.realPath(joined) else {
            if self == .contained && Self.isSymlink(joined) { throw refuse(linkReason) }
            return joined
        }
        guard self == .contained else { return resolved }
        guard Self.directory(of: resolved) == Self.realPath(directory) ?? directory else { throw refuse(linkReason) }
        return resolved
    }

    /// Refuses a block device unless external files are allowed: only the input named on the
    /// command line may be a device.
    public func check(_ file: RawFile, reference: String, namedBy image: String, format: ImageFormat, at offset: UInt64,
                      what: String) throws {
        guard self == .contained, file.isBlockDevice else { return }
        throw ExternalFileError(image: image, format: format, offset: offset, what: what, reference: reference,
                                reason: "a block device (\(file.path))")
    }

    /// The directory part of `path` ("." for a bare name), without a trailing slash.
    static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        let directory = String(path[..<slash])
        return directory.isEmpty ? "/" : directory
    }

    /// `path` with `.`, `..` and repeated slashes folded away, without touching the filesystem.
    static func normalized(_ path: String) -> String {
        var parts: [Substring] = []
        for part in path.split(separator: "/", omittingEmptySubsequences: true) {
            switch part {
            case ".": continue
            case "..": if parts.last.map({ $0 != ".." }) ?? false { parts.removeLast() } else if !path.hasPrefix("/") { parts.append(part) }
            default: parts.append(part)
            }
        }
        let joined = parts.joined(separator: "/")
        return path.hasPrefix("/") ? "/" + joined : (joined.isEmpty ? "." : joined)
    }

    static func isSymlink(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0 && st.st_mode & S_IFMT == S_IFLNK
    }

    static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}

/// A file named inside an image that the containment rule does not let Rehost open.
public struct ExternalFileError: RehostError, Equatable {
    public let image: String
    public let format: ImageFormat
    public let offset: UInt64
    /// Where the image names the file: "extent line 7".
    public let what: String
    public let reference: String
    public let reason: String

    public var description: String {
        "\(image): \(format.displayName) \(what) (byte \(offset)) names \"\(ReaderText.printable(reference.utf8))\", \(reason); "
            + "Rehost opens only regular files beside the image. If you trust this image, pass \(ExternalFiles.option) to follow it"
    }
}
