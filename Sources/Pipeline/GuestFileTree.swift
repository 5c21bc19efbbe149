import Ext2
import GuestFixups
import ImageCore
import ImageFormats

#if canImport(Glibc)
import Glibc
#endif

/// The files of a guest as `ls`, `cat` and `copy-out` see them, read-only: the root filesystem
/// with every filesystem its fstab mounts at its mount point (a separate /boot, LVM2 volumes),
/// or the one filesystem of a bare image or chosen partition.
///
/// Paths resolve inside the guest, across its mounts: an absolute symlink target starts again
/// at the guest's root and ".." stops there, so nothing read ever comes from the host. A path
/// typed by the user that climbs above the root with ".." is refused rather than clamped.
public final class GuestFileTree {
    let source: SourceGuest
    /// Mount point ("/" for the root) and filesystem, longest mount point first.
    let filesystems: [(mountPoint: String, filesystem: Ext2Filesystem)]
    private lazy var accounts: GuestAccounts = GuestAccounts(self)

    /// A resolved guest path: the filesystem (an index into `filesystems`) and the inode.
    public struct Node {
        public let path: String
        let filesystemIndex: Int
        let inode: InodeNumber
    }

    /// One entry as `ls -l` shows it.
    public struct Info: Encodable, Sendable {
        public var path: String
        public var name: String
        public var type: String
        public var mode: UInt16
        public var links: UInt16
        public var uid: UInt32
        public var gid: UInt32
        public var user: String?
        public var group: String?
        public var size: UInt64
        public var modified: Int64
        public var target: String?
        public var device: [UInt32]?
    }

    public init(path: String, partition: Int?, scratchDirectory: String?, externalFiles: ExternalFiles,
                maxOutputSize: UInt64?) throws {
        source = try SourceGuest(path: path, partition: partition, scratchDirectory: scratchDirectory,
                                 externalFiles: externalFiles, maxOutputSize: maxOutputSize)
        filesystems = ([("/", source.filesystem)] + source.mounts.map { ($0.mountPoint, $0.filesystem) })
            .sorted { $0.0.count > $1.0.count }
    }

    /// The input file, as messages name it.
    public var image: String { source.input.path }
    /// What the guest's assembly noted (fstab lines naming nothing, unreadable volumes).
    public var notes: [String] { source.report.notes }

    // MARK: Resolution

    /// The node at `path`, following symlinks inside the guest in every component, and in the last
    /// one when `followLast`; throws `notFound` when nothing is there.
    public func resolve(_ path: String, followLast: Bool) throws -> Node {
        try Self.checkInsideGuest(path)
        let resolver = GuestPathResolver { [unowned self] in try self.entry(atCanonical: $0) }
        guard let canonical = try resolver.resolve(path, followLast: followLast),
              let node = try node(atCanonical: canonical) else {
            throw FileAccessError.notFound(image: image, path: path)
        }
        return node
    }

    /// Refuses relative paths and ".." climbing above the root: the user meant a place that is
    /// not in the guest. (Symlinks stored in the guest are clamped at its root instead, as a
    /// chroot would: they are the guest's own business.)
    static func checkInsideGuest(_ path: String) throws {
        guard path.hasPrefix("/") else { throw FileAccessError.notAbsolute(path: path) }
        var depth = 0
        for component in path.split(separator: "/") {
            if component == ".." {
                guard depth > 0 else { throw FileAccessError.outsideGuest(path: path) }
                depth -= 1
            } else if component != "." {
                depth += 1
            }
        }
    }

    /// The filesystem holding a canonical path, and the path inside it.
    func route(_ canonical: String) -> (index: Int, inner: String) {
        for (index, entry) in filesystems.enumerated() {
            let mount = entry.mountPoint
            if mount == "/" || canonical == mount { return (index, mount == "/" ? canonical : "/") }
            if canonical.hasPrefix(mount + "/") { return (index, String(canonical.dropFirst(mount.count))) }
        }
        return (filesystems.count - 1, canonical)
    }

    /// The node at a canonical path (no symlinks, "." or ".." in it); nil if nothing is there.
    func node(atCanonical canonical: String) throws -> Node? {
        let (index, inner) = route(canonical)
        guard let ino = try filesystems[index].filesystem.lookup(inner, followLast: false) else { return nil }
        return Node(path: canonical, filesystemIndex: index, inode: ino)
    }

    private func entry(atCanonical canonical: String) throws -> GuestEntry? {
        guard let node = try node(atCanonical: canonical) else { return nil }
        let inode = try inode(node)
        switch inode.kind {
        case .regular: return .regularFile(size: inode.size)
        case .directory: return .directory
        case .symlink: return .symlink(target: try linkTarget(node))
        default: return .other
        }
    }

    // MARK: Reading

    func filesystem(_ node: Node) -> Ext2Filesystem { filesystems[node.filesystemIndex].filesystem }

    func inode(_ node: Node) throws -> Ext2Inode { try filesystem(node).readInode(node.inode) }

    /// The same for every path of one inode: its filesystem and number.
    public func identity(of node: Node) -> String { "\(node.filesystemIndex):\(node.inode)" }

    public func isDirectory(_ node: Node) throws -> Bool { try inode(node).kind == .directory }

    public func linkTarget(_ node: Node) throws -> String {
        String(decoding: try filesystem(node).readLink(node.inode), as: UTF8.self)
    }

    /// The entries of a directory (without "." and ".."), by name; a mount point is the root of
    /// the filesystem mounted there. Names holding "/" or NUL (a damaged directory) are left out.
    public func children(of node: Node) throws -> [Node] {
        let entries = try filesystem(node).directoryEntries(node.inode)
        var nodes: [Node] = []
        for entry in entries.sorted(by: { $0.name.lexicographicallyPrecedes($1.name) }) {
            guard entry.name != Array(".".utf8), entry.name != Array("..".utf8), !entry.name.isEmpty,
                  !entry.name.contains(0x2F), !entry.name.contains(0) else { continue }
            let path = (node.path == "/" ? "" : node.path) + "/" + entry.nameString
            let (index, inner) = route(path)
            if index != node.filesystemIndex && inner == "/" {
                nodes.append(Node(path: path, filesystemIndex: index, inode: ext2RootInode))
            } else {
                nodes.append(Node(path: path, filesystemIndex: node.filesystemIndex, inode: entry.inode))
            }
        }
        return nodes
    }

    /// What `ls -l` shows of a node; owner names come from the guest's own /etc/passwd and /etc/group.
    public func info(_ node: Node) throws -> Info {
        let inode = try inode(node)
        let kind: String
        var device: [UInt32]?
        switch inode.kind {
        case .regular: kind = "file"
        case .directory: kind = "directory"
        case .symlink: kind = "symlink"
        case .characterDevice: kind = "character device"
        case .blockDevice: kind = "block device"
        case .fifo: kind = "fifo"
        case .socket: kind = "socket"
        default: kind = "unknown"
        }
        if inode.kind == .characterDevice || inode.kind == .blockDevice {
            let numbers = Self.deviceNumbers(inode)
            device = [numbers.major, numbers.minor]
        }
        return Info(path: node.path, name: GuestPathResolver.split(node.path)?.name ?? "/", type: kind, mode: inode.mode,
                    links: inode.linksCount, uid: inode.uid, gid: inode.gid,
                    user: accounts.users[inode.uid], group: accounts.groups[inode.gid], size: inode.size,
                    modified: Self.seconds(inode.times.modification, extra: inode.times.hasExtra ? inode.times.modificationExtra : 0),
                    target: inode.kind == .symlink ? try linkTarget(node) : nil, device: device)
    }

    /// A device number as the kernel stores it: the old 8+8-bit form in the first block word,
    /// else the new 12+20-bit form in the second.
    static func deviceNumbers(_ inode: Ext2Inode) -> (major: UInt32, minor: UInt32) {
        let words = inode.blockMap
        if words[0] != 0 { return ((words[0] >> 8) & 0xFF, words[0] & 0xFF) }
        let dev = words[1]
        return ((dev & 0xFFF00) >> 8, (dev & 0xFF) | ((dev >> 12) & 0xFFF00))
    }

    /// Seconds since the epoch from an inode time: the extra word's low two bits extend the
    /// signed 32-bit seconds past 2038.
    static func seconds(_ seconds: UInt32, extra: UInt32) -> Int64 {
        Int64(Int32(bitPattern: seconds)) + (Int64(extra & 3) << 32)
    }

    static func nanoseconds(extra: UInt32) -> Int { Int(extra >> 2) }

    /// The size of a regular file as it is copied: a size no file here can have (a damaged inode)
    /// is cut to the end of the last block the file holds.
    func dataSize(_ node: Node, _ inode: Ext2Inode, map: Ext2BlockMap) -> UInt64 {
        let fs = filesystem(node)
        let limit = fs.maximumFileSize(extents: inode.flags & Ext2InodeFlags.extents != 0)
        guard inode.size > limit else { return inode.size }
        let blockSize = UInt64(fs.blockSize)
        return map.runs.last.map { min(($0.logical + $0.count) * blockSize, limit / blockSize * blockSize) } ?? 0
    }

    /// Calls `body` with the file's data in order, each piece with its byte offset; holes are
    /// skipped (the caller writes zeros or leaves a hole). Returns the file's size.
    @discardableResult
    public func readData(_ node: Node, _ body: (UnsafeRawBufferPointer, UInt64) throws -> Void) throws -> UInt64 {
        let fs = filesystem(node)
        let inode = try inode(node)
        guard inode.kind == .regular else {
            throw FileAccessError.notARegularFile(image: image, path: node.path, found: inode.article)
        }
        if inode.flags & 0x1000_0000 != 0 {
            // Inline data lives in the inode itself: small enough to read whole.
            let bytes = try fs.readWholeFile(node.inode)
            try bytes.withUnsafeBytes { try body($0, 0) }
            return UInt64(bytes.count)
        }
        let map = try fs.checkedBlockMap(node.inode)
        let size = dataSize(node, inode, map: map)
        let blockSize = UInt64(fs.blockSize)
        let chunkBlocks = max(1, (1 << 20) / Int(blockSize))
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkBlocks * Int(blockSize), alignment: 4096)
        defer { buffer.deallocate() }
        let endBlock = (size + blockSize - 1) / blockSize
        for run in map.runs where run.logical < endBlock {
            let runEnd = min(run.logical + run.count, endBlock)
            var block = run.logical
            while block < runEnd {
                let count = Int(min(UInt64(chunkBlocks), runEnd - block))
                try fs.readBlocks(run.physical + (block - run.logical), count: count, into: buffer.baseAddress!)
                let offset = block * blockSize
                let length = Int(min(UInt64(count) * blockSize, size - offset))
                try body(UnsafeRawBufferPointer(rebasing: buffer[0..<length]), offset)
                block += UInt64(count)
            }
        }
        return size
    }

    /// A small regular file's contents, following symlinks; nil when missing or not a file.
    func readSmallFile(_ path: String) throws -> [UInt8]? {
        guard let node = try? resolve(path, followLast: true), try inode(node).kind == .regular else { return nil }
        return try filesystem(node).readWholeFile(node.inode, limit: 4 << 20)
    }
}

/// The guest's own users and groups, by number: never the host's, whose numbers mean other people.
struct GuestAccounts {
    var users: [UInt32: String] = [:]
    var groups: [UInt32: String] = [:]

    init(_ tree: GuestFileTree) {
        users = Self.parse((try? tree.readSmallFile("/etc/passwd")) ?? nil)
        groups = Self.parse((try? tree.readSmallFile("/etc/group")) ?? nil)
    }

    /// `name:password:number:...` lines; the first name given a number wins, as getpwuid does.
    static func parse(_ bytes: [UInt8]?) -> [UInt32: String] {
        guard let bytes else { return [:] }
        var names: [UInt32: String] = [:]
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") {
            let fields = line.split(separator: ":", omittingEmptySubsequences: false)
            guard fields.count >= 3, !fields[0].isEmpty, let number = UInt32(fields[2]), names[number] == nil else { continue }
            names[number] = String(fields[0])
        }
        return names
    }
}
