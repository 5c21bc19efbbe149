import ImageCore

/// A VHD file's footer and, for a dynamic disk, its header and BAT, read and checked (layout
/// on `VHDFooter` and `VHDDynamicHeader`). For inspection and checks.
public struct VHDImage: Sendable {
    public let footer: VHDFooter
    public let dynamicHeader: VHDDynamicHeader?
    /// One entry per block: the sector of its bitmap, or `VHDDynamicHeader.unusedBlock`.
    public let blockAllocationTable: [UInt32]
    public let fileSize: UInt64

    public init(path: String) throws {
        let file = try RawFile(path: path, mode: .readOnly)
        fileSize = try file.size
        guard fileSize >= UInt64(VHDFooter.size) else {
            throw VHDError.truncated(path: path, offset: 0, wanted: VHDFooter.size, got: Int(fileSize))
        }
        let footerOffset = fileSize - UInt64(VHDFooter.size)
        let footerBytes = try file.read(count: VHDFooter.size, at: footerOffset)
        footer = try VHDFooter.decode(footerBytes, path: path, offset: footerOffset)
        guard footer.diskType == .dynamic else {
            guard footerOffset == footer.currentSize else {
                throw VHDError.badField(path: path, offset: footerOffset + 48, field: "current size", found: footer.currentSize,
                                        expected: "\(footerOffset), the data before the footer of a fixed disk")
            }
            dynamicHeader = nil
            blockAllocationTable = []
            return
        }
        let copy = try file.read(count: VHDFooter.size, at: 0)
        guard copy == footerBytes else { throw VHDError.footerCopyDiffers(path: path) }
        guard fileSize >= UInt64(VHDDynamicHeader.size), footer.dataOffset <= fileSize - UInt64(VHDDynamicHeader.size) else {
            throw VHDError.badField(path: path, offset: footerOffset + 16, field: "data offset", found: footer.dataOffset,
                                    expected: "a dynamic header inside the file")
        }
        let header = try VHDDynamicHeader.decode(file.read(count: VHDDynamicHeader.size, at: footer.dataOffset),
                                                 path: path, offset: footer.dataOffset)
        dynamicHeader = header
        let blockSize = UInt64(header.blockSize)
        let needed = (footer.currentSize + blockSize - 1) / blockSize
        // Capped by the disk size (itself capped at 2040 GiB), so the read below is bounded.
        guard UInt64(header.maxTableEntries) >= needed, UInt64(header.maxTableEntries) <= VHDFooter.maximumDiskSize / 512 else {
            throw VHDError.badField(path: path, offset: footer.dataOffset + 28, field: "max table entries",
                                    found: UInt64(header.maxTableEntries), expected: "at least \(needed) blocks for the disk, and a sane count")
        }
        let raw = try file.read(count: Int(header.maxTableEntries) * 4, at: header.tableOffset)
        let table = (0..<Int(header.maxTableEntries)).map { raw.loadBE(UInt32.self, at: $0 * 4) }
        let blockBytes = UInt64(VHDDynamicHeader.bitmapSize) + blockSize
        for (index, entry) in table.enumerated() where entry != VHDDynamicHeader.unusedBlock {
            guard UInt64(entry) * 512 + blockBytes <= footerOffset else {
                throw VHDError.badField(path: path, offset: header.tableOffset + UInt64(index) * 4, field: "BAT entry \(index)",
                                        found: UInt64(entry), expected: "a block that ends before the footer at byte \(footerOffset)")
            }
        }
        blockAllocationTable = table
    }
}
