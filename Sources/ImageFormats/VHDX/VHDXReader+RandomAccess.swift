import ImageCore

extension VHDXReader: RandomAccessDiskImageReader {
    /// The disk read at any offset through the BAT `init` checked (blocks that are not present
    /// read as zeros, as in `forEachDataPiece`).
    public func randomAccess() -> any RandomAccessDisk {
        let offsets = blockOffsets
        return BlockMapDisk(file: file, format: .vhdx, name: path, size: virtualSize, blockSize: blockSize) { block in
            guard block < offsets.count, offsets[block] != 0 else { return nil }
            return offsets[block]
        }
    }
}
