import Ext2
import GuestFixups
import ImageCore

#if canImport(Glibc)
import Glibc
#endif

/// The guest repairs' view of an ext2/3/4 filesystem: the source read-only (inspection and
/// `--dry-run`, behind an overlay) or the new filesystem read-write (the real repairs).
final class Ext2GuestFilesystem: GuestFilesystem {
    let filesystem: Ext2Filesystem

    init(_ filesystem: Ext2Filesystem) { self.filesystem = filesystem }

    private var now: UInt32 { UInt32(time(nil)) }

    func entry(at path: String) throws -> GuestEntry? {
        guard let ino = try filesystem.lookup(path, followLast: false) else { return nil }
        let inode = try filesystem.readInode(ino)
        switch inode.kind {
        case .regular: return .regularFile(size: inode.size)
        case .directory: return .directory
        case .symlink: return .symlink(target: String(decoding: try filesystem.readLink(ino), as: UTF8.self))
        default: return .other
        }
    }

    func readFile(_ path: String) throws -> [UInt8]? {
        guard let ino = try filesystem.lookup(path), try filesystem.readInode(ino).kind == .regular else { return nil }
        return try filesystem.readWholeFile(ino)
    }

    func listDirectory(_ path: String) throws -> [String] {
        guard let ino = try filesystem.lookup(path), try filesystem.readInode(ino).kind == .directory else { return [] }
        return try filesystem.directoryEntries(ino).map(\.nameString).sorted()
    }

    func writeFile(_ path: String, contents: [UInt8], newFileMode: UInt16) throws {
        if let ino = try filesystem.lookup(path) {
            guard try filesystem.readInode(ino).kind == .regular else {
                throw Ext2FormatError.notARegularFile(image: filesystem.image, path: path)
            }
            try filesystem.replaceContents(ino, with: contents, modificationTime: now)
            return
        }
        if case .symlink(let target)? = try entry(at: path) {
            // A dangling symlink: write where it points, as the kernel would.
            let resolved = target.hasPrefix("/") ? target : parentPath(of: path) + "/" + target
            return try writeFile(normalise(resolved), contents: contents, newFileMode: newFileMode)
        }
        let parent = try directoryInode(parentPath(of: path))
        var template = Ext2Inode()
        template.mode = 0o100000 | (newFileMode & 0o7777)
        template.linksCount = 1
        let stamp = now
        template.times = Ext2Inode.Times(all: stamp)
        let ino = try filesystem.makeNode(parent: parent, name: Array(baseName(of: path).utf8), inode: template)
        try filesystem.replaceContents(ino, with: contents, modificationTime: stamp)
    }

    func createSymlink(_ path: String, target: String) throws {
        try remove(path)
        let parent = try directoryInode(parentPath(of: path))
        let ino = try filesystem.makeSymlink(parent: parent, name: Array(baseName(of: path).utf8), target: Array(target.utf8))
        try touch(ino)
    }

    func remove(_ path: String) throws {
        guard try filesystem.lookup(path, followLast: false) != nil else { return }
        try filesystem.unlink(parent: try directoryInode(parentPath(of: path)), name: Array(baseName(of: path).utf8))
    }

    func createDirectory(_ path: String, mode: UInt16) throws {
        if try filesystem.lookup(path) != nil { return }
        let ino = try filesystem.makeDirectory(parent: try directoryInode(parentPath(of: path)), name: Array(baseName(of: path).utf8))
        var inode = try filesystem.readInode(ino)
        inode.mode = 0o040000 | (mode & 0o7777)
        try filesystem.writeInode(ino, inode)
        try touch(ino)
    }

    private func touch(_ ino: InodeNumber) throws {
        var inode = try filesystem.readInode(ino)
        inode.times = Ext2Inode.Times(all: now)
        try filesystem.writeInode(ino, inode)
    }

    private func directoryInode(_ path: String) throws -> InodeNumber {
        guard let ino = try filesystem.lookup(path) else { throw Ext2FormatError.notFound(image: filesystem.image, path: path) }
        guard try filesystem.readInode(ino).kind == .directory else {
            throw Ext2FormatError.notADirectory(image: filesystem.image, path: path)
        }
        return ino
    }
}

func parentPath(of path: String) -> String {
    let parts = path.split(separator: "/")
    return "/" + parts.dropLast().joined(separator: "/")
}

func baseName(of path: String) -> String {
    path.split(separator: "/").last.map(String.init) ?? ""
}

/// Collapses "." and ".." lexically; ".." at the root stays at the root, as inside a chroot.
func normalise(_ path: String) -> String {
    var parts: [Substring] = []
    for part in path.split(separator: "/") {
        if part == "." { continue }
        if part == ".." { _ = parts.popLast(); continue }
        parts.append(part)
    }
    return "/" + parts.joined(separator: "/")
}
