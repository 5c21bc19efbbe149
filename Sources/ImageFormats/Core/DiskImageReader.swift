import ImageCore

/// A reader of one input disk image format: the inverse of `DiskImageWriter`.
///
/// `init(path:)` reads and checks all metadata (header, tables, descriptors) against the file
/// before anything is streamed, so a corrupt or hostile image fails at once with one line; then
/// `forEachDataPiece` walks the virtual disk front to back. A reader never writes to its input,
/// keeps memory bounded whatever the disk size (tables are held, data is not), and never trusts
/// an offset or length from the file without checking it against the file size.
public protocol DiskImageReader: AnyObject {
    var format: ImageFormat { get }
    var path: String { get }
    /// The size of the virtual disk, exactly as qemu-img reports it.
    var virtualSize: UInt64 { get }
    /// A short description for reports: "qcow2 v3, 64 KiB clusters", "VMDK streamOptimized".
    var variant: String { get }
    /// Every file the disk is read from: `path`, and for a VMDK descriptor its extent files.
    /// No output may replace one of them.
    var inputFiles: [String] { get }

    /// Calls `body` with the disk's allocated data in increasing order: offsets increase, pieces
    /// never overlap, each piece is at most `DiskImageReaders.maxPieceSize` bytes, offsets and
    /// sizes are multiples of 512 except at the end of a disk whose size is not. Bytes never
    /// passed read as zero (unallocated clusters, grains, blocks; zero clusters). A piece may
    /// still hold zeros (allocated zero data): callers filter. `data` is valid only during the
    /// call. Corrupt data met on the way (a compressed cluster that does not inflate) throws
    /// `ImageReadError`.
    func forEachDataPiece(_ body: (_ offset: UInt64, _ data: UnsafeRawBufferPointer) throws -> Void) throws
}

extension DiskImageReader {
    public var inputFiles: [String] { [path] }
}

public enum DiskImageReaders {
    /// The largest piece a reader hands out.
    public static let maxPieceSize = 8 << 20

    /// The most memory a reader gives to the tables it holds for a whole disk (a VDI block map, a
    /// VHD BAT, the grain directories of a VMDK's sparse extents; a qcow2 L1 table is capped lower,
    /// at qemu's 32 MiB), whatever the headers say. Real images need a fraction: 4 MiB of BAT for
    /// the largest VHD, 8 MiB of block map for a 2 TiB VDI, 128 KiB of grain directory per 2 TiB
    /// of a VMDK with 64 KiB grains. 256 MiB is a 64 TiB VDI of 1 MiB blocks.
    public static let tableMemoryBudget: UInt64 = 256 << 20

    /// Writes the whole virtual disk into `file` as a sparse raw image: only 64 KiB blocks that
    /// hold a non-zero byte are written, the rest stay holes. The file ends up exactly
    /// `virtualSize` bytes long.
    public static func copyToRaw(_ reader: any DiskImageReader, file: RawFile,
                                 progress: (UInt64) -> Void = { _ in }) throws {
        try reader.forEachDataPiece { offset, data in
            try ZeroDetection.forEachNonZeroRun(in: data, at: offset, granularity: 65536) { runOffset, run in
                try file.write(run, at: runOffset)
            }
            progress(offset + UInt64(data.count))
        }
        try file.truncate(to: reader.virtualSize)
        progress(reader.virtualSize)
    }
}

/// Why an input image cannot be read. One line each, naming the file, the byte offset where it
/// matters, and what was expected.
public enum ImageReadError: RehostError, Equatable {
    /// The file ends before a structure it must hold.
    case truncated(format: ImageFormat, path: String, offset: UInt64, needed: UInt64, fileSize: UInt64)
    /// A structure holds an impossible value.
    case corrupt(format: ImageFormat, path: String, offset: UInt64, reason: String)
    /// A valid image using a feature Rehost does not read; `advice` says what to do instead.
    case unsupported(format: ImageFormat, path: String, feature: String, advice: String)

    public var description: String {
        switch self {
        case let .truncated(format, path, offset, needed, fileSize):
            return "\(path): truncated \(format.displayName) image: \(needed) bytes needed at byte \(offset) but the file holds \(fileSize)"
        case let .corrupt(format, path, offset, reason):
            return "\(path): corrupt \(format.displayName) image at byte \(offset): \(reason)"
        case let .unsupported(format, path, feature, advice):
            return "\(path): \(format.displayName) image uses \(feature), which Rehost does not read; \(advice)"
        }
    }
}

extension ImageFormat {
    /// The name users know the format by, for messages.
    public var displayName: String {
        switch self {
        case .raw: return "raw"
        case .qcow2: return "qcow2"
        case .vmdk: return "VMDK"
        case .vdi: return "VDI"
        case .vhd: return "VHD"
        case .vhdx: return "VHDX"
        case .ova: return "OVA"
        }
    }
}
