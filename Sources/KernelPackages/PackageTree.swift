/// Collects the entries of a package payload (cpio or tar) into `PackageFile`s: names
/// normalized and kept inside the root (no "..", nothing beneath a symlink of the package's own),
/// the entry count bounded, hard links resolved to an earlier regular file, and a repeated name
/// replacing the earlier entry (as unpacking would).
struct PackageTree {
    let path: String
    let limits: PackageLimits
    private(set) var files: [PackageFile] = []
    private var index: [String: Int] = [:]

    init(path: String, limits: PackageLimits) {
        self.path = path
        self.limits = limits
    }

    /// The normalized absolute form of an archive name ("./boot/x", "boot//x/", "/boot/x" ->
    /// "/boot/x"; "." -> "/"), or nil when a component is ".." or the name holds a NUL.
    static func normalized(_ name: String) -> String? {
        guard !name.utf8.contains(0) else { return nil }
        var parts: [Substring] = []
        for part in name.split(separator: "/", omittingEmptySubsequences: true) {
            if part == "." { continue }
            if part == ".." { return nil }
            parts.append(part)
        }
        return "/" + parts.joined(separator: "/")
    }

    /// Adds one entry; `offset` is the entry's header in the archive, for messages.
    /// For a hard link, `linkTarget` is the archive name of the file it names.
    mutating func add(name: String, kind: PackageFile.Kind, mode: UInt32, data: [UInt8], linkTarget: String?,
                      offset: UInt64) throws(KernelPackageError) {
        guard name.utf8.count <= limits.maxNameLength else {
            throw .corrupt(path: path, offset: offset, expected: "a name of at most \(limits.maxNameLength) bytes, found \(name.utf8.count)")
        }
        guard !name.isEmpty, let normalized = Self.normalized(name) else {
            throw .unsafePath(path: path, offset: offset, name: name)
        }
        if normalized == "/" {
            // "./" in a tar, "." in a cpio: the root itself is not installed.
            guard kind == .directory else { throw .unsafePath(path: path, offset: offset, name: name) }
            return
        }
        var ancestor = Substring(normalized)
        while let slash = ancestor.lastIndex(of: "/"), slash != ancestor.startIndex {
            ancestor = ancestor[..<slash]
            if let position = index[String(ancestor)], files[position].kind == .symlink {
                throw .throughSymlink(path: path, offset: offset, name: normalized, symlink: String(ancestor))
            }
        }
        var file = PackageFile(path: normalized, kind: kind, mode: UInt16(mode & 0o7777), data: data, linkTarget: linkTarget)
        switch kind {
        case .symlink:
            guard let target = linkTarget, !target.isEmpty, !target.utf8.contains(0),
                  target.utf8.count <= limits.maxNameLength else {
                throw .corrupt(path: path, offset: offset, expected: "a symlink target of 1 to \(limits.maxNameLength) bytes for \(normalized)")
            }
            file.data = []
        case .hardlink:
            guard let target = linkTarget, let targetPath = Self.normalized(target), targetPath != "/" else {
                throw .unsafePath(path: path, offset: offset, name: linkTarget ?? "")
            }
            guard let position = index[targetPath], files[position].kind == .regular || files[position].kind == .hardlink else {
                throw .corrupt(path: path, offset: offset, expected: "hard link \(normalized) to name an earlier regular file, but \(targetPath) is not one")
            }
            let original = files[position]
            file.data = original.data
            file.linkTarget = original.kind == .hardlink ? original.linkTarget : original.path
            if file.linkTarget == normalized {
                throw .corrupt(path: path, offset: offset, expected: "hard link \(normalized) to name another file, not itself")
            }
        case .regular, .directory:
            file.linkTarget = nil
        }
        if let existing = index[normalized] {
            // A directory listed twice keeps its first place; anything else is replaced.
            files[existing] = file
            return
        }
        guard files.count < limits.maxFiles else {
            throw .tooLarge(path: path, what: "the number of entries (at byte \(offset))", limit: limits.maxFiles)
        }
        index[normalized] = files.count
        files.append(file)
    }
}
