import ImageCore

/// Grains written into an existing monolithicSparse VMDK in place, as qemu's vmdk driver writes
/// them:
///
/// ```
/// grain g --GD[g / numGTEsPerGT]--> grain table --GT[g % numGTEsPerGT]--> sector s
///   s >= overHead              -> overwritten at s x 512
///   0, or 1 with zeroed grains -> the grain appended at the end of the file, GT entry = it,
///                                 in the grain table and in its redundant copy
/// ```
/// The image is opened and checked whole by `VMDKReader` first. Grain tables are not added (qemu
/// does not add them either; VMware and qemu-img create them all with the disk): a grain whose
/// directory entry is empty is refused. streamOptimized (compressed grains, in stream order),
/// descriptor files and flat or split extents are refused. Writes go grains first, then the grain
/// table entries, each synced: a crash leaves at worst a grain appended but unused.
public final class VMDKInPlaceWriter: InPlaceDiskWriter {
    public let path: String
    public let unitSize: UInt64
    let file: RawFile
    let grainsPerTable: UInt64
    let overHead: UInt64
    let zeroGrains: Bool
    let directory: [UInt32]
    let redundantDirectory: [UInt32]?
    let fileSize: UInt64
    var tables: [Int: [UInt32]] = [:]
    var entriesDirty: Set<UInt64> = []
    var writes: [(grain: UInt64, host: UInt64)] = []
    var appendAt: UInt64

    public init(path: String) throws {
        let reader = try VMDKReader(path: path)
        self.path = path
        guard reader.createType == "monolithicSparse", reader.extents.count == 1, reader.extents[0].start == 0,
              case let .sparse(extent) = reader.extents[0].data, extent.path == path else {
            throw InPlaceWriteError.unsupported(path: path, what: "a VMDK of createType \(reader.createType) (only monolithicSparse is)")
        }
        let header = extent.header
        guard !extent.compressed, !header.flags.contains(.markers) else {
            throw InPlaceWriteError.unsupported(path: path, what: "a VMDK with compressed grains")
        }
        unitSize = UInt64(extent.grainBytes)
        grainsPerTable = UInt64(extent.grainsPerTable)
        overHead = header.overHead
        zeroGrains = header.flags.contains(.zeroGrains)
        let opened = try RawFile(path: path, mode: .readWrite)
        file = opened
        let size = try opened.size
        fileSize = size
        let count = extent.directory.count
        func readDirectory(at offset: UInt64) throws -> [UInt32] {
            let raw = try opened.read(count: count * 4, at: offset)
            return (0..<count).map { raw.loadLE(UInt32.self, at: $0 * 4) }
        }
        // Read again as stored: the reader's copy has the entries of empty tables zeroed.
        directory = try readDirectory(at: extent.directoryOffset)
        if header.flags.contains(.redundantGrainTable), header.rgdOffset != 0, header.rgdOffset < size / 512 {
            redundantDirectory = try readDirectory(at: header.rgdOffset * 512)
        } else {
            redundantDirectory = nil
        }
        appendAt = (size + 511) / 512 * 512
    }

    private func table(_ index: Int) throws -> [UInt32] {
        if let table = tables[index] { return table }
        let sector = UInt64(directory[index])
        let bytes = grainsPerTable * 4
        guard sector * 512 <= fileSize, bytes <= fileSize - sector * 512 else {
            throw ImageReadError.corrupt(format: .vmdk, path: path, offset: sector * 512, reason: "grain table \(index) lies outside the file")
        }
        let raw = try file.read(count: Int(bytes), at: sector * 512)
        let table = (0..<Int(grainsPerTable)).map { raw.loadLE(UInt32.self, at: $0 * 4) }
        tables[index] = table
        return table
    }

    public func plan(_ units: [UInt64]) throws {
        for grain in units.sorted() {
            let index = Int(grain / grainsPerTable), entry = Int(grain % grainsPerTable)
            guard index < directory.count else {
                throw ImageReadError.corrupt(format: .vmdk, path: path, offset: 0, reason: "grain \(grain) is beyond the grain directory")
            }
            guard directory[index] != 0 else {
                throw InPlaceWriteError.unsupported(path: path, what: "a VMDK whose grain directory entry \(index) has no grain table (qemu adds none either)")
            }
            var table = try table(index)
            let sector = UInt64(table[entry])
            if sector == 0 || (sector == 1 && zeroGrains) {
                table[entry] = UInt32(appendAt / 512)
                guard appendAt / 512 < UInt64(UInt32.max) else {
                    throw ImageReadError.corrupt(format: .vmdk, path: path, offset: appendAt, reason: "the file is too large for another grain")
                }
                writes.append((grain, appendAt))
                appendAt += unitSize
                tables[index] = table
                entriesDirty.insert(grain)
            } else {
                guard sector >= overHead, sector * 512 + unitSize <= fileSize else {
                    throw ImageReadError.corrupt(format: .vmdk, path: path, offset: UInt64(directory[index]) * 512 + UInt64(entry) * 4,
                                                 reason: "grain \(grain) at sector \(sector) lies in the metadata or outside the file")
                }
                writes.append((grain, sector * 512))
            }
        }
    }

    public func commit(contents: (UInt64) throws -> [UInt8]) throws {
        try checkHostSpace(file, growth: appendAt - (fileSize + 511) / 512 * 512)
        for (grain, host) in writes { try file.write(try contents(grain), at: host) }
        try file.sync()
        for grain in entriesDirty.sorted() {
            let index = Int(grain / grainsPerTable), entry = UInt64(grain % grainsPerTable)
            var bytes = [UInt8](repeating: 0, count: 4)
            bytes.storeLE(tables[index]![Int(entry)], at: 0)
            try file.write(bytes, at: UInt64(directory[index]) * 512 + entry * 4)
            if let redundant = redundantDirectory?[index], redundant != 0 {
                try file.write(bytes, at: UInt64(redundant) * 512 + entry * 4)
            }
        }
        try file.sync()
    }
}
