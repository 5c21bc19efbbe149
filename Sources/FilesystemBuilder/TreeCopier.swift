import Ext2
import ImageCore

/// Copies every file of one ext2/3/4 filesystem into a newly formatted one, file by file through
/// libext2fs: regular files with their holes, directories, fast and slow symlinks, hard links,
/// device nodes, FIFOs, sockets, owners, modes, timestamps, extended attributes and inode flags.
/// Inode numbers are not kept; everything a guest can observe is.
public final class TreeCopier {
    public struct Statistics: Sendable, Codable {
        public var directories = 0
        public var regularFiles = 0
        public var symlinks = 0
        public var hardLinks = 0
        public var specialFiles = 0
        public var extendedAttributes = 0
        public var bytesCopied: UInt64 = 0
        /// Inodes whose sub-second timestamps could not be stored in the destination's small inodes.
        public var truncatedTimestamps = 0

        /// Adds another copy's counts (a merged filesystem's).
        public mutating func add(_ other: Statistics) {
            directories += other.directories
            regularFiles += other.regularFiles
            symlinks += other.symlinks
            hardLinks += other.hardLinks
            specialFiles += other.specialFiles
            extendedAttributes += other.extendedAttributes
            bytesCopied += other.bytesCopied
            truncatedTimestamps += other.truncatedTimestamps
        }
    }

    let source: Ext2Filesystem
    let destination: Ext2Filesystem
    let progress: (UInt64) -> Void
    private var hardLinkTargets: [InodeNumber: InodeNumber] = [:]
    /// The parent of every directory the copy created, for its ".." entry.
    private var parents: [InodeNumber: InodeNumber] = [:]
    private var statistics = Statistics()
    private let chunkBlocks: Int
    private var buffer: UnsafeMutableRawBufferPointer

    /// `progress` is called with the number of data bytes copied so far.
    public init(from source: Ext2Filesystem, to destination: Ext2Filesystem, progress: @escaping (UInt64) -> Void = { _ in }) {
        self.source = source
        self.destination = destination
        self.progress = progress
        chunkBlocks = max(1, (1 << 20) / source.blockSize)
        buffer = .allocate(byteCount: chunkBlocks * source.blockSize, alignment: 4096)
    }

    deinit { buffer.deallocate() }

    public func copy() throws -> Statistics {
        // The root and lost+found exist already, so their entries are linked one by one; every
        // other directory is new and gets all its entries written at once.
        let lostFound = try destination.lookup("/lost+found", followLast: false)
        try copyDirectory(from: ext2RootInode, to: ext2RootInode, isNew: false, existingLostFound: lostFound)
        try applyMetadata(from: try source.readInode(ext2RootInode), sourceInode: ext2RootInode, to: ext2RootInode)
        return statistics
    }

    /// Copies the source's tree into `directory` of the destination, an existing directory (the
    /// mount point of a filesystem merged into the new root, as `/boot`), which takes the source
    /// root's owner, mode, times and attributes. The source's lost+found is left out: it belongs
    /// to the source filesystem, not to the tree.
    public func copy(into directory: String) throws -> Statistics {
        guard let target = try destination.lookup(directory, followLast: false),
              try destination.readInode(target).kind == .directory else {
            throw Ext2FormatError.notADirectory(image: destination.image, path: directory)
        }
        try copyDirectory(from: ext2RootInode, to: target, isNew: false, skipLostFound: true)
        try applyMetadata(from: try source.readInode(ext2RootInode), sourceInode: ext2RootInode, to: target)
        return statistics
    }

    private func copyDirectory(from sourceDir: InodeNumber, to destinationDir: InodeNumber, isNew: Bool,
                               existingLostFound: InodeNumber? = nil, skipLostFound: Bool = false) throws {
        var entries: [Ext2NewEntry] = []
        for entry in try source.directoryEntries(sourceDir) {
            if skipLostFound, entry.name == Array("lost+found".utf8) { continue }
            let inode = try source.readInode(entry.inode)
            let created: InodeNumber
            if inode.kind != .directory, let existing = hardLinkTargets[entry.inode] {
                created = existing
                statistics.hardLinks += 1
            } else if let lostFound = existingLostFound, inode.kind == .directory, entry.name == Array("lost+found".utf8) {
                try copyDirectory(from: entry.inode, to: lostFound, isNew: false)
                try applyMetadata(from: inode, sourceInode: entry.inode, to: lostFound)
                statistics.directories += 1
                continue
            } else {
                created = try copyInode(entry, inode, into: destinationDir)
            }
            if isNew {
                entries.append(Ext2NewEntry(name: entry.name, inode: created, fileType: inode.directoryFileType))
            } else {
                try destination.link(parent: destinationDir, name: entry.name, inode: created, fileType: inode.directoryFileType)
            }
        }
        if isNew {
            try destination.fillNewDirectory(destinationDir, parent: try parentOf(destinationDir), entries: entries)
        }
    }

    /// Creates the copy of one inode (unnamed: the caller names it) with its data and metadata.
    private func copyInode(_ entry: Ext2DirectoryEntry, _ inode: Ext2Inode, into destinationDir: InodeNumber) throws -> InodeNumber {
        let created: InodeNumber
        switch inode.kind {
        case .directory:
            created = try destination.createDirectory(parent: destinationDir)
            parents[created] = destinationDir
            try copyDirectory(from: entry.inode, to: created, isNew: true)
            statistics.directories += 1
        case .regular:
            created = try destination.createNode(parent: destinationDir, inode: inode)
            try copyData(of: entry.inode, inode, to: created)
            statistics.regularFiles += 1
        case .symlink:
            created = try destination.createSymlink(parent: destinationDir, target: try source.readLink(entry.inode))
            statistics.symlinks += 1
        case .characterDevice, .blockDevice, .fifo, .socket:
            created = try destination.createNode(parent: destinationDir, inode: inode)
            statistics.specialFiles += 1
        case .unknown:
            throw Ext2FormatError.unsupported(image: source.image, path: "inode \(entry.inode) (\(entry.nameString))",
                                              what: "file type 0o" + String(inode.mode & 0o170000, radix: 8))
        }
        try applyMetadata(from: inode, sourceInode: entry.inode, to: created)
        if inode.kind != .directory && inode.linksCount > 1 { hardLinkTargets[entry.inode] = created }
        return created
    }

    private func parentOf(_ dir: InodeNumber) throws -> InodeNumber {
        guard let parent = parents[dir] else {
            throw Ext2FormatError.unsupported(image: destination.image, path: "inode \(dir)", what: "a directory of unknown parent")
        }
        return parent
    }

    /// Copies the mapped blocks only, so holes stay holes. Blocks mapped past the end of the file
    /// (preallocated space) are not copied: ext3 has no way to keep them.
    private func copyData(of sourceIno: InodeNumber, _ inode: Ext2Inode, to destinationIno: InodeNumber) throws {
        if inode.flags & 0x1000_0000 != 0 {
            // Inline data lives in the inode itself: small enough to read whole.
            let writer = try Ext2Filesystem.FileWriter(destination, destinationIno)
            let bytes = try source.readWholeFile(sourceIno)
            try bytes.withUnsafeBytes { try writer.write($0, at: 0) }
            try writer.truncate(to: inode.size)
            try writer.close()
            return
        }
        let blockSize = UInt64(source.blockSize)
        let endBlock = (inode.size + blockSize - 1) / blockSize
        let writer = try Ext2Filesystem.BlockWriter(destination, destinationIno)
        for run in try source.blockRuns(sourceIno) where run.logical < endBlock {
            let runEnd = min(run.logical + run.count, endBlock)
            var block = run.logical
            while block < runEnd {
                let count = Int(min(UInt64(chunkBlocks), runEnd - block))
                try source.readBlocks(run.physical + (block - run.logical), count: count, into: buffer.baseAddress!)
                try writer.write(UnsafeRawBufferPointer(rebasing: buffer[0..<(count * Int(blockSize))]), atBlock: block)
                block += UInt64(count)
                statistics.bytesCopied += UInt64(count) * blockSize
            }
        }
        try writer.finish(size: inode.size)
        progress(statistics.bytesCopied)
    }

    /// Owner, mode, times, flags, link count and extended attributes, written after the data so
    /// nothing the copy does afterwards changes them.
    private func applyMetadata(from sourceInode: Ext2Inode, sourceInode ino: InodeNumber, to destinationIno: InodeNumber) throws {
        var inode = try destination.readInode(destinationIno)
        inode.mode = sourceInode.mode
        inode.uid = sourceInode.uid
        inode.gid = sourceInode.gid
        inode.generation = sourceInode.generation
        inode.flags = (inode.flags & ~Ext2InodeFlags.semantic) | (sourceInode.flags & Ext2InodeFlags.semantic)
        if sourceInode.kind != .directory { inode.linksCount = sourceInode.linksCount }
        var times = sourceInode.times
        if destination.inodeSize <= 128 {
            if times.usesExtraPrecision { statistics.truncatedTimestamps += 1 }
            times.hasExtra = false
        }
        inode.times = times
        try destination.writeInode(destinationIno, inode)
        let attributes = try source.extendedAttributes(ino)
        if !attributes.isEmpty {
            try destination.setExtendedAttributes(destinationIno, attributes)
            statistics.extendedAttributes += attributes.count
        }
    }
}
