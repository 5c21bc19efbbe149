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

    private var now: UInt32 { UInt32(clamping: Reproducibility.now()) }

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
        // Through symlinks, dangling ones included: an edit of /etc/grub.conf lands where it points.
        let (canonical, parent, name) = try placeToCreate(path, followLast: true)
        if let ino = try filesystem.lookup(canonical, followLast: false) {
            guard try filesystem.readInode(ino).kind == .regular else {
                throw Ext2FormatError.notARegularFile(image: filesystem.image, path: path)
            }
            try filesystem.replaceContents(ino, with: contents, modificationTime: now)
            return
        }
        var template = Ext2Inode()
        template.mode = 0o100000 | (newFileMode & 0o7777)
        template.linksCount = 1
        template.times = Ext2Inode.Times(all: now)
        let ino = try filesystem.makeNode(parent: try directoryInode(parent), name: Array(name.utf8), inode: template)
        try filesystem.replaceContents(ino, with: contents, modificationTime: template.times.modification)
    }

    func createSymlink(_ path: String, target: String) throws {
        try remove(path)
        let (_, parent, name) = try placeToCreate(path, followLast: false)
        let ino = try filesystem.makeSymlink(parent: try directoryInode(parent), name: Array(name.utf8), target: Array(target.utf8))
        try touch(ino)
    }

    func remove(_ path: String) throws {
        guard try filesystem.lookup(path, followLast: false) != nil else { return }
        let (_, parent, name) = try placeToCreate(path, followLast: false)
        try filesystem.unlink(parent: try directoryInode(parent), name: Array(name.utf8))
    }

    func createDirectory(_ path: String, mode: UInt16) throws {
        if try filesystem.lookup(path) != nil { return }
        let (_, parent, name) = try placeToCreate(path, followLast: false)
        let ino = try filesystem.makeDirectory(parent: try directoryInode(parent), name: Array(name.utf8))
        var inode = try filesystem.readInode(ino)
        inode.mode = 0o040000 | (mode & 0o7777)
        try filesystem.writeInode(ino, inode)
        try touch(ino)
    }

    /// `mkdir -p`: each missing directory on the way to `path`.
    func createDirectories(_ path: String, mode: UInt16) throws {
        var prefix = ""
        for component in path.split(separator: "/") {
            prefix += "/" + component
            try createDirectory(prefix, mode: mode)
        }
    }

    func extendedAttribute(_ path: String, name: String) throws -> [UInt8]? {
        guard let ino = try filesystem.lookup(path, followLast: false) else { return nil }
        return try filesystem.extendedAttributes(ino).first { $0.name == name }?.value
    }

    func setExtendedAttribute(_ path: String, name: String, value: [UInt8]) throws {
        guard let ino = try filesystem.lookup(path, followLast: false) else {
            throw Ext2FormatError.notFound(image: filesystem.image, path: path)
        }
        try filesystem.setExtendedAttributes(ino, [(name, value)])
    }

    private func touch(_ ino: InodeNumber) throws {
        var inode = try filesystem.readInode(ino)
        inode.times = Ext2Inode.Times(all: now)
        try filesystem.writeInode(ino, inode)
    }

    /// The canonical path that `path` creates or replaces, with its parent directory and name;
    /// symlinks are resolved inside the guest.
    private func placeToCreate(_ path: String, followLast: Bool) throws -> (path: String, parent: String, name: String) {
        let resolver = GuestPathResolver { [unowned self] in try self.entry(at: $0) }
        guard let canonical = try resolver.resolve(path, followLast: followLast),
              let place = GuestPathResolver.split(canonical) else {
            throw Ext2FormatError.notFound(image: filesystem.image, path: path)
        }
        return (canonical, place.parent, place.name)
    }

    private func directoryInode(_ path: String) throws -> InodeNumber {
        guard let ino = try filesystem.lookup(path) else { throw Ext2FormatError.notFound(image: filesystem.image, path: path) }
        guard try filesystem.readInode(ino).kind == .directory else {
            throw Ext2FormatError.notADirectory(image: filesystem.image, path: path)
        }
        return ino
    }
}
