/// A guest assembled from several filesystems, as its fstab mounts them: the root, with each
/// other filesystem seen at its mount point (`/boot`, `/var`, ...). A path goes to the filesystem
/// with the longest mount point that contains it, with the mount point's prefix taken off; so the
/// inspection and the repairs see `/boot/grub/grub.conf` and the kernels of a separate /boot.
///
/// Symlinks are resolved inside the filesystem that holds them (a link on / into /boot is not
/// followed across): guests rarely have one, and the resolver of each filesystem stays simple.
public final class MountedGuestFilesystem: GuestFilesystem {
    public let root: any GuestFilesystem
    /// Mount point (absolute, no trailing slash) and filesystem, longest mount point first.
    public let mounts: [(path: String, filesystem: any GuestFilesystem)]

    public init(root: any GuestFilesystem, mounts: [(path: String, filesystem: any GuestFilesystem)]) {
        self.root = root
        self.mounts = mounts.sorted { $0.path.count > $1.path.count }
    }

    /// The filesystem holding `path`, and the path inside it.
    func route(_ path: String) -> (any GuestFilesystem, String) {
        for mount in mounts {
            if path == mount.path { return (mount.filesystem, "/") }
            if path.hasPrefix(mount.path + "/") { return (mount.filesystem, String(path.dropFirst(mount.path.count))) }
        }
        return (root, path)
    }

    public func entry(at path: String) throws -> GuestEntry? { let (fs, p) = route(path); return try fs.entry(at: p) }
    public func readFile(_ path: String) throws -> [UInt8]? { let (fs, p) = route(path); return try fs.readFile(p) }
    public func listDirectory(_ path: String) throws -> [String] { let (fs, p) = route(path); return try fs.listDirectory(p) }
    public func writeFile(_ path: String, contents: [UInt8], newFileMode: UInt16) throws {
        let (fs, p) = route(path)
        try fs.writeFile(p, contents: contents, newFileMode: newFileMode)
    }
    public func createSymlink(_ path: String, target: String) throws {
        let (fs, p) = route(path)
        try fs.createSymlink(p, target: target)
    }
    public func remove(_ path: String) throws { let (fs, p) = route(path); try fs.remove(p) }
    public func createDirectory(_ path: String, mode: UInt16) throws {
        let (fs, p) = route(path)
        try fs.createDirectory(p, mode: mode)
    }
    public func extendedAttribute(_ path: String, name: String) throws -> [UInt8]? {
        let (fs, p) = route(path)
        return try fs.extendedAttribute(p, name: name)
    }
    public func setExtendedAttribute(_ path: String, name: String, value: [UInt8]) throws {
        let (fs, p) = route(path)
        try fs.setExtendedAttribute(p, name: name, value: value)
    }
}
