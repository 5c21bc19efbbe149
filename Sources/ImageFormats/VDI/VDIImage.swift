import ImageCore

/// A VDI file's header and block map, read and checked (the layout is drawn on `VDIHeader`).
/// For inspection and checks; reading guest data goes through qemu or VirtualBox.
public struct VDIImage: Sendable {
    public let header: VDIHeader
    /// One entry per 1 MiB block of the virtual disk: an index into the data area, or
    /// `VDIHeader.freeBlock` / `VDIHeader.zeroBlock`.
    public let blockMap: [UInt32]
    public let fileSize: UInt64

    public init(path: String) throws {
        let file = try RawFile(path: path, mode: .readOnly)
        fileSize = try file.size
        let first = try file.read(count: Int(min(fileSize, UInt64(VDIHeader.encodedSize))), at: 0)
        header = try VDIHeader.decode(first, path: path)
        // blockCount is capped by decode (VDIHeader.maximumBlocks), so this allocation is bounded.
        let mapBytes = Int(header.blockCount) * 4
        let mapOffset = UInt64(header.blockMapOffset)
        guard mapOffset + UInt64(mapBytes) <= fileSize else {
            throw VDIError.truncated(path: path, offset: mapOffset, wanted: mapBytes,
                                     got: Int(fileSize > mapOffset ? fileSize - mapOffset : 0))
        }
        let raw = try file.read(count: mapBytes, at: UInt64(header.blockMapOffset))
        blockMap = (0..<Int(header.blockCount)).map { raw.loadLE(UInt32.self, at: $0 * 4) }

        var seen = [Bool](repeating: false, count: Int(header.allocatedBlocks))
        var allocated: UInt32 = 0
        for (index, entry) in blockMap.enumerated() where entry < VDIHeader.zeroBlock {
            let at = UInt64(header.blockMapOffset) + UInt64(index) * 4
            guard entry < header.allocatedBlocks else {
                throw VDIError.badField(path: path, offset: at, field: "block map entry \(index)", found: UInt64(entry),
                                        expected: "below the allocated count \(header.allocatedBlocks)")
            }
            guard !seen[Int(entry)] else {
                throw VDIError.badField(path: path, offset: at, field: "block map entry \(index)", found: UInt64(entry),
                                        expected: "a data block no other entry uses")
            }
            seen[Int(entry)] = true
            allocated += 1
        }
        guard allocated == header.allocatedBlocks else {
            throw VDIError.badField(path: path, offset: 388, field: "allocated blocks", found: UInt64(header.allocatedBlocks),
                                    expected: "\(allocated), the entries in use in the block map")
        }
        let needed = UInt64(header.dataOffset) + UInt64(header.allocatedBlocks) * UInt64(header.blockSize)
        guard fileSize >= needed else {
            throw VDIError.truncated(path: path, offset: UInt64(header.dataOffset), wanted: Int(needed - UInt64(header.dataOffset)),
                                     got: Int(fileSize > UInt64(header.dataOffset) ? fileSize - UInt64(header.dataOffset) : 0))
        }
    }
}
