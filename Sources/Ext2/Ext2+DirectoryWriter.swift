import CExt2fs
import ImageCore

/// One name in a directory being written.
public struct Ext2NewEntry: Sendable {
    public var name: [UInt8]
    public var inode: InodeNumber
    public var fileType: Int32

    public init(name: [UInt8], inode: InodeNumber, fileType: Int32) {
        self.name = name
        self.inode = inode
        self.fileType = fileType
    }
}

extension Ext2Filesystem {
    /// Fills a directory made by `createDirectory` (holding only "." and "..") with all its
    /// entries at once, as linear directory blocks written in one run. Linking names one by one
    /// rescans every block of the directory for each name, which is quadratic in its size.
    ///
    /// Each entry on disk: inode (u32), record length (u16), name length (u8), file type (u8),
    /// the name padded to 4 bytes; the last record of a block stretches to the block's end.
    public func fillNewDirectory(_ dir: InodeNumber, parent: InodeNumber, entries: [Ext2NewEntry]) throws {
        let blockSize = self.blockSize
        var blocks: [[UInt8]] = []
        var block = [UInt8](repeating: 0, count: blockSize)
        var used = 0
        var lastRecord = -1

        func closeBlock() {
            // The last record absorbs the rest of the block.
            block.storeLE(UInt16(blockSize - lastRecord), at: lastRecord + 4)
            blocks.append(block)
            block = [UInt8](repeating: 0, count: blockSize)
            used = 0
            lastRecord = -1
        }
        func add(_ name: [UInt8], _ ino: InodeNumber, _ type: Int32) {
            let length = (8 + name.count + 3) & ~3
            if used + length > blockSize { closeBlock() }
            block.storeLE(ino, at: used)
            block.storeLE(UInt16(length), at: used + 4)
            block[used + 6] = UInt8(name.count)
            block[used + 7] = UInt8(type)
            for (i, byte) in name.enumerated() { block[used + 8 + i] = byte }
            lastRecord = used
            used += length
        }

        add([0x2E], dir, Int32(EXT2_FT_DIR))
        add([0x2E, 0x2E], parent, Int32(EXT2_FT_DIR))
        for entry in entries { add(entry.name, entry.inode, entry.fileType) }
        closeBlock()

        guard let first = try blockRuns(dir).first, first.logical == 0 else {
            throw Ext2FormatError.unsupported(image: image, path: "inode \(dir)", what: "a directory without its first block")
        }
        try blocks[0].withUnsafeBytes { try writeBlocks(first.physical, count: 1, from: $0.baseAddress!) }
        let writer = try BlockWriter(self, dir)
        if blocks.count > 1 {
            let rest = Array(blocks[1...].joined())
            try rest.withUnsafeBytes { try writer.write($0, atBlock: 1) }
        }
        try writer.finish(size: UInt64(blocks.count * blockSize))
    }
}
