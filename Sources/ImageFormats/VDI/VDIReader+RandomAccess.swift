import ImageCore

extension VDIReader: RandomAccessDiskImageReader {
    /// The disk read at any offset through the block map `init` checked: free and zero blocks
    /// read as zeros. Memory: the map the reader holds already.
    public func randomAccess() -> any RandomAccessDisk {
        let map = blockMap
        let blockSize = UInt64(header.blockSize)
        let dataOffset = UInt64(header.dataOffset)
        return BlockMapDisk(file: file, format: .vdi, name: path, size: virtualSize, blockSize: blockSize) { block in
            guard block < map.count, map[block] < VDIHeader.zeroBlock else { return nil }
            return dataOffset + UInt64(map[block]) * blockSize
        }
    }
}
