import Ext2
import GuestFixups

/// Owners, modes and directory removal on the real guest, for `clean` and `customize`.
extension Ext2GuestFilesystem: GuestMetadataEditing {
    func status(_ path: String) throws -> GuestFileStatus? {
        guard let ino = try filesystem.lookup(path, followLast: false) else { return nil }
        let inode = try filesystem.readInode(ino)
        return GuestFileStatus(uid: inode.uid, gid: inode.gid, permissions: inode.mode & 0o7777)
    }

    func setStatus(_ path: String, uid: UInt32?, gid: UInt32?, permissions: UInt16?) throws {
        guard let ino = try filesystem.lookup(path, followLast: false) else {
            throw Ext2FormatError.notFound(image: filesystem.image, path: path)
        }
        var inode = try filesystem.readInode(ino)
        if let uid { inode.uid = uid }
        if let gid { inode.gid = gid }
        if let permissions { inode.mode = (inode.mode & 0o170000) | (permissions & 0o7777) }
        try filesystem.writeInode(ino, inode)
    }

    func removeDirectory(_ path: String) throws {
        guard let place = GuestPathResolver.split(path), let parent = try filesystem.lookup(place.parent) else {
            throw Ext2FormatError.notFound(image: filesystem.image, path: path)
        }
        try filesystem.removeDirectory(parent: parent, name: Array(place.name.utf8))
    }
}
