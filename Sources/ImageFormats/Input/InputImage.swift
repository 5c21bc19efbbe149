import Blkid
import Compression
import ImageCore
#if canImport(Glibc)
import Glibc
#endif

/// What an input file is, and where in which file its ext2/3/4 root filesystem lies.
public indirect enum InputKind: Sendable, Equatable {
    case bareFilesystem
    case partitionedDisk(table: String, partitions: [PartitionProbe])
    case gzip(inner: InputKind)
    /// An xz or zstd file (`x.raw.xz`, `x.raw.zst`), expanded as gzip is.
    case compressed(format: StreamCompression, inner: InputKind)
    /// A qcow2, VMDK, VDI, VHD or OVA image; `variant` as its reader describes it.
    case diskImage(format: ImageFormat, variant: String, inner: InputKind)
}

/// Which partition of a disk was taken as the root filesystem, and why.
public struct RootPartitionChoice: Sendable, Equatable {
    public var number: Int
    public var reason: String
}

/// An input opened read-only and identified. Raw input is read as it is; qcow2, VMDK, VDI and
/// VHD input is read in place, through its format's tables (`disk`); an OVA's disk member is
/// copied out as stored (its declared size) and read in place there. Only gzip, xz and zstd input is expanded
/// into a sparse raw scratch copy. Scratch copies live as long as this object.
public final class InputImage {
    public let path: String
    public let kind: InputKind
    /// The whole virtual disk (or bare filesystem), as its format gives it.
    public let disk: any RandomAccessDisk
    /// The root filesystem's bytes: `filesystemSize` bytes of `disk` from `filesystemOffset`.
    public let filesystem: DiskSlice
    /// A file libext2fs can open itself (with `filesystemOffset` as its `offset=` option): the
    /// input for raw input, the expanded copy for gzip input; nil when the filesystem is read
    /// through `disk` (qcow2, VMDK, VDI, VHD, OVA).
    public let filesystemPath: String?
    public let filesystemOffset: UInt64
    /// The size the superblock gives (block count times block size).
    public let filesystemSize: UInt64
    public let probe: FilesystemProbe
    public let rootPartition: RootPartitionChoice?
    /// Every file the input was read from: its own path, and a VMDK descriptor's extent files.
    public let inputFiles: [String]
    private let scratch: ScratchFile?
    /// The copy an OVA's reader made of its disk member, alive as long as `disk`.
    private let readerScratchPath: String?

    /// The scratch copy: gzip input expanded, or an OVA's disk member (as stored, a
    /// streamOptimized VMDK); nil otherwise.
    public var temporaryPath: String? { scratch?.path ?? readerScratchPath }

    private init(path: String, kind: InputKind, disk: any RandomAccessDisk, filesystemPath: String?,
                 located: LocatedFilesystem, inputFiles: [String], scratch: ScratchFile?, readerScratchPath: String? = nil) throws {
        self.inputFiles = inputFiles
        self.readerScratchPath = readerScratchPath
        self.path = path
        self.kind = kind
        self.disk = disk
        self.filesystem = try DiskSlice(disk, offset: located.offset, size: located.size,
                                        name: located.offset > 0 ? "\(path) at byte \(located.offset)" : path)
        self.filesystemPath = filesystemPath
        self.filesystemOffset = located.offset
        self.filesystemSize = located.size
        self.probe = located.probe
        self.rootPartition = located.choice
        self.scratch = scratch
    }

    /// Identifies `path` (never writing to it). `partition` picks a partition number explicitly;
    /// otherwise the root is the Linux partition holding ext2/3/4 (bootable, else largest, if
    /// several). qcow2, VMDK, VDI and VHD input is read in place; an OVA's first disk member is
    /// copied as it is stored, gzip input expanded into a sparse raw copy, both in
    /// `scratchDirectory` (default $TMPDIR or /tmp). `externalFiles` says which files besides
    /// `path` the image may make Rehost open. What an expansion produces is bounded by
    /// `maxOutputSize` (nil: `ExpansionLimit`'s default for the input).
    public static func open(path: String, scratchDirectory: String? = nil, partition: Int? = nil,
                            externalFiles: ExternalFiles = .contained, maxOutputSize: UInt64? = nil,
                            progress: ProgressSink = SilentProgress()) throws -> InputImage {
        let file = try openInput(path)
        let size = try inputSize(file)
        guard size > 0 else { throw InputError.empty(path: path) }
        let (head, tail) = try edges(of: file, size: size)
        var scratch: ScratchFile? = nil
        var readerScratchPath: String? = nil
        let container: String
        let wrap: (InputKind) -> InputKind
        let disk: any RandomAccessDisk
        var inputFiles = [path]
        if ForeignFormat.isGzip(head) {
            let expanded = try GzipExpansion.expand(file, displayPath: path, scratchDirectory: scratchDirectory,
                                                    limit: .resolve(maxOutputSize, inputs: [path]))
            (scratch, disk, container, wrap) = (expanded, try FileDisk(path: expanded.path), "gzip data", { .gzip(inner: $0) })
        } else if let compression = DiskImageReaders.compressedStream(head: head, tail: tail) {
            let expanded = try GzipExpansion.expand(file, displayPath: path, scratchDirectory: scratchDirectory,
                                                    limit: .resolve(maxOutputSize, inputs: [path]), compression: compression)
            (scratch, disk, container, wrap) = (expanded, try FileDisk(path: expanded.path), "\(compression.rawValue) data",
                                                { .compressed(format: compression, inner: $0) })
        } else if let format = ForeignFormat.detect(head: head, tail: tail) {
            guard let reader = try DiskImageReaders.open(path: path, as: format, scratchDirectory: scratchDirectory,
                                                         externalFiles: externalFiles) else {
                throw InputError.unsupportedFormat(path: path, format: format)
            }
            inputFiles = reader.inputFiles
            if let random = reader as? any RandomAccessDiskImageReader {
                disk = random.randomAccess()
                readerScratchPath = random.scratchPath
            } else {
                // A reader without random access: a sparse raw copy, bounded by the expansion limit.
                let limited = LimitedDiskImageReader(reader, limit: .resolve(maxOutputSize, inputs: reader.inputFiles))
                let copy = try ScratchFile(directory: scratchDirectory, hint: path)
                progress.begin(stage: "reading the \(reader.format.displayName) image", totalBytes: reader.virtualSize)
                // Sized first: a disk larger than the scratch filesystem takes (16 TiB on ext4) fails
                // at once, naming the input, before any data is copied.
                do {
                    try copy.file.truncate(to: reader.virtualSize)
                } catch let FileError.truncate(_, size, code) {
                    throw InputError.scratchTooSmall(path: path, size: size, scratch: copy.path, reason: String(cString: strerror(code)))
                }
                try DiskImageReaders.copyToRaw(limited, file: copy.file) { progress.advance(to: $0) }
                progress.end()
                scratch = copy
                disk = try FileDisk(path: copy.path)
            }
            container = "a \(reader.format.displayName) image"
            wrap = { [format = reader.format, variant = reader.variant] in .diskImage(format: format, variant: variant, inner: $0) }
        } else {
            let disk = try FileDisk(path: path)
            let located = try FilesystemLocator(displayPath: path, disk: disk, prober: PathProber(path: path),
                                                partition: partition).locate()
            return try InputImage(path: path, kind: located.kind, disk: disk, filesystemPath: path, located: located,
                                  inputFiles: inputFiles, scratch: nil)
        }
        guard disk.size > 0 else { throw InputError.empty(path: path) }
        let innerHead = try disk.read(count: Int(min(disk.size, 4096)), at: 0)
        let innerTail = disk.size >= 512 ? try disk.read(count: 512, at: disk.size - 512) : []
        if let format = ForeignFormat.detect(head: innerHead, tail: innerTail) {
            throw InputError.nested(path: path, container: container, found: format.rawValue)
        }
        if ForeignFormat.isGzip(innerHead) { throw InputError.nested(path: path, container: container, found: "gzip") }
        let prober: any DiskProber
        if let scratch { prober = PathProber(path: scratch.path) } else { prober = try ProbeWindow(disk: disk, name: path) }
        let located = try FilesystemLocator(displayPath: path, disk: disk, prober: prober, partition: partition).locate()
        return try InputImage(path: path, kind: wrap(located.kind), disk: disk, filesystemPath: scratch?.path,
                              located: located, inputFiles: inputFiles, scratch: scratch, readerScratchPath: readerScratchPath)
    }

    private static func openInput(_ path: String) throws -> RawFile {
        var st = stat()
        guard stat(path, &st) == 0 else {
            if errno == ENOENT || errno == ENOTDIR { throw InputError.missing(path: path) }
            throw FileError.stat(path: path, errno: errno)
        }
        switch st.st_mode & S_IFMT {
        case S_IFREG, S_IFBLK: break
        case S_IFDIR: throw InputError.notAFile(path: path, found: "a directory")
        case S_IFCHR: throw InputError.notAFile(path: path, found: "a character device")
        case S_IFIFO: throw InputError.notAFile(path: path, found: "a pipe")
        case S_IFSOCK: throw InputError.notAFile(path: path, found: "a socket")
        default: throw InputError.notAFile(path: path, found: "not a regular file")
        }
        return try RawFile(path: path, mode: .readOnly)
    }

    /// fstat gives 0 for block devices; seeking to the end works for both.
    private static func inputSize(_ file: RawFile) throws -> UInt64 {
        let end = lseek(file.fd, 0, SEEK_END)
        guard end >= 0 else { throw FileError.stat(path: file.path, errno: errno) }
        return UInt64(end)
    }

    private static func edges(of file: RawFile, size: UInt64) throws -> (head: [UInt8], tail: [UInt8]) {
        let head = try file.read(count: Int(min(size, 4096)), at: 0)
        let tail = size >= 512 ? try file.read(count: 512, at: size - 512) : []
        return (head, tail)
    }
}

struct LocatedFilesystem {
    var kind: InputKind
    var offset: UInt64
    var size: UInt64
    var probe: FilesystemProbe
    var choice: RootPartitionChoice?
}
