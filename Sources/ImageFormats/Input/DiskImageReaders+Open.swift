import Compression
import ImageCore

extension DiskImageReaders {
    /// Opens `path` with the reader its magic calls for: qcow2, VMDK (a sparse extent or a text
    /// descriptor), VDI, VHD, VHDX, OVA (its first disk, copied into `scratchDirectory`, nil: $TMPDIR
    /// or /tmp), or else a raw disk. A gzip, xz or zstd file (by its magic, whatever its name)
    /// is expanded once into a sparse scratch file in `scratchDirectory`, bounded by
    /// `maxOutputSize` as `GzipExpansion` says, and the disk inside read from there (raw, or a
    /// qcow2, VDI, VHD or VMDK: `x.qcow2.gz`); bzip2 is refused with advice. `externalFiles`
    /// says which files besides `path` the image may make Rehost open (a VMDK descriptor's extents).
    public static func open(path: String, scratchDirectory: String? = nil,
                            externalFiles: ExternalFiles = .contained, maxOutputSize: UInt64? = nil) throws -> any DiskImageReader {
        let file = try RawFile(path: path, mode: .readOnly)
        let size = try file.size
        let head = try file.read(count: Int(min(size, 4096)), at: 0)
        let tail = size >= 512 ? try file.read(count: 512, at: size - 512) : []
        if let compression = compressedStream(head: head, tail: tail) {
            return try openExpanded(file, path: path, compression: compression, scratchDirectory: scratchDirectory,
                                    limit: .resolve(maxOutputSize, inputs: [path]))
        }
        switch ForeignFormat.detect(head: head, tail: tail) {
        case nil:
            guard size > 0 else { throw InputError.empty(path: path) }
            guard size % 512 == 0 else { throw InputError.notWholeSectors(path: path, size: size) }
            return try RawDiskReader(path: path)
        case let format?:
            if let reader = try open(path: path, as: format, scratchDirectory: scratchDirectory, externalFiles: externalFiles) {
                return reader
            }
            throw InputError.unsupportedFormat(path: path, format: format)
        }
    }

    /// The whole-file compression `open` expands: gzip, xz, zstd, by magic.
    static func compressedStream(head: [UInt8], tail: [UInt8]) -> StreamCompression? {
        if ForeignFormat.isGzip(head) { return .gzip }
        switch ForeignFormat.detect(head: head, tail: tail) {
        case .xz?: return .xz
        case .zstd?: return .zstd
        default: return nil
        }
    }

    /// A compressed disk expanded into a sparse scratch file, read from there. The scratch file
    /// is unlinked when this returns: the reader keeps it open (mapped, for raw).
    static func openExpanded(_ file: RawFile, path: String, compression: StreamCompression, scratchDirectory: String?,
                             limit: ExpansionLimit) throws -> any DiskImageReader {
        let scratch = try GzipExpansion.expand(file, displayPath: path, scratchDirectory: scratchDirectory, limit: limit,
                                               compression: compression)
        let size = try scratch.file.size
        guard size > 0 else { throw InputError.empty(path: path) }
        let head = try scratch.file.read(count: Int(min(size, 4096)), at: 0)
        let tail = size >= 512 ? try scratch.file.read(count: 512, at: size - 512) : []
        let container = "\(compression.rawValue) data"
        if compressedStream(head: head, tail: tail) != nil || ForeignFormat.isGzip(head) {
            throw InputError.nested(path: path, container: container, found: "compressed")
        }
        switch ForeignFormat.detect(head: head, tail: tail) {
        case nil:
            guard size % 512 == 0 else { throw InputError.notWholeSectors(path: path, size: size) }
            let reader = try RawDiskReader(path: scratch.path)
            reader.expandedFrom = (path, compression.rawValue)
            return reader
        case .qcow2?, .vdi?, .vhd?, .vmdk?:
            // Only the image's own file: a VMDK descriptor naming extents elsewhere is refused.
            guard let format = ForeignFormat.detect(head: head, tail: tail),
                  let reader = try open(path: scratch.path, as: format, scratchDirectory: scratchDirectory, externalFiles: .contained) else {
                throw InputError.nested(path: path, container: container, found: "unreadable")
            }
            return reader
        case let found?:
            throw InputError.nested(path: path, container: container, found: found.rawValue)
        }
    }

    /// Whether `open` would read `path` as a raw disk (no format's magic, not compressed), from
    /// its first and last bytes only.
    public static func isRawDisk(path: String) throws -> Bool {
        let file = try RawFile(path: path, mode: .readOnly)
        let size = try file.size
        let head = try file.read(count: Int(min(size, 4096)), at: 0)
        let tail = size >= 512 ? try file.read(count: 512, at: size - 512) : []
        return !ForeignFormat.isGzip(head) && ForeignFormat.detect(head: head, tail: tail) == nil
    }

    /// The reader for a disk image format, nil for compression formats.
    static func open(path: String, as format: ForeignFormat, scratchDirectory: String?,
                     externalFiles: ExternalFiles) throws -> (any DiskImageReader)? {
        let reader: any DiskImageReader
        switch format {
        case .qcow2: reader = try QCOW2Reader(path: path)
        case .vdi: reader = try VDIReader(path: path)
        case .vhd: reader = try VHDReader(path: path)
        case .vhdx: reader = try VHDXReader(path: path)
        case .vmdk: reader = try VMDKReader(path: path, externalFiles: externalFiles)
        case .ova: reader = try OVAReader(path: path, scratchDirectory: scratchDirectory)
        case .xz, .bzip2, .zstd: return nil
        }
        guard reader.virtualSize <= maximumVirtualSize else {
            throw ImageReadError.corrupt(format: reader.format, path: path, offset: 0,
                                         reason: "the virtual size is \(reader.virtualSize) bytes, more than the \(maximumVirtualSize) (64 PiB) Rehost reads")
        }
        return reader
    }

    /// The largest virtual disk any reader may describe: 2^56 bytes (64 PiB), far beyond the 2 TiB
    /// of a VHD or of a VMDK sparse extent and what any hypervisor creates. Larger sizes come only
    /// from header arithmetic (a qcow2 header may say up to 2^61 with 2 MiB clusters; a VMDK's
    /// ZERO extents add up to anything), and no copy of such a disk fits in a file, whose size is
    /// a signed 64-bit number and, on ext4, at most 16 TiB.
    public static let maximumVirtualSize: UInt64 = 1 << 56
}
