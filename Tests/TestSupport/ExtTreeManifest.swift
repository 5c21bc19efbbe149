import Foundation

/// An independent description of an ext2/3/4 filesystem tree, read with e2fsprogs' debugfs alone
/// (read-only, never our own libext2fs code), so it can judge what the converter wrote.
///
/// Cost: one debugfs process per directory depth to list the tree, one to `stat` every inode,
/// one to `dump` every file and fetch every xattr value, and `sha256sum` over the dumps.
public struct ExtTreeManifest: Sendable, Equatable {
    public let image: String
    public let offset: UInt64
    public let blockSize: UInt32
    /// Keyed by path: "/" for the root, "/lost+found", "/etc/fstab", ...
    public let entries: [String: ExtTreeEntry]

    public var paths: [String] { entries.keys.sorted() }
    public subscript(path: String) -> ExtTreeEntry? { entries[path] }

    /// Every path that names the same inode as `path` (itself included), sorted; directories have
    /// a single name.
    public func hardLinkGroup(of path: String) -> [String] {
        guard let entry = entries[path] else { return [] }
        if entry.kind == .directory { return [path] }
        return linkGroups[entry.inode] ?? [path]
    }

    private let linkGroups: [UInt32: [String]]

    public init(image: String, offset: UInt64, blockSize: UInt32, entries: [String: ExtTreeEntry]) {
        self.image = image
        self.offset = offset
        self.blockSize = blockSize
        self.entries = entries
        var groups: [UInt32: [String]] = [:]
        for entry in entries.values where entry.kind != .directory {
            groups[entry.inode, default: []].append(entry.path)
        }
        linkGroups = groups.mapValues { $0.sorted() }
    }

    public static func == (lhs: ExtTreeManifest, rhs: ExtTreeManifest) -> Bool {
        lhs.image == rhs.image && lhs.offset == rhs.offset && lhs.blockSize == rhs.blockSize && lhs.entries == rhs.entries
    }

    /// Reads the filesystem that starts `offset` bytes into `image`.
    public static func read(image: String, offset: UInt64 = 0) throws -> ExtTreeManifest {
        let session = DebugfsSession(image: image, offset: offset)
        let scratch = try TemporaryDirectory(prefix: "rehost-manifest")

        // 1. Walk the directories breadth first, one debugfs run per depth.
        let rootInode: UInt32 = 2
        let first = try session.run(["stats -h", "ls -p -r <\(rootInode)>"], scratch: scratch)
        guard let blockSize = DebugfsParsing.blockSize(first[0]) else {
            throw TestSupportError.debugfsOutput(image: session.displayName, command: "stats -h",
                                                 expected: "a \"Block size:\" line",
                                                 got: String(decoding: first[0].prefix(200), as: UTF8.self))
        }
        var listed: [(path: String, inode: UInt32, mode: UInt32)] = []
        var listings = [first[1]]
        var directories = [(path: "/", inode: rootInode)]
        guard let rootSelf = DebugfsParsing.listing(first[1]).first(where: { $0.name == Array(".".utf8) }) else {
            throw TestSupportError.debugfsOutput(image: session.displayName, command: "ls -p -r <2>",
                                                 expected: "a \".\" entry for the root",
                                                 got: String(decoding: first[1].prefix(200), as: UTF8.self))
        }
        listed.append(("/", rootInode, rootSelf.mode))
        var visitedDirectories: Set<UInt32> = [rootInode]
        while !directories.isEmpty {
            var next: [(path: String, inode: UInt32)] = []
            for (directory, listing) in zip(directories, listings) {
                for entry in DebugfsParsing.listing(listing) where entry.name != Array(".".utf8) && entry.name != Array("..".utf8) {
                    let name = String(decoding: entry.name, as: UTF8.self)
                    let path = directory.path == "/" ? "/\(name)" : "\(directory.path)/\(name)"
                    listed.append((path, entry.inode, entry.mode))
                    if FileKind(mode: entry.mode) == .directory, visitedDirectories.insert(entry.inode).inserted {
                        next.append((path, entry.inode))
                    }
                }
            }
            directories = next
            listings = try session.run(next.map { "ls -p -r <\($0.inode)>" }, scratch: scratch)
        }

        // 2. stat every inode once.
        let inodes = Array(Set(listed.map(\.inode))).sorted()
        let statOutputs = try session.run(inodes.map { "stat <\($0)>" }, scratch: scratch)
        var stats: [UInt32: StatReport] = [:]
        for (inode, output) in zip(inodes, statOutputs) {
            guard let report = DebugfsParsing.stat(output) else {
                throw TestSupportError.debugfsOutput(image: session.displayName, command: "stat <\(inode)>",
                                                     expected: "Inode, User, Links and time lines",
                                                     got: String(decoding: output.prefix(300), as: UTF8.self))
            }
            stats[inode] = report
        }

        // 3. Dump file contents and slow symlink targets, fetch xattr values exactly.
        let modes = Dictionary(listed.map { ($0.inode, $0.mode) }, uniquingKeysWith: { first, _ in first })
        var fetches: [(command: String, file: String)] = []
        var dumpedFiles: [UInt32: String] = [:], dumpedLinks: [UInt32: String] = [:]
        var xattrFiles: [UInt32: [(name: String, file: String)]] = [:]
        for inode in inodes {
            let kind = FileKind(mode: modes[inode] ?? 0)
            let report = stats[inode]!
            if kind == .file || (kind == .symlink && report.fastLinkTarget == nil) {
                let file = scratch.file("content-\(inode)")
                fetches.append(("dump <\(inode)> \(file)", file))
                if kind == .file { dumpedFiles[inode] = file } else { dumpedLinks[inode] = file }
            }
            for (index, name) in report.xattrNames.enumerated() {
                let file = scratch.file("xattr-\(inode)-\(index)")
                fetches.append(("ea_get -f \(file) <\(inode)> \"\(name)\"", file))
                xattrFiles[inode, default: []].append((name, file))
            }
        }
        _ = try session.run(fetches.map(\.command), scratch: scratch)
        for fetch in fetches where !FileManager.default.fileExists(atPath: fetch.file) {
            throw TestSupportError.debugfsFailed(image: session.displayName, command: fetch.command,
                                                 stderr: "it wrote no \(fetch.file)")
        }
        let digests = try sha256(files: Array(dumpedFiles.values))

        var entries: [String: ExtTreeEntry] = [:]
        for item in listed {
            let report = stats[item.inode]!
            let kind = FileKind(mode: item.mode)
            var xattrs: [String: [UInt8]] = [:]
            for (name, file) in xattrFiles[item.inode] ?? [] {
                xattrs[name] = Array(FileManager.default.contents(atPath: file) ?? Data())
            }
            var target: [UInt8]?
            if kind == .symlink {
                target = report.fastLinkTarget ?? dumpedLinks[item.inode].map { Array(FileManager.default.contents(atPath: $0) ?? Data()) }
            }
            entries[item.path] = ExtTreeEntry(
                path: item.path, inode: item.inode, kind: kind, permissions: UInt16(item.mode & 0o7777),
                uid: report.uid, gid: report.gid, size: report.size,
                atime: report.atime!, mtime: report.mtime!, ctime: report.ctime!,
                linkCount: report.linkCount, flags: InodeFlags(ondisk: report.flags), xattrs: xattrs,
                symlinkTarget: target,
                device: kind == .characterDevice || kind == .blockDevice ? report.device : nil,
                contentSHA256: dumpedFiles[item.inode].flatMap { digests[$0] },
                mappedBlocks: kind == .file ? report.mappedBlocks : nil)
        }
        return ExtTreeManifest(image: image, offset: offset, blockSize: blockSize, entries: entries)
    }

    /// Hashes with coreutils' sha256sum: fast even in debug builds, and one process per few hundred files.
    private static func sha256(files: [String]) throws -> [String: String] {
        var digests: [String: String] = [:]
        let tool = try Command.require("sha256sum")
        for start in stride(from: 0, to: files.count, by: 256) {
            let batch = Array(files[start..<min(files.count, start + 256)])
            let result = try Command.run(tool, ["--"] + batch).requireSuccess()
            for line in result.stdout.split(separator: "\n") {
                // "HEX  PATH"; our scratch paths contain no spaces, backslashes or newlines.
                let parts = line.split(separator: " ", maxSplits: 1)
                guard parts.count == 2 else { continue }
                digests[String(parts[1].drop { $0 == " " || $0 == "*" })] = String(parts[0])
            }
        }
        for file in files where digests[file] == nil {
            throw TestSupportError.commandFailed(commandLine: "sha256sum \(file)", status: 0, stderr: "no digest line for it")
        }
        return digests
    }
}
