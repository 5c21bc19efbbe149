import ImageCore
#if canImport(Glibc)
import Glibc
#endif

/// A virtual disk read at any offset: what libext2fs, libblkid-style probing, LVM and the
/// partition tables need, as opposed to `DiskImageReader.forEachDataPiece`'s one front-to-back
/// walk. Formats that can be read randomly (raw, qcow2, VMDK sparse and flat, VDI, VHD) conform;
/// a gzip stream or a streamOptimized VMDK cannot, and is expanded to bounded scratch instead.
///
/// Reads never trust the image: an offset past `size` is an error, bytes never allocated read
/// as zero, and no read allocates more than the caller's buffer plus the format's bounded cache.
public protocol RandomAccessDisk: AnyObject {
    /// The virtual size in bytes.
    var size: UInt64 { get }
    /// What messages call this disk: a path, or "path, partition 2", or "VolGroup00/LogVol00".
    var name: String { get }
    /// Fills `buffer` with the bytes at `offset ..< offset + buffer.count`, which must lie within
    /// `size`.
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws
}

extension RandomAccessDisk {
    /// Reads exactly `count` bytes at `offset`.
    public func read(count: Int, at offset: UInt64) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        try bytes.withUnsafeMutableBytes { try read(into: $0, at: offset) }
        return bytes
    }

    /// Throws unless `offset ..< offset + count` lies within the disk.
    public func checkRange(offset: UInt64, count: Int) throws {
        let (end, overflow) = offset.addingReportingOverflow(UInt64(count))
        guard !overflow, end <= size else {
            throw DiskRangeError(disk: name, offset: offset, count: UInt64(count), size: size)
        }
    }
}

/// A read past the end of a disk, partition or logical volume.
public struct DiskRangeError: RehostError, Equatable {
    public let disk: String
    public let offset: UInt64
    public let count: UInt64
    public let size: UInt64

    public var description: String {
        "\(disk): read of \(count) bytes at byte \(offset) lies beyond its end (\(size) bytes)"
    }
}

/// A byte range of another disk: a partition, or a PV's data area.
public final class DiskSlice: RandomAccessDisk {
    public let base: any RandomAccessDisk
    public let offset: UInt64
    public let size: UInt64
    public let name: String

    /// Throws unless the range lies within `base`.
    public init(_ base: any RandomAccessDisk, offset: UInt64, size: UInt64, name: String) throws {
        let (end, overflow) = offset.addingReportingOverflow(size)
        guard !overflow, end <= base.size else {
            throw DiskRangeError(disk: base.name, offset: offset, count: size, size: base.size)
        }
        self.base = base
        self.offset = offset
        self.size = size
        self.name = name
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws {
        try checkRange(offset: offset, count: buffer.count)
        try base.read(into: buffer, at: self.offset + offset)
    }
}

/// A raw file or block device read with pread: the plain case of a random-access disk.
public final class FileDisk: RandomAccessDisk {
    public let file: RawFile
    public let size: UInt64
    public var name: String { file.path }

    public init(path: String) throws {
        file = try RawFile(path: path, mode: .readOnly)
        // fstat gives 0 for a block device; seeking to the end works for both.
        let end = lseek(file.fd, 0, SEEK_END)
        guard end >= 0 else { throw FileError.stat(path: path, errno: errno) }
        size = UInt64(end)
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws {
        try checkRange(offset: offset, count: buffer.count)
        let got = try file.read(into: buffer, at: offset)
        guard got == buffer.count else {
            throw FileError.shortRead(path: file.path, offset: offset, wanted: buffer.count, got: got)
        }
    }
}

/// A reader whose disk can also be read at any offset (qcow2, VMDK, VDI, VHD, and OVA through
/// the copy of its disk member).
public protocol RandomAccessDiskImageReader: DiskImageReader {
    /// The disk read at any offset, through the tables the reader checked when it opened.
    func randomAccess() -> any RandomAccessDisk
    /// A scratch copy the reader made and reads from (an OVA's disk member), nil for none.
    var scratchPath: String? { get }
}

extension RandomAccessDiskImageReader {
    public var scratchPath: String? { nil }
}
