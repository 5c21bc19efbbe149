import ImageCore

extension VHDReader: RandomAccessDiskImageReader {
    /// The disk read at any offset: a fixed disk as the file's first `virtualSize` bytes, a
    /// dynamic one through the BAT `init` checked (unused blocks read as zeros; the sector
    /// bitmaps are not consulted, as in `forEachDataPiece`).
    public func randomAccess() -> any RandomAccessDisk {
        guard let header = dynamicHeader else {
            return BlockMapDisk(file: file, format: .vhd, name: path, size: virtualSize, blockSize: max(virtualSize, 1)) { _ in 0 }
        }
        let table = blockAllocationTable
        let bitmap = bitmapSize
        return BlockMapDisk(file: file, format: .vhd, name: path, size: virtualSize, blockSize: UInt64(header.blockSize)) { block in
            guard block < table.count, table[block] != VHDDynamicHeader.unusedBlock else { return nil }
            return UInt64(table[block]) * 512 + bitmap
        }
    }
}
