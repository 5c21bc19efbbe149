import Ext2
import GuestFixups
import ImageCore
import ImageFormats

/// The input opened for reading: where its filesystem is, the filesystem itself (read-only),
/// and what is inside the guest.
final class SourceGuest {
    let input: InputImage
    let filesystem: Ext2Filesystem
    let report: InputReport

    init(path: String, partition: Int?, scratchDirectory: String?, externalFiles: ExternalFiles = .contained,
         maxOutputSize: UInt64? = nil, progress: ProgressSink = SilentProgress()) throws {
        input = try InputImage.open(path: path, scratchDirectory: scratchDirectory, partition: partition,
                                    externalFiles: externalFiles, maxOutputSize: maxOutputSize, progress: progress)
        if let file = input.filesystemPath {
            filesystem = try Ext2Filesystem(path: file, offset: input.filesystemOffset)
        } else {
            filesystem = try Ext2Filesystem(source: DiskBlockSource(input.filesystem), name: input.filesystem.name)
        }
        try filesystem.checkRootDirectory()
        report = InputReport(
            path: path, kind: Self.describe(input.kind), files: input.inputFiles, partition: input.rootPartition?.number,
            partitionReason: input.rootPartition?.reason, filesystemOffset: input.filesystemOffset,
            filesystem: FilesystemReport(
                type: filesystem.typeName, label: filesystem.label, uuid: UUIDBytes.format(filesystem.uuid),
                sizeBytes: filesystem.sizeInBytes, usedBytes: filesystem.usedBytes, blockSize: filesystem.blockSize,
                inodeSize: filesystem.inodeSize, inodesUsed: filesystem.usedInodes, inodesTotal: filesystem.inodesCount,
                features: filesystem.featureNames))
    }

    /// The guest seen through an overlay: repairs planned on it never reach the input.
    func overlay() -> OverlayGuestFilesystem {
        OverlayGuestFilesystem(base: Ext2GuestFilesystem(filesystem))
    }

    static func describe(_ kind: InputKind) -> String {
        switch kind {
        case .bareFilesystem: return "bare filesystem image"
        case let .partitionedDisk(table, _): return "partitioned disk (\(table))"
        case let .gzip(inner): return "gzip-compressed \(describe(inner))"
        case let .diskImage(_, variant, inner): return "\(describe(inner)) inside \(variant)"
        }
    }
}

/// A disk (or the slice of it holding the filesystem) as libext2fs's block source.
final class DiskBlockSource: Ext2BlockSource {
    let disk: any RandomAccessDisk

    init(_ disk: any RandomAccessDisk) { self.disk = disk }

    var size: UInt64 { disk.size }

    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws {
        try disk.read(into: buffer, at: offset)
    }
}
