import ImageCore

extension DiskImageReaders {
    /// Opens `path` with the reader its magic calls for: qcow2, VMDK (a sparse extent or a text
    /// descriptor), VDI, VHD, OVA (its first disk, copied into `scratchDirectory`, nil: $TMPDIR
    /// or /tmp), or else a raw disk. Compressed files (gzip, xz, bzip2, zstd) are refused with
    /// advice: a disk image inside them has no random access. `externalFiles` says which files
    /// besides `path` the image may make Rehost open (a VMDK descriptor's extents).
    public static func open(path: String, scratchDirectory: String? = nil,
                            externalFiles: ExternalFiles = .contained) throws -> any DiskImageReader {
        let file = try RawFile(path: path, mode: .readOnly)
        let size = try file.size
        let head = try file.read(count: Int(min(size, 4096)), at: 0)
        let tail = size >= 512 ? try file.read(count: 512, at: size - 512) : []
        if ForeignFormat.isGzip(head) { throw InputError.compressedDisk(path: path, tool: "gzip -dk") }
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

    /// The reader for a disk image format, nil for compression formats.
    static func open(path: String, as format: ForeignFormat, scratchDirectory: String?,
                     externalFiles: ExternalFiles) throws -> (any DiskImageReader)? {
        switch format {
        case .qcow2: return try QCOW2Reader(path: path)
        case .vdi: return try VDIReader(path: path)
        case .vhd: return try VHDReader(path: path)
        case .vmdk: return try VMDKReader(path: path, externalFiles: externalFiles)
        case .ova: return try OVAReader(path: path, scratchDirectory: scratchDirectory)
        case .xz, .bzip2, .zstd: return nil
        }
    }
}
