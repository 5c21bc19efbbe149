/// What the guest repairs need from a filesystem: read, replace and create small files, make
/// symlinks, remove files, list directories. Paths are absolute inside the guest; symlinks are
/// resolved inside the guest (an absolute link target starts at the guest's root, never the host's).
///
/// Implemented over libext2fs (the real guest, read-only for `--dry-run` and inspection, read-write
/// for the converted disk) and in memory for tests.
public protocol GuestFilesystem: AnyObject {
    /// What is at `path` after following symlinks in every component but the last; nil if nothing.
    func entry(at path: String) throws -> GuestEntry?

    /// The contents of the regular file at `path`, following symlinks; nil if missing or not a file.
    func readFile(_ path: String) throws -> [UInt8]?

    /// Names in the directory at `path` (without "." and ".."), sorted; empty if missing.
    func listDirectory(_ path: String) throws -> [String]

    /// Replaces the contents of an existing regular file (following symlinks), keeping its inode,
    /// owner, mode and extended attributes (an SELinux label survives the edit); creates the file
    /// with `newFileMode`, owned by root, if it does not exist. The parent directory must exist.
    func writeFile(_ path: String, contents: [UInt8], newFileMode: UInt16) throws

    /// Creates a symlink at `path` pointing at `target`, replacing a file or symlink already there.
    func createSymlink(_ path: String, target: String) throws

    /// Removes a file or symlink; does nothing if `path` does not exist.
    func remove(_ path: String) throws

    /// Creates one directory owned by root (following symlinks in the parent); does nothing if a
    /// directory is already there. The parent directory must exist.
    func createDirectory(_ path: String, mode: UInt16) throws

    /// One extended attribute of the entry at `path` itself (a final symlink is not followed);
    /// nil if the entry or the attribute is missing.
    func extendedAttribute(_ path: String, name: String) throws -> [UInt8]?

    /// Sets one extended attribute on the entry at `path` itself, keeping its others.
    func setExtendedAttribute(_ path: String, name: String, value: [UInt8]) throws
}

public enum GuestEntry: Equatable, Sendable {
    case regularFile(size: UInt64)
    case directory
    case symlink(target: String)
    case other
}

extension GuestFilesystem {
    public func readText(_ path: String) throws -> String? {
        try readFile(path).map { String(decoding: $0, as: UTF8.self) }
    }

    public func writeText(_ path: String, _ text: String, newFileMode: UInt16 = 0o644) throws {
        try writeFile(path, contents: Array(text.utf8), newFileMode: newFileMode)
    }
}
