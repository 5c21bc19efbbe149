import Blkid
import ImageCore
#if canImport(Glibc)
import Glibc
#endif

/// What an input file is, and where in which file its ext2/3/4 root filesystem lies.
public indirect enum InputKind: Sendable, Equatable {
    case bareFilesystem
    case partitionedDisk(table: String, partitions: [PartitionProbe])
    case gzip(inner: InputKind)
    /// A qcow2, VMDK, VDI, VHD or OVA image; `variant` as its reader describes it.
    case diskImage(format: ImageFormat, variant: String, inner: InputKind)
}

/// Which partition of a disk was taken as the root filesystem, and why.
public struct RootPartitionChoice: Sendable, Equatable {
    public var number: Int
    public var reason: String
}

/// An input opened read-only and identified. For gzip, qcow2, VMDK, VDI, VHD or OVA input,
/// `filesystemPath` is a sparse raw scratch copy that lives as long as this object.
public final class InputImage {
    public let path: String
    public let kind: InputKind
    /// The file to open with libext2fs (with `filesystemOffset` as its `offset=` option).
    public let filesystemPath: String
    public let filesystemOffset: UInt64
    /// The size the superblock gives (block count times block size).
    public let filesystemSize: UInt64
    public let probe: FilesystemProbe
    public let rootPartition: RootPartitionChoice?
    /// Every file the input was read from: its own path, and a VMDK descriptor's extent files.
    public let inputFiles: [String]
    private let scratch: ScratchFile?

    /// The expanded copy for gzip, qcow2, VMDK, VDI, VHD or OVA input, nil otherwise.
    public var temporaryPath: String? { scratch?.path }

    private init(path: String, kind: InputKind, located: LocatedFilesystem, inputFiles: [String], scratch: ScratchFile?) {
        self.path = path
        self.inputFiles = inputFiles
        self.kind = kind
        self.filesystemPath = scratch?.path ?? path
        self.filesystemOffset = located.offset
        self.filesystemSize = located.size
        self.probe = located.probe
        self.rootPartition = located.choice
        self.scratch = scratch
    }

    /// Identifies `path` (never writing to it). `partition` picks a partition number explicitly;
    /// otherwise the root is the Linux partition holding ext2/3/4 (bootable, else largest, if
    /// several). Gzip, qcow2, VMDK, VDI, VHD and OVA input (its first disk) is expanded into a sparse raw copy in
    /// `scratchDirectory` (default $TMPDIR or /tmp). `externalFiles` says which files besides
    /// `path` the image may make Rehost open. What the expansion produces is bounded by
    /// `maxOutputSize` (nil: `ExpansionLimit`'s default for the input).
    public static func open(path: String, scratchDirectory: String? = nil, partition: Int? = nil,
                            externalFiles: ExternalFiles = .contained, maxOutputSize: UInt64? = nil,
                            progress: ProgressSink = SilentProgress()) throws -> InputImage {
        let file = try openInput(path)
        let size = try inputSize(file)
        guard size > 0 else { throw InputError.empty(path: path) }
        let (head, tail) = try edges(of: file, size: size)
        // A container is expanded once into a sparse scratch raw file that libext2fs can open.
        var expanded: (scratch: ScratchFile, container: String, kind: (InputKind) -> InputKind)? = nil
        var inputFiles = [path]
        if ForeignFormat.isGzip(head) {
            let scratch = try GzipExpansion.expand(file, displayPath: path, scratchDirectory: scratchDirectory,
                                                   limit: .resolve(maxOutputSize, inputs: [path]))
            expanded = (scratch, "gzip data", { .gzip(inner: $0) })
        } else if let format = ForeignFormat.detect(head: head, tail: tail) {
            guard let opened = try DiskImageReaders.open(path: path, as: format, scratchDirectory: scratchDirectory,
                                                         externalFiles: externalFiles) else {
                throw InputError.unsupportedFormat(path: path, format: format)
            }
            inputFiles = opened.inputFiles
            let reader = LimitedDiskImageReader(opened, limit: .resolve(maxOutputSize, inputs: opened.inputFiles))
            let scratch = try ScratchFile(directory: scratchDirectory, hint: path)
            progress.begin(stage: "reading the \(reader.format.displayName) image", totalBytes: reader.virtualSize)
            // Sized first: a disk larger than the scratch filesystem takes (16 TiB on ext4) fails
            // at once, naming the input, before any data is copied.
            do {
                try scratch.file.truncate(to: reader.virtualSize)
            } catch let FileError.truncate(_, size, code) {
                throw InputError.scratchTooSmall(path: path, size: size, scratch: scratch.path, reason: String(cString: strerror(code)))
            }
            try DiskImageReaders.copyToRaw(reader, file: scratch.file) { progress.advance(to: $0) }
            progress.end()
            expanded = (scratch, "a \(reader.format.displayName) image", { [format = reader.format, variant = reader.variant] in
                .diskImage(format: format, variant: variant, inner: $0)
            })
        }
        if let (scratch, container, kind) = expanded {
            let inner = try RawFile(path: scratch.path, mode: .readOnly)
            let innerSize = try inner.size
            guard innerSize > 0 else { throw InputError.empty(path: path) }
            let (innerHead, innerTail) = try edges(of: inner, size: innerSize)
            if let format = ForeignFormat.detect(head: innerHead, tail: innerTail) {
                throw InputError.nested(path: path, container: container, found: format.rawValue)
            }
            if ForeignFormat.isGzip(innerHead) { throw InputError.nested(path: path, container: container, found: "gzip") }
            let located = try FilesystemLocator(displayPath: path, dataPath: scratch.path, file: inner,
                                                size: innerSize, partition: partition).locate()
            return InputImage(path: path, kind: kind(located.kind), located: located, inputFiles: inputFiles, scratch: scratch)
        }
        let located = try FilesystemLocator(displayPath: path, dataPath: path, file: file, size: size,
                                            partition: partition).locate()
        return InputImage(path: path, kind: located.kind, located: located, inputFiles: inputFiles, scratch: nil)
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
