import ImageCore

extension OVAReader: RandomAccessDiskImageReader {
    /// The disk read at any offset from the member's scratch copy (its size is the member's
    /// declared size, not the disk's), through the VMDK's grain directory: the disk itself is
    /// never expanded. The disk keeps this reader, and so the copy, alive.
    public func randomAccess() -> any RandomAccessDisk {
        OVADisk(reader: self, base: disk.randomAccess())
    }

    /// The member's copy, which lives as long as this reader.
    public var scratchPath: String? { scratch.path }
}

/// An OVA's disk: its VMDK's random access, with errors about the copy restated about the
/// member of the archive.
final class OVADisk: RandomAccessDisk {
    private let reader: OVAReader
    private let base: any RandomAccessDisk

    init(reader: OVAReader, base: any RandomAccessDisk) {
        self.reader = reader
        self.base = base
    }

    var size: UInt64 { base.size }
    var name: String { reader.path }

    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws {
        try checkRange(offset: offset, count: buffer.count)
        do {
            try base.read(into: buffer, at: offset)
        } catch let error as ImageReadError where error.path == reader.scratch.path {
            throw OVAReader.inArchive(error, path: reader.path, member: TarMember(name: reader.diskMember, headerOffset: 0, dataOffset: 0, size: 0))
        }
    }
}
