import Ext2
import GuestFixups
import ImageCore
import ImageFormats
import Volumes

#if canImport(Glibc)
import Glibc
#endif

/// One in-place edit of a guest filesystem inside an image, shared by `copy-in`, `clean` and
/// `customize`: open the image read-only and find where the filesystem lies (`target`), check
/// everything, then open it writable, apply the edits, close, and commit (`edit`).
///
/// Two ways to write:
/// - direct (raw input only, for large copies): libext2fs writes straight into the file at the
///   filesystem's offset; every check must come before the first write.
/// - staged (qcow2, VDI, VHD, VHDX, monolithicSparse VMDK, and raw when asked): libext2fs writes into
///   pages held in memory over the disk (`StagedDisk`); only when the filesystem has been closed
///   without error are the changed pages written, through the format's `InPlaceDiskWriter` (for
///   raw, `RawInPlaceWriter`). An error while editing (a full filesystem, a path refused half-way)
///   leaves the image as it was.
public enum GuestEditSession {
    /// Where the filesystem is written: into a plain file at an offset (raw input), or staged
    /// over a disk (qcow2, VDI, VHD, VHDX, VMDK's virtual disk, or a raw file's bytes) and written
    /// through the format's in-place writer.
    enum Target {
        case file(path: String, offset: UInt64)
        case image(format: ImageFormat, disk: any RandomAccessDisk, offset: UInt64, size: UInt64)

        var offset: UInt64 {
            switch self {
            case let .file(_, at): return at
            case let .image(_, _, at, _): return at
            }
        }
    }

    /// The most an edit into a staged image holds in memory before writing it.
    public static let stagingLimit: UInt64 = 1 << 30

    /// Where the filesystem mounted at `mountPoint` in `tree` can be written in place; `stageRaw`
    /// stages a raw input too (so an error leaves it unchanged). Refuses gzip, OVA, read-only
    /// format variants, volumes that are not one run of the disk, and journals not replayed.
    static func target(_ tree: GuestFileTree, mountPoint: String, path: String, stageRaw: Bool) throws -> Target {
        let image = tree.image
        let input = tree.source.input
        let inPlaceFormat = try stagedFormat(tree, stageRaw: stageRaw)
        let mount = tree.source.mounts.first { $0.mountPoint == mountPoint }
        let volumeName = mountPoint == "/" ? (tree.source.report.rootVolume ?? "the root filesystem") : mount?.volume.name ?? mountPoint
        guard let fs = tree.filesystems.first(where: { $0.mountPoint == mountPoint })?.filesystem else {
            throw FileAccessError.notFound(image: image, path: mountPoint)
        }
        guard !fs.needsRecovery else { throw FileAccessError.needsRecovery(image: image) }
        if let inPlaceFormat {
            // The filesystem must be one run of the image's virtual disk: a partition, or an LV in one piece.
            let disk = mountPoint == "/" ? tree.source.rootDisk : mount!.volume.disk
            guard let start = GuestCopyIn.offset(of: disk, on: input.disk) else {
                throw FileAccessError.readOnlyVolume(image: image, path: path, volume: volumeName)
            }
            return .image(format: inPlaceFormat, disk: input.disk, offset: start, size: disk.size)
        }
        let location = mountPoint == "/" ? tree.source.rootLocation : mount?.volume.location
        guard let location, location.path == input.path else {
            throw FileAccessError.readOnlyVolume(image: image, path: path, volume: volumeName)
        }
        return .file(path: location.path, offset: location.offset)
    }

    /// The format an edit of `tree`'s input is staged for (nil: raw, written directly); refuses
    /// inputs that cannot be written in place, before anything else is looked at.
    static func stagedFormat(_ tree: GuestFileTree, stageRaw: Bool) throws -> ImageFormat? {
        switch tree.source.input.kind {
        case .bareFilesystem, .partitionedDisk: return stageRaw ? .raw : nil
        case .gzip: throw FileAccessError.compressedInput(path: tree.image)
        case let .compressed(format, _): throw FileAccessError.compressedInput(path: tree.image, format: format.rawValue)
        case let .diskImage(format, _, _) where [.qcow2, .vdi, .vhd, .vhdx, .vmdk].contains(format): return format
        case let .diskImage(format, variant, _):
            throw FileAccessError.readOnlyInput(path: tree.image, format: "\(format.displayName) (\(variant))")
        }
    }

    /// Opens the filesystem at `target` writable, with the image locked against a running qemu
    /// and another edit, runs `body` on it, closes it and commits the staged pages.
    /// `hostBytes` is what a sparse raw image may grow by on the host (direct writes only).
    static func edit<T>(_ target: Target, image: String, hostBytes: UInt64, _ body: (Ext2Filesystem) throws -> T) throws -> T {
        switch target {
        case let .file(path, offset):
            let lock = try ImageLock(path: path)
            defer { withExtendedLifetime(lock) {} }
            try GuestCopyIn.checkHostSpace(path, bytes: hostBytes)
            let fs = try Ext2Filesystem(path: path, offset: offset, writable: true)
            let result = try body(fs)
            try fs.close()
            return result
        case .image:
            return try edit([target], image: image) { try body($0[0]) }
        }
    }

    /// The in-place writer of an image's format; refuses what cannot be written in place before any work.
    static func writer(_ format: ImageFormat, image: String) throws -> any InPlaceDiskWriter {
        switch format {
        case .qcow2: return try QCOW2InPlaceWriter(path: image)
        case .vdi: return try VDIInPlaceWriter(path: image)
        case .vmdk: return try VMDKInPlaceWriter(path: image)
        case .vhd: return try VHDInPlaceWriter(path: image)
        case .vhdx: return try VHDXInPlaceWriter(path: image)
        case .raw: return try RawInPlaceWriter(path: image)
        case .ova: throw FileAccessError.readOnlyInput(path: image, format: format.displayName)
        }
    }
}

extension GuestEditSession {
    /// Several filesystems of one image edited in one session (a root and the separate /var or
    /// /boot it mounts): each staged over the same disk, all committed together through one
    /// writer once every filesystem has closed cleanly. Every target must be staged.
    static func edit<T>(_ targets: [Target], image: String, _ body: ([Ext2Filesystem]) throws -> T) throws -> T {
        var staging: [(format: ImageFormat, disk: any RandomAccessDisk, offset: UInt64, size: UInt64)] = []
        for target in targets {
            guard case let .image(format, disk, offset, size) = target else {
                throw InPlaceWriteError.unsupported(path: image, what: "a direct edit of several filesystems")
            }
            staging.append((format, disk, offset, size))
        }
        guard let first = staging.first else { return try body([]) }
        let lock = try ImageLock(path: image)
        defer { withExtendedLifetime(lock) {} }
        let writer = try writer(first.format, image: image)
        let disk = first.disk
        let stagedDisks = staging.map { StagedDisk(disk: disk, offset: $0.offset, size: $0.size, limit: stagingLimit, image: image) }
        let filesystems = try stagedDisks.map { try Ext2Filesystem(source: $0, name: image, writable: true) }
        let result = try body(filesystems)
        for fs in filesystems { try fs.close() }
        let units = Set(stagedDisks.flatMap { $0.clusters(of: writer.unitSize) }).sorted()
        try writer.plan(units)
        try writer.commit { unit in
            let start = unit * writer.unitSize
            var bytes = [UInt8](repeating: 0, count: Int(writer.unitSize))
            let count = Int(min(writer.unitSize, disk.size - start))
            try bytes.withUnsafeMutableBytes { try disk.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<count]), at: start) }
            // The filesystems lie apart, so each staged page comes from exactly one of them.
            for staged in stagedDisks { staged.overlay(&bytes, at: start) }
            return bytes
        }
        return result
    }
}

/// A raw file written in place page by page, after staging: the pages changed, nothing else.
/// A sparse file's holes that are written take host space: that is checked in `plan`.
final class RawInPlaceWriter: InPlaceDiskWriter {
    let path: String
    let unitSize: UInt64 = StagedDisk.pageSize
    private var units: [UInt64] = []
    private let file: RawFile

    init(path: String) throws {
        self.path = path
        file = try RawFile(path: path, mode: .readWrite)
    }

    func plan(_ units: [UInt64]) throws {
        self.units = units
        try GuestCopyIn.checkHostSpace(path, bytes: UInt64(units.count) * unitSize)
    }

    func commit(contents: (UInt64) throws -> [UInt8]) throws {
        let size = try file.size
        for unit in units where unit * unitSize < size {
            let bytes = try contents(unit)
            try file.write(Array(bytes.prefix(Int(min(unitSize, size - unit * unitSize)))), at: unit * unitSize)
        }
        guard fsync(file.fd) == 0 else { throw FileError.sync(path: path, errno: errno) }
    }
}
