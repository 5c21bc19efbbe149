import ImageCore

/// Virtual blocks written into an existing VDI image in place, as qemu's vdi driver writes them:
///
/// ```
/// virtual block i --map[i]--> k < cBlocksAllocated : overwritten at offData + k x cbBlock
///                             free or zero         : k = cBlocksAllocated++, the block appended
///                                                    there, map[i] = k
/// ```
/// The image is opened and checked whole by `VDIReader` first (header, every map entry), so a
/// damaged image is refused before anything is written. The writes go as qemu orders them: the
/// data blocks, then the header's allocated-block count, then the map entries, each synced; a crash
/// leaves at worst a block counted but unused, never a map entry beyond the count.
public final class VDIInPlaceWriter: InPlaceDiskWriter {
    public let path: String
    public let unitSize: UInt64
    let header: VDIHeader
    let file: RawFile
    var map: [UInt32]
    var mapDirty: Set<Int> = []
    var allocated: UInt32
    var writes: [(block: UInt64, host: UInt64)] = []

    public init(path: String) throws {
        let reader = try VDIReader(path: path)
        self.path = path
        header = reader.header
        map = reader.blockMap
        allocated = header.allocatedBlocks
        unitSize = UInt64(header.blockSize)
        file = try RawFile(path: path, mode: .readWrite)
    }

    public func plan(_ units: [UInt64]) throws {
        for block in units.sorted() {
            guard block < UInt64(map.count) else {
                throw ImageReadError.corrupt(format: .vdi, path: path, offset: UInt64(header.blockMapOffset),
                                             reason: "virtual block \(block) is beyond the \(map.count) blocks of the map")
            }
            var entry = map[Int(block)]
            if entry == VDIHeader.freeBlock || entry == VDIHeader.zeroBlock {
                guard allocated < header.blockCount else {
                    throw ImageReadError.corrupt(format: .vdi, path: path, offset: 388,
                                                 reason: "all \(header.blockCount) blocks are allocated already")
                }
                entry = allocated
                allocated += 1
                map[Int(block)] = entry
                mapDirty.insert(Int(block))
            }
            writes.append((block, UInt64(header.dataOffset) + UInt64(entry) * unitSize))
        }
    }

    public func commit(contents: (UInt64) throws -> [UInt8]) throws {
        try checkHostSpace(file, growth: UInt64(allocated - header.allocatedBlocks) * unitSize)
        for (block, host) in writes { try file.write(try contents(block), at: host) }
        try file.sync()
        guard !mapDirty.isEmpty else { return }
        var count = [UInt8](repeating: 0, count: 4)
        count.storeLE(allocated, at: 0)
        try file.write(count, at: 388)
        try file.sync()
        for block in mapDirty.sorted() {
            var entry = [UInt8](repeating: 0, count: 4)
            entry.storeLE(map[block], at: 0)
            try file.write(entry, at: UInt64(header.blockMapOffset) + UInt64(block) * 4)
        }
        try file.sync()
    }
}
