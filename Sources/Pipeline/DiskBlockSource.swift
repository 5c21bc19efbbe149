import Ext2
import ImageFormats

/// A disk (or the slice of it holding the filesystem) as libext2fs's block source.
final class DiskBlockSource: Ext2BlockSource {
    let disk: any RandomAccessDisk

    init(_ disk: any RandomAccessDisk) { self.disk = disk }

    var size: UInt64 { disk.size }

    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws {
        try disk.read(into: buffer, at: offset)
    }
}
