import ImageCore

/// Parts of the virtual disk written into an existing VHDX image in place, without the log:
///
/// ```
/// present block i --BAT[i + i / chunkRatio]--> MiB m : data overwritten at m x 1 MiB
/// absent block (NOT_PRESENT, ZERO, UNMAPPED...)      : a whole block appended at the first MiB
///                                                      past the file and its regions, BAT entry
///                                                      set FULLY_PRESENT with that MiB
/// ```
/// The image is opened and checked whole by `VHDXReader` first (headers, regions, metadata, every
/// BAT entry; an unreplayed log or a parent is refused). Before any data changes, the spec asks
/// for new FileWriteGuid and DataWriteGuid values: the header is written to the other slot with
/// the next sequence number, then to the first (both synced), so the two copies agree. Then the
/// blocks, synced; then the BAT entries, synced: a crash leaves at worst a block appended but
/// unused, which readers ignore and `qemu-img check` does not count as corruption.
public final class VHDXInPlaceWriter: InPlaceDiskWriter {
    public let path: String
    public let unitSize: UInt64
    let file: RawFile
    let reader: VHDXReader
    var offsets: [UInt64]
    var added: [Int] = []
    var writes: [(unit: UInt64, host: UInt64)] = []
    let firstFree: UInt64
    var appendAt: UInt64

    public init(path: String) throws {
        reader = try VHDXReader(path: path)
        self.path = path
        unitSize = reader.blockSize
        offsets = reader.blockOffsets
        file = try RawFile(path: path, mode: .readWrite)
        let end = max(try file.size, reader.structuresEnd)
        firstFree = (end + VHDX.MiB - 1) / VHDX.MiB * VHDX.MiB
        appendAt = firstFree
    }

    public func plan(_ units: [UInt64]) throws {
        for unit in units.sorted() {
            guard unit < UInt64(offsets.count) else {
                throw ImageReadError.corrupt(format: .vhdx, path: path, offset: reader.batOffset,
                                             reason: "virtual block \(unit) is beyond the disk's \(offsets.count) blocks")
            }
            if offsets[Int(unit)] == 0 {
                // Past 2^44 MiB the BAT entry cannot say where the block is.
                guard appendAt / VHDX.MiB < 1 << 44 else {
                    throw ImageReadError.corrupt(format: .vhdx, path: path, offset: appendAt, reason: "the file is too large for another block")
                }
                offsets[Int(unit)] = appendAt
                added.append(Int(unit))
                appendAt += unitSize
            }
            writes.append((unit, offsets[Int(unit)]))
        }
    }

    public func commit(contents: (UInt64) throws -> [UInt8]) throws {
        try checkHostSpace(file, growth: appendAt - firstFree)
        try renewWriteGuids()
        for (unit, host) in writes {
            let bytes = try contents(unit)
            precondition(UInt64(bytes.count) == unitSize, "a VHDX unit is a whole block")
            try file.write(bytes, at: host)
        }
        try file.sync()
        guard !added.isEmpty else { return }
        for block in added {
            let entry = UInt64(block) + UInt64(block) / reader.chunkRatio
            var bytes = [UInt8](repeating: 0, count: 8)
            bytes.storeLE((offsets[block] / VHDX.MiB) << 20 | VHDX.BlockState.fullyPresent.rawValue, at: 0)
            try file.write(bytes, at: reader.batOffset + entry * 8)
        }
        try file.sync()
    }

    /// New FileWriteGuid and DataWriteGuid, in both header slots, the other slot first.
    func renewWriteGuids() throws {
        var header = reader.header
        header.fileWriteGuid = UUIDBytes.random(for: "vhdx file write guid \(path)")
        header.dataWriteGuid = UUIDBytes.random(for: "vhdx data write guid \(path)")
        let other = VHDX.headerOffsets.first { $0 != reader.headerOffset } ?? VHDX.headerOffsets[1]
        for slot in [other, reader.headerOffset] {
            header.sequenceNumber += 1
            try file.write(header.encoded(), at: slot)
            try file.sync()
        }
    }
}
