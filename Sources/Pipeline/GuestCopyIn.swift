import Ext2
import GuestFixups
import ImageCore
import ImageFormats
import Volumes

#if canImport(Glibc)
import Glibc
#endif

/// What `copy-in` wrote into the image.
public struct CopyInReport: Encodable, Sendable {
    public var image: String
    /// The guest directory the files went into, resolved inside the guest.
    public var directory: String
    /// The filesystem written: the input file and the byte offset of the partition or volume.
    public var filesystemOffset: UInt64
    public var files = 0
    public var directories = 0
    public var symlinks = 0
    public var bytes: UInt64 = 0
    /// The planning estimate checked against the free space before writing.
    public var estimatedBlocks: UInt64 = 0
    public var blockSize: UInt64 = 0
    public var freeBlocksBefore: UInt64 = 0
}

/// Copies host files and trees into a guest directory, in place: modes and times kept, owners
/// root:root or the ones asked for, holes kept. Raw input (a bare filesystem or a partitioned raw
/// disk) is written through libext2fs at the filesystem's offset in the file; qcow2 input through
/// libext2fs into pages staged in memory, then into the image's clusters by `QCOW2InPlaceWriter`
/// once the filesystem is complete; VDI, VHD and monolithicSparse VMDK input likewise through
/// their `InPlaceDiskWriter`s. gzip and OVA input (and other VMDK layouts) is refused, naming the way round.
///
/// libext2fs has no transactions, so every check comes before the first write: the input's
/// format, the guest directory, names already there, the journal's state, and the blocks and
/// inodes the copy can take (an estimate that errs high), against what the filesystem has free;
/// and the image must not be in use (qemu's locks).
public enum GuestCopyIn {
    /// Directories nested deeper are refused: the copy recurses once per level.
    public static let maximumDepth = 1024

    public static func copy(_ hostPaths: [String], into guestDirectory: String, image: String, owner: (uid: UInt32, gid: UInt32),
                            partition: Int?, scratchDirectory: String?, externalFiles: ExternalFiles,
                            maxOutputSize: UInt64?) throws -> CopyInReport {
        let items = try hostPaths.map { try readHost($0, name: try entryName($0), depth: 0) }
        var seen: Set<[UInt8]> = []
        for item in items where !seen.insert(item.name).inserted {
            throw FileAccessError.badName(path: item.hostPath, reason: "a second source with the name \(String(decoding: item.name, as: UTF8.self))")
        }
        try refuseContainers(image)
        let (target, inner, report, tree) = try plan(items, guestDirectory: guestDirectory, image: image, partition: partition,
                                                     scratchDirectory: scratchDirectory, externalFiles: externalFiles,
                                                     maxOutputSize: maxOutputSize)
        let written = try GuestEditSession.edit(target, image: image, hostBytes: report.estimatedBlocks * report.blockSize) { fs in
            try write(items, into: fs, inner: inner, guestDirectory: guestDirectory, image: image, owner: owner, report: report)
        }
        withExtendedLifetime(tree) {}
        return written
    }

    /// gzip, xz, zstd and OVA inputs are refused before they are opened: opening would expand or copy
    /// them into scratch space only to say no. (Everything else is told apart once open.)
    static func refuseContainers(_ image: String) throws {
        guard let file = try? RawFile(path: image, mode: .readOnly), let size = try? file.size, size >= 262,
              let head = try? file.read(count: 262, at: 0) else { return }
        if head[0] == 0x1F && head[1] == 0x8B { throw FileAccessError.compressedInput(path: image) }
        if head.starts(with: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]) { throw FileAccessError.compressedInput(path: image, format: "xz") }
        if head.starts(with: [0x28, 0xb5, 0x2f, 0xfd]) { throw FileAccessError.compressedInput(path: image, format: "zstd") }
        if Array(head[257..<262]) == Array("ustar".utf8) { throw FileAccessError.readOnlyInput(path: image, format: "OVA (a tar archive)") }
    }

    /// Where `disk` lies on `base` when it is one run of it: `base` itself, a slice (a partition),
    /// or an LV in one piece on one, as `fileLocation` finds a run of a plain file.
    static func offset(of disk: any RandomAccessDisk, on base: any RandomAccessDisk, adding offset: UInt64 = 0) -> UInt64? {
        if disk === base { return offset }
        if let slice = disk as? DiskSlice { return Self.offset(of: slice.base, on: base, adding: slice.offset + offset) }
        if let lv = disk as? LVM2.LogicalVolumeDisk, let run = lv.contiguousRun {
            return Self.offset(of: run.disk, on: base, adding: run.offset + offset)
        }
        return nil
    }

    /// A sparse raw image takes host space as libext2fs fills its holes: the estimate (and 1 MiB
    /// for the bitmaps and inode-table blocks touched) must fit, so a full host disk cannot stop
    /// the copy half-way. A fully allocated image needs none.
    static func checkHostSpace(_ path: String, bytes: UInt64) throws {
        var st = stat(), vfs = statvfs()
        guard stat(path, &st) == 0, st.st_mode & S_IFMT == S_IFREG, UInt64(st.st_blocks) * 512 < UInt64(st.st_size),
              statvfs(path, &vfs) == 0 else { return }
        let free = UInt64(vfs.f_bavail) * UInt64(vfs.f_frsize)
        guard free >= bytes + (1 << 20) else { throw InPlaceWriteError.hostSpace(path: path, needed: bytes + (1 << 20), free: free) }
    }

    /// The most a copy-in into a qcow2, VDI, VHD or VMDK image holds in memory before writing it.
    public static var stagingLimit: UInt64 { GuestEditSession.stagingLimit }

    typealias Target = GuestEditSession.Target

    // MARK: Checks

    /// Everything checked with the input open read-only: where the files go, that the input can
    /// be written there, and that they fit.
    static func plan(_ items: [HostItem], guestDirectory: String, image: String, partition: Int?, scratchDirectory: String?,
                     externalFiles: ExternalFiles, maxOutputSize: UInt64?)
        throws -> (target: Target, inner: String, report: CopyInReport, tree: GuestFileTree) {
        let tree = try GuestFileTree(path: image, partition: partition, scratchDirectory: scratchDirectory,
                                     externalFiles: externalFiles, maxOutputSize: maxOutputSize)
        _ = try GuestEditSession.stagedFormat(tree, stageRaw: false)
        let directory = try tree.resolve(guestDirectory, followLast: true)
        guard try tree.isDirectory(directory) else { throw FileAccessError.notADirectory(image: image, path: guestDirectory) }
        for item in items {
            let path = (directory.path == "/" ? "" : directory.path) + "/" + String(decoding: item.name, as: UTF8.self)
            if try tree.node(atCanonical: path) != nil { throw FileAccessError.guestExists(image: image, path: path) }
        }
        let (mountPoint, fs) = tree.filesystems[directory.filesystemIndex]
        let target = try GuestEditSession.target(tree, mountPoint: mountPoint, path: directory.path, stageRaw: false)
        let inPlaceFormat: ImageFormat? = { if case let .image(format, _, _, _) = target { return format } else { return nil } }()
        let need = estimate(items, blockSize: UInt64(fs.blockSize))
        let what = items.count == 1 ? items[0].hostPath : "\(items.count) sources"
        guard need.inodes <= UInt64(fs.freeInodesCount) else {
            throw FileAccessError.noInodes(image: image, path: what, needed: need.inodes, free: UInt64(fs.freeInodesCount))
        }
        guard need.blocks <= fs.freeBlocksCount else {
            throw FileAccessError.noSpace(image: image, path: what, neededBlocks: need.blocks, freeBlocks: fs.freeBlocksCount,
                                          blockSize: fs.blockSize)
        }
        if inPlaceFormat != nil, need.blocks * UInt64(fs.blockSize) > stagingLimit {
            throw FileAccessError.stagingLimit(image: image, limit: stagingLimit)
        }
        let inner = tree.route(directory.path).inner
        var report = CopyInReport(image: image, directory: directory.path, filesystemOffset: target.offset)
        report.estimatedBlocks = need.blocks
        report.blockSize = UInt64(fs.blockSize)
        report.freeBlocksBefore = fs.freeBlocksCount
        for item in items {
            if case let .symlink(target) = item.kind, target.count >= fs.blockSize {
                throw FileAccessError.symlinkTooLong(path: item.hostPath, length: target.count, limit: fs.blockSize - 1)
            }
        }
        return (target, inner, report, tree)
    }

    /// Blocks and inodes the copy may take, erring high: every block a data range touches, the
    /// indirect (or extent) blocks its span may need, a directory's blocks for its entries, a
    /// slow symlink's block, and the destination directory's growth.
    static func estimate(_ items: [HostItem], blockSize: UInt64) -> (blocks: UInt64, inodes: UInt64) {
        func divideUp(_ a: UInt64, _ b: UInt64) -> UInt64 { (a + b - 1) / b }
        func entryBytes(_ items: [HostItem]) -> UInt64 { items.reduce(24) { $0 + 8 + divideUp(UInt64($1.name.count), 4) * 4 } }
        let pointers = blockSize / 4
        var blocks: UInt64 = 0, inodes: UInt64 = 0
        func visit(_ item: HostItem) {
            inodes += 1
            switch item.kind {
            case let .file(size, data):
                for range in data where range.lowerBound < size {
                    let end = min(range.upperBound, size)
                    blocks += divideUp(end, blockSize) - range.lowerBound / blockSize
                }
                let span = divideUp(size, blockSize)
                if span > 12 { blocks += divideUp(span, pointers) + divideUp(span, pointers * pointers) + 1 }
            case let .directory(children):
                blocks += divideUp(entryBytes(children), blockSize) + 1
                children.forEach(visit)
            case let .symlink(target):
                if target.count >= 60 { blocks += 1 }
            }
        }
        items.forEach(visit)
        blocks += divideUp(entryBytes(items), blockSize) + 2
        return (blocks, inodes)
    }
}
