import Ext2
import ImageCore

/// Copies every file of one ext2/3/4 filesystem into a newly formatted one, file by file through
/// libext2fs: regular files with their holes, directories, fast and slow symlinks, hard links,
/// device nodes, FIFOs, sockets, owners, modes, timestamps, extended attributes and inode flags.
/// Inode numbers are not kept; everything a guest can observe is.
///
/// The source is not trusted: a hostile or damaged filesystem must neither stop the copy for ever
/// nor make the new filesystem inconsistent. Each directory is copied once (a second entry for a
/// directory, a hard-linked directory or a loop back to an ancestor, is skipped); entries naming
/// reserved or out-of-range inodes, or inodes of no known type, are skipped; data blocks outside
/// the source filesystem read as zeros; a size no file can have is cut to what the blocks hold;
/// link counts are those of the entries actually copied. Each is said in `warnings`.
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
        /// Problems found in the source filesystem (each is also in `warnings`, up to a limit).
        public var sourceProblems = 0

        public init() {}

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
            sourceProblems += other.sourceProblems
        }
    }

    /// What was wrong in the source and how the copy dealt with it, one line each, capped at
    /// `warningLimit` lines plus one that counts the rest.
    public private(set) var warnings: [String] = []
    public static let warningLimit = 50
    /// Directories nested deeper than this are not copied: the copy recurses once per level, and
    /// a hostile filesystem can nest directories without end. (A path of this depth is already
    /// longer than Linux's PATH_MAX of 4096 bytes when its names are one byte long.)
    public static let maximumDepth = 1024
    private var depth = 0

    let source: Ext2Filesystem
    let destination: Ext2Filesystem
    let progress: (UInt64) -> Void
    private var hardLinkTargets: [InodeNumber: InodeNumber] = [:]
    /// The parent of every directory the copy created, for its ".." entry.
    private var parents: [InodeNumber: InodeNumber] = [:]
    /// Every source directory copied so far, with its path: a second entry for one is skipped.
    private var copiedDirectories: [InodeNumber: [UInt8]] = [:]
    /// Created non-directories whose source link count was not 1: the count they were given and
    /// the entries actually linked, corrected at the end when they differ.
    private var linkCounts: [InodeNumber: (given: UInt16, linked: UInt16)] = [:]
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

    /// Copies the source's whole tree into the destination's root.
    public func copy() throws -> Statistics {
        // The root and lost+found exist already, so their entries are linked one by one; every
        // other directory is new and gets all its entries written at once.
        let lostFound = try destination.lookup("/lost+found", followLast: false)
        return try copyTree(to: ext2RootInode, existingLostFound: lostFound, skipLostFound: false)
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
        return try copyTree(to: target, existingLostFound: nil, skipLostFound: true)
    }

    private func copyTree(to target: InodeNumber, existingLostFound: InodeNumber?, skipLostFound: Bool) throws -> Statistics {
        try source.checkRootDirectory()
        copiedDirectories[ext2RootInode] = []
        try copyDirectory(from: ext2RootInode, to: target, path: [], isNew: false, existingLostFound: existingLostFound,
                          skipLostFound: skipLostFound)
        try applyMetadata(from: try source.readInode(ext2RootInode), sourceInode: ext2RootInode, path: [], to: target)
        try correctLinkCounts()
        if statistics.sourceProblems > Self.warningLimit {
            warnings.append("\(statistics.sourceProblems - Self.warningLimit) more problems in the source filesystem")
        }
        return statistics
    }

    /// Records a problem of the source; the copy goes on.
    private func warn(_ path: [UInt8], _ problem: String) {
        statistics.sourceProblems += 1
        if statistics.sourceProblems <= Self.warningLimit {
            warnings.append("corrupt source: \(Self.display(path)): \(problem)")
        }
    }

    static func display(_ path: [UInt8]) -> String {
        path.isEmpty ? "/" : path.escapedForTerminal
    }

    private func copyDirectory(from sourceDir: InodeNumber, to destinationDir: InodeNumber, path: [UInt8], isNew: Bool,
                               existingLostFound: InodeNumber? = nil, skipLostFound: Bool = false) throws {
        depth += 1
        defer { depth -= 1 }
        var entries: [Ext2NewEntry] = []
        let sourceEntries: [Ext2DirectoryEntry]
        do {
            sourceEntries = try source.directoryEntries(sourceDir)
        } catch let error as Ext2Error {
            warn(path, "the directory cannot be read (\(error.message)); copied empty")
            sourceEntries = []
        }
        var names = Set<[UInt8]>()
        for entry in sourceEntries {
            if skipLostFound, entry.name == Array("lost+found".utf8) { continue }
            let entryPath = path + [0x2F] + entry.name
            // A name no file may have, or one the directory already holds, would make the new
            // filesystem one e2fsck repairs.
            if entry.name.isEmpty || entry.name.contains(0x2F) || entry.name.contains(0) {
                warn(entryPath, "the name holds a '/' or a NUL byte, which no file name may; skipped")
                continue
            }
            guard names.insert(entry.name).inserted else {
                warn(entryPath, "a second entry of this name in the directory; skipped")
                continue
            }
            guard entry.inode == ext2RootInode || entry.inode >= source.firstInode, entry.inode <= source.inodesCount else {
                warn(entryPath, "the entry names inode \(entry.inode), \(entry.inode > source.inodesCount ? "beyond the filesystem's \(source.inodesCount) inodes" : "a reserved inode"); skipped")
                continue
            }
            let inode = try source.readInode(entry.inode)
            if inode.kind == .directory, let first = copiedDirectories[entry.inode] {
                let what = entryPath.starts(with: first + [0x2F]) || first.isEmpty ? "a loop back to the ancestor" : "a second link to the"
                warn(entryPath, "\(what) directory \(Self.display(first)) (inode \(entry.inode)); skipped")
                continue
            }
            if inode.kind == .directory && depth >= Self.maximumDepth {
                warn(entryPath, "directories are nested more than \(Self.maximumDepth) deep here; skipped")
                continue
            }
            if inode.kind == .unknown {
                warn(entryPath, "inode \(entry.inode) is \(inode.article) (mode 0o\(String(inode.mode, radix: 8))); skipped")
                continue
            }
            let created: InodeNumber
            if inode.kind != .directory, let existing = hardLinkTargets[entry.inode] {
                created = existing
                linkCounts[existing]?.linked += 1
                statistics.hardLinks += 1
            } else if let lostFound = existingLostFound, entry.name == Array("lost+found".utf8) {
                guard inode.kind == .directory else {
                    warn(entryPath, "\(inode.article) where the root's lost+found directory must be; skipped")
                    continue
                }
                copiedDirectories[entry.inode] = entryPath
                try copyDirectory(from: entry.inode, to: lostFound, path: entryPath, isNew: false)
                try applyMetadata(from: inode, sourceInode: entry.inode, path: entryPath, to: lostFound)
                statistics.directories += 1
                continue
            } else if let copy = try copyInode(entry, inode, path: entryPath, into: destinationDir) {
                created = copy
            } else {
                continue
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

    /// Creates the copy of one inode (unnamed: the caller names it) with its data and metadata;
    /// nil when it is skipped.
    private func copyInode(_ entry: Ext2DirectoryEntry, _ inode: Ext2Inode, path: [UInt8], into destinationDir: InodeNumber) throws -> InodeNumber? {
        let created: InodeNumber
        switch inode.kind {
        case .directory:
            copiedDirectories[entry.inode] = path
            created = try destination.createDirectory(parent: destinationDir)
            parents[created] = destinationDir
            try copyDirectory(from: entry.inode, to: created, path: path, isNew: true)
            statistics.directories += 1
        case .regular:
            created = try destination.createNode(parent: destinationDir, inode: inode)
            try copyData(of: entry.inode, inode, path: path, to: created)
            statistics.regularFiles += 1
        case .symlink:
            guard let target = linkTarget(entry.inode, path: path) else { return nil }
            created = try destination.createSymlink(parent: destinationDir, target: target)
            statistics.symlinks += 1
        case .characterDevice, .blockDevice, .fifo, .socket, .unknown:
            created = try destination.createNode(parent: destinationDir, inode: inode)
            statistics.specialFiles += 1
        }
        try applyMetadata(from: inode, sourceInode: entry.inode, path: path, to: created)
        if inode.kind != .directory && inode.linksCount != 1 {
            linkCounts[created] = (inode.linksCount, 1)
            if inode.linksCount > 1 { hardLinkTargets[entry.inode] = created }
        }
        return created
    }

    /// A symlink's target, or nil (with a warning) when it cannot be read or is empty: longer than
    /// a block, which no filesystem holds, or in blocks that cannot be read.
    private func linkTarget(_ ino: InodeNumber, path: [UInt8]) -> [UInt8]? {
        let problem: String
        do {
            let target = try source.readLink(ino)
            if !target.isEmpty { return target }
            problem = "empty"
        } catch let error as Ext2FormatError {
            problem = "\(error)"
        } catch let error as Ext2Error {
            problem = error.message
        } catch {
            problem = "\(error)"
        }
        warn(path, "the symbolic link's target cannot be read (\(problem)); skipped")
        return nil
    }

    /// Link counts as the copy made them: a source count that disagrees with the entries found
    /// (entries lost in a skipped directory, a count of 0 on a file still named) is corrected.
    private func correctLinkCounts() throws {
        var corrected = 0
        for (ino, counts) in linkCounts.sorted(by: { $0.key < $1.key }) where counts.given != counts.linked {
            var inode = try destination.readInode(ino)
            inode.linksCount = counts.linked
            try destination.writeInode(ino, inode)
            corrected += 1
        }
        if corrected > 0 {
            statistics.sourceProblems += 1
            warnings.append("corrupt source: \(corrected) file\(corrected == 1 ? "" : "s") had a link count other than the number of their entries; corrected")
        }
    }

    private func parentOf(_ dir: InodeNumber) throws -> InodeNumber {
        guard let parent = parents[dir] else {
            throw Ext2FormatError.unsupported(image: destination.image, path: "inode \(dir)", what: "a directory of unknown parent")
        }
        return parent
    }

    /// Copies the mapped blocks only, so holes stay holes. Blocks mapped past the end of the file
    /// (preallocated space) are not copied: ext3 has no way to keep them. A size no file of the
    /// source or the new filesystem can have is cut to the end of the last block copied.
    private func copyData(of sourceIno: InodeNumber, _ inode: Ext2Inode, path: [UInt8], to destinationIno: InodeNumber) throws {
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
        let map = try source.checkedBlockMap(sourceIno)
        for problem in map.problems { warn(path, problem) }
        let limit = min(source.maximumFileSize(extents: inode.flags & Ext2InodeFlags.extents != 0),
                        destination.maximumFileSize(extents: destination.hasExtents))
        var size = inode.size
        if size > limit {
            let held = map.runs.last.map { min(($0.logical + $0.count) * blockSize, limit / blockSize * blockSize) } ?? 0
            warn(path, "its size, \(size) bytes, is more than a file can have here (at most \(limit)); copied with the \(held) bytes its blocks hold")
            size = held
        }
        let endBlock = (size + blockSize - 1) / blockSize
        let writer = try Ext2Filesystem.BlockWriter(destination, destinationIno)
        for run in map.runs where run.logical < endBlock {
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
        try writer.finish(size: size)
        progress(statistics.bytesCopied)
    }

    /// Owner, mode, times, flags, link count and extended attributes, written after the data so
    /// nothing the copy does afterwards changes them.
    private func applyMetadata(from sourceInode: Ext2Inode, sourceInode ino: InodeNumber, path: [UInt8],
                               to destinationIno: InodeNumber) throws {
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
        let attributes: [(name: String, value: [UInt8])]
        do {
            attributes = try source.extendedAttributes(ino)
        } catch let error as Ext2Error {
            // A damaged attribute block (outside the filesystem, a bad header) loses the
            // attributes, not the file.
            warn(path, "its extended attributes cannot be read (\(error.message)); copied without them")
            return
        }
        if !attributes.isEmpty {
            try destination.setExtendedAttributes(destinationIno, attributes)
            statistics.extendedAttributes += attributes.count
        }
    }
}
