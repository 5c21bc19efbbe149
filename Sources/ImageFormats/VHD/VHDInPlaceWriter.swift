import ImageCore

/// Parts of the virtual disk written into an existing VHD image in place, as qemu's vpc driver
/// writes them:
///
/// ```
/// fixed:    virtual byte v at file byte v (the footer after the data left alone)
/// dynamic:  block i --BAT[i]--> sector s : bitmap set whole at s x 512, data overwritten after it
///                    unused             : bitmap (all ones) and data written where the end footer
///                                         was, the footer written again after them, BAT[i] = s
/// ```
/// The image is opened and checked whole by `VHDReader` first (both footers, the dynamic header,
/// every BAT entry). A block written has every sector marked present, its data being the whole
/// block as it now reads. Writes go data and footer first, then the BAT entries, each synced: a
/// crash leaves at worst a block appended but unused.
public final class VHDInPlaceWriter: InPlaceDiskWriter {
    public let path: String
    public let unitSize: UInt64
    let file: RawFile
    let footer: VHDFooter
    let dynamicHeader: VHDDynamicHeader?
    let bitmapSize: UInt64
    let dataEnd: UInt64
    var table: [UInt32]
    var tableDirty: Set<Int> = []
    var writes: [(unit: UInt64, host: UInt64)] = []
    /// Where the next block goes (a dynamic disk's end footer, moved on past each block added).
    var appendAt: UInt64
    let originalEnd: UInt64

    public init(path: String) throws {
        let reader = try VHDReader(path: path)
        self.path = path
        footer = reader.footer
        dynamicHeader = reader.dynamicHeader
        bitmapSize = reader.bitmapSize
        table = reader.blockAllocationTable
        file = try RawFile(path: path, mode: .readWrite)
        let fileSize = try file.size
        dataEnd = fileSize - UInt64(VHDFooter.size)
        // The reader forgives a lost end footer; blocks are added where it stands, so it must be there.
        guard try file.read(count: 8, at: dataEnd) == Array(VHDFooter.cookie.utf8) else {
            throw ImageReadError.corrupt(format: .vhd, path: path, offset: dataEnd, reason: "no footer in the last sector: blocks cannot be added")
        }
        // A fixed disk in 64 KiB pieces; a dynamic one block by block.
        unitSize = dynamicHeader.map { UInt64($0.blockSize) } ?? (64 << 10)
        appendAt = dataEnd
        originalEnd = fileSize
        if dynamicHeader != nil, appendAt % 512 != 0 {
            throw ImageReadError.corrupt(format: .vhd, path: path, offset: appendAt, reason: "the end footer is not sector-aligned")
        }
    }

    public func plan(_ units: [UInt64]) throws {
        for unit in units.sorted() {
            guard dynamicHeader != nil else {
                guard unit * unitSize < dataEnd else {
                    throw ImageReadError.corrupt(format: .vhd, path: path, offset: dataEnd, reason: "a write at byte \(unit * unitSize) is past the disk's data")
                }
                writes.append((unit, unit * unitSize))
                continue
            }
            guard unit < UInt64(table.count) else {
                throw ImageReadError.corrupt(format: .vhd, path: path, offset: dynamicHeader!.tableOffset,
                                             reason: "virtual block \(unit) is beyond the \(table.count) entries of the BAT")
            }
            var sector = table[Int(unit)]
            if sector == VHDDynamicHeader.unusedBlock {
                guard appendAt / 512 < UInt64(UInt32.max) else {
                    throw ImageReadError.corrupt(format: .vhd, path: path, offset: appendAt, reason: "the file is too large for another block")
                }
                sector = UInt32(appendAt / 512)
                appendAt += bitmapSize + unitSize
                table[Int(unit)] = sector
                tableDirty.insert(Int(unit))
            }
            writes.append((unit, UInt64(sector) * 512))
        }
    }

    public func commit(contents: (UInt64) throws -> [UInt8]) throws {
        try checkHostSpace(file, growth: appendAt - dataEnd)
        for (unit, host) in writes {
            var bytes = try contents(unit)
            if dynamicHeader != nil {
                try file.write([UInt8](repeating: 0xFF, count: Int(bitmapSize)), at: host)
                try file.write(bytes, at: host + bitmapSize)
            } else {
                bytes = Array(bytes.prefix(Int(min(unitSize, dataEnd - host))))
                try file.write(bytes, at: host)
            }
        }
        if appendAt != dataEnd { try file.write(footer.encoded(), at: appendAt) }
        try file.sync()
        guard let dynamicHeader, !tableDirty.isEmpty else { return }
        for index in tableDirty.sorted() {
            var entry = [UInt8](repeating: 0, count: 4)
            entry.storeBE(table[index], at: 0)
            try file.write(entry, at: dynamicHeader.tableOffset + UInt64(index) * 4)
        }
        try file.sync()
    }
}
