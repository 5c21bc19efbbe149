import Ext2
import ImageCore

#if canImport(Glibc)
import Glibc
#endif

/// What `copy-out` wrote on the host.
public struct CopyOutReport: Encodable, Sendable {
    public var files = 0
    public var directories = 0
    public var symlinks = 0
    public var hardLinks = 0
    public var others = 0
    public var bytes: UInt64 = 0
    /// Entries not written, each with why (a device node when not root, a socket).
    public var skipped: [String] = []
}

/// Copies guest files and trees out to a host directory, like `cp -a`: modes, times, symlinks
/// as symlinks, hard links as hard links, holes as holes; owners only when running as root.
///
/// Nothing on the host is overwritten or followed: every name is created new (O_EXCL,
/// O_NOFOLLOW, mkdir, symlink), inside directories this copy made itself.
public struct GuestCopyOut {
    /// Directories nested deeper are not copied: the copy recurses once per level.
    public static let maximumDepth = 1024

    let tree: GuestFileTree
    let asRoot = geteuid() == 0
    private var report = CopyOutReport()
    /// Host paths of inodes with several links, by filesystem and inode.
    private var copiedLinks: [String: String] = [:]
    /// Directories copied, by filesystem and inode: a damaged filesystem's second entry for one
    /// (a loop back to an ancestor) is skipped rather than followed.
    private var copiedDirectories: Set<String> = []

    public init(tree: GuestFileTree) { self.tree = tree }

    /// Copies each guest path (a final symlink is copied as a symlink) into `hostDirectory`,
    /// under its own name; "/" copies the root's entries. Every path is resolved and every
    /// destination checked before anything is written.
    public mutating func copy(_ guestPaths: [String], into hostDirectory: String) throws -> CopyOutReport {
        var st = stat()
        guard stat(hostDirectory, &st) == 0 else {
            if errno == ENOENT { throw FileAccessError.hostMissing(path: hostDirectory) }
            throw FileError.stat(path: hostDirectory, errno: errno)
        }
        guard st.st_mode & S_IFMT == S_IFDIR else { throw FileAccessError.hostNotADirectory(path: hostDirectory) }
        var plan: [(node: GuestFileTree.Node, destination: String)] = []
        for path in guestPaths {
            let node = try tree.resolve(path, followLast: false)
            let nodes = node.path == "/" ? try tree.children(of: node) : [node]
            for node in nodes {
                let name = String(node.path.split(separator: "/").last!)
                plan.append((node, (hostDirectory.hasSuffix("/") ? hostDirectory : hostDirectory + "/") + name))
            }
        }
        var seen: Set<String> = []
        for (_, destination) in plan {
            guard seen.insert(destination).inserted, lstat(destination, &st) != 0 else {
                throw FileAccessError.hostExists(path: destination)
            }
        }
        for (node, destination) in plan { try copyNode(node, to: destination, depth: 0) }
        return report
    }

    private mutating func copyNode(_ node: GuestFileTree.Node, to destination: String, depth: Int) throws {
        let inode = try tree.inode(node)
        let linkKey = tree.identity(of: node)
        if inode.kind != .directory, inode.linksCount > 1, let first = copiedLinks[linkKey] {
            guard link(first, destination) == 0 else { throw FileError.open(path: destination, errno: errno) }
            report.hardLinks += 1
            return
        }
        switch inode.kind {
        case .directory:
            guard depth < Self.maximumDepth else { throw FileAccessError.tooDeep(path: node.path, limit: Self.maximumDepth) }
            guard copiedDirectories.insert(linkKey).inserted else {
                report.skipped.append("\(node.path): a second entry for a directory already copied (a loop?)")
                return
            }
            guard mkdir(destination, 0o700) == 0 else { throw FileError.open(path: destination, errno: errno) }
            for child in try tree.children(of: node) {
                let name = String(child.path.split(separator: "/").last!)
                try copyNode(child, to: destination + "/" + name, depth: depth + 1)
            }
            report.directories += 1
        case .regular:
            let fd = open(destination, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw FileError.open(path: destination, errno: errno) }
            defer { close(fd) }
            let size = try tree.readData(node) { data, offset in
                var done = 0
                while done < data.count {
                    let wrote = pwrite(fd, data.baseAddress! + done, data.count - done, off_t(offset) + off_t(done))
                    guard wrote > 0 else { throw FileError.write(path: destination, offset: offset + UInt64(done), errno: errno) }
                    done += wrote
                }
            }
            guard ftruncate(fd, off_t(size)) == 0 else { throw FileError.truncate(path: destination, size: size, errno: errno) }
            report.files += 1
            report.bytes += size
        case .symlink:
            guard symlink(try tree.linkTarget(node), destination) == 0 else { throw FileError.open(path: destination, errno: errno) }
            report.symlinks += 1
        case .fifo:
            guard mkfifo(destination, 0o600) == 0 else { throw FileError.open(path: destination, errno: errno) }
            report.others += 1
        case .characterDevice, .blockDevice:
            guard asRoot else {
                report.skipped.append("\(node.path): \(inode.article), made only when running as root")
                return
            }
            let numbers = GuestFileTree.deviceNumbers(inode)
            let type = inode.kind == .characterDevice ? S_IFCHR : S_IFBLK
            guard mknod(destination, type | 0o600, Self.deviceID(major: numbers.major, minor: numbers.minor)) == 0 else {
                throw FileError.open(path: destination, errno: errno)
            }
            report.others += 1
        case .socket, .unknown:
            report.skipped.append("\(node.path): \(inode.article), which has no contents to copy")
            return
        }
        if inode.kind != .directory, inode.linksCount > 1 { copiedLinks[linkKey] = destination }
        try applyMetadata(inode, to: destination)
    }

    /// glibc's makedev (a macro Swift does not import).
    static func deviceID(major: UInt32, minor: UInt32) -> dev_t {
        let major = UInt64(major), minor = UInt64(minor)
        return dev_t(((major & 0xFFFF_F000) << 32) | ((major & 0xFFF) << 8) | ((minor & 0xFFFF_FF00) << 12) | (minor & 0xFF))
    }

    /// Owner first (chown clears set-id bits), then mode, then times: the order `cp -a` uses.
    private func applyMetadata(_ inode: Ext2Inode, to destination: String) throws {
        let isLink = inode.kind == .symlink
        if asRoot, lchown(destination, inode.uid, inode.gid) != 0 { throw FileError.stat(path: destination, errno: errno) }
        if !isLink, chmod(destination, mode_t(inode.permissions)) != 0 { throw FileError.stat(path: destination, errno: errno) }
        let t = inode.times
        var times = [
            timespec(tv_sec: Int(GuestFileTree.seconds(t.access, extra: t.hasExtra ? t.accessExtra : 0)),
                     tv_nsec: t.hasExtra ? GuestFileTree.nanoseconds(extra: t.accessExtra) : 0),
            timespec(tv_sec: Int(GuestFileTree.seconds(t.modification, extra: t.hasExtra ? t.modificationExtra : 0)),
                     tv_nsec: t.hasExtra ? GuestFileTree.nanoseconds(extra: t.modificationExtra) : 0),
        ]
        guard utimensat(AT_FDCWD, destination, &times, AT_SYMLINK_NOFOLLOW) == 0 else {
            throw FileError.stat(path: destination, errno: errno)
        }
    }
}
