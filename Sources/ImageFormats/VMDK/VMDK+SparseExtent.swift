import Compression
import ImageCore

/// One hosted sparse extent ("KDMV" file, see `VMDK` for both layouts) opened for reading, with
/// every piece of metadata checked against the file when it is opened:
/// ```
/// header (sector 0)                  or, when gdOffset is GD_AT_END, the footer copy:
///   capacity, grainSize, numGTEsPerGT  ... | footer marker | footer header | EOS marker |
///   gdOffset, overHead, compression          (size - 1536)   (size - 1024)  (size - 512)
/// grain directory (gdOffset)   u32 per grain table: its sector, 0 = a table of unallocated grains
/// grain table                  numGTEsPerGT u32 entries: the grain's sector (uncompressed data), or
///                              the sector of its grain marker (u64 LBA, u32 size, zlib data);
///                              0 = unallocated, 1 = a grain of zeros; both read as zeros
/// ```
/// The redundant grain directory is not read (qemu does not use it either). The grain directory
/// is held (at most 32 Mi entries, and never more than the file holds); grain tables are read
/// once to be checked and read again as the disk is streamed, so memory does not grow with the
/// number of allocated grains. The file is open only while it is checked and while it is
/// streamed: a disk split into a thousand 2 GiB extents does not hold a thousand descriptors.
final class VMDKSparseExtent {
    let path: String
    /// How the file is opened: without following a symlink when `path` was resolved from a
    /// descriptor's extent line.
    let openMode: RawFile.Mode
    let fileSize: UInt64
    /// The header the extent is read by: the footer's copy for a stream with GD_AT_END.
    let header: VMDKHeader
    /// Where `header` sits in the file (0, or the footer's byte offset), for messages.
    let headerOffset: UInt64
    let compressed: Bool
    let capacityBytes: UInt64
    let grainBytes: Int
    let grainsPerTable: Int
    let grainCount: UInt64
    /// Byte offset of the grain directory and its entries.
    let directoryOffset: UInt64
    /// The grain directory, with entries of tables that map no grain set to 0 once checked, so
    /// that a directory naming one empty table a million times costs one read, not a million.
    private(set) var directory: [UInt32]

    /// 2^18 sectors = 128 MiB: a grain is inflated into memory whole, so its size is capped (qemu
    /// allows 1 GiB; every VMware product writes 64 KiB).
    static let maximumGrainSectors: UInt64 = 1 << 18
    /// qemu's cap on the grain directory (L1) size: 32 Mi entries (128 MiB) cover 8 TiB even at
    /// 512-byte grains, more than the 2 TiB a sparse extent can address.
    static let maximumDirectoryEntries: UInt64 = 32 << 20
    /// Marker bytes before a compressed grain's zlib data (u64 LBA, u32 size).
    static let markerHeaderSize = UInt64(VMDKMarker.grainHeaderSize)
    /// Bytes of a grain marker read to decode it (`VMDKMarker` looks at 16).
    static let markerReadSize: UInt64 = 16

    /// A file that starts with "COWD": the ESX 2 / vmfsSparse extent, which Rehost does not read.
    static let cowdMagic: UInt32 = 0x4457_4F43

    /// Opens and checks the extent; `embeddedDescriptor` receives its descriptor text and byte
    /// offset, when the header names one.
    init(path: String, openMode: RawFile.Mode = .readOnly,
         embeddedDescriptor: ((_ text: String, _ offset: UInt64) throws -> Void)? = nil) throws {
        self.path = path
        self.openMode = openMode
        let file = try RawFile(path: path, mode: openMode)
        fileSize = try file.size
        func corrupt(_ offset: UInt64, _ reason: String) -> ImageReadError {
            .corrupt(format: .vmdk, path: path, offset: offset, reason: reason)
        }
        let sector = UInt64(VMDK.sectorSize)
        guard fileSize >= sector else {
            throw ImageReadError.truncated(format: .vmdk, path: path, offset: 0, needed: sector, fileSize: fileSize)
        }
        let first = try file.read(count: VMDKHeader.size, at: 0)
        let magic = first.loadLE(UInt32.self, at: VMDKHeader.Field.magic.rawValue)
        if magic == Self.cowdMagic {
            throw ImageReadError.unsupported(format: .vmdk, path: path, feature: "a COWD (ESX 2 / vmfsSparse) sparse extent",
                                             advice: "convert it on ESXi with `vmkfstools -i disk.vmdk -d thin new.vmdk` or with `qemu-img convert -O vmdk` first")
        }
        guard magic == VMDK.magic else {
            throw corrupt(0, "sparse extent magic is 0x\(String(magic, radix: 16)), expected 0x564d444b (\"KDMV\")")
        }
        var header = VMDKHeader(fields: first)
        var headerOffset: UInt64 = 0
        func field(_ field: VMDKHeader.Field) -> UInt64 { headerOffset + UInt64(field.rawValue) }

        if header.gdOffset == VMDK.gdAtEnd {
            // A stream: the grain directory is known only to the footer, a header copy between its
            // marker and the end-of-stream marker in the last three sectors.
            let footerSpan = 3 * sector
            guard fileSize >= sector + footerSpan else {
                throw ImageReadError.truncated(format: .vmdk, path: path, offset: sector, needed: footerSpan, fileSize: fileSize)
            }
            let markerAt = fileSize - footerSpan
            let tail = try file.read(count: Int(footerSpan), at: markerAt)
            func marker(_ index: Int) -> VMDKMarker? {
                try? VMDKMarker(decoding: Array(tail[(index * VMDK.sectorSize)..<((index + 1) * VMDK.sectorSize)]), path: path, offset: 0)
            }
            guard case .metadata(.footer, _) = marker(0) else {
                throw corrupt(markerAt, "gdOffset is GD_AT_END but the third sector from the end is no footer marker (size 0, type 3)")
            }
            guard case .metadata(.endOfStream, 0) = marker(2) else {
                throw corrupt(fileSize - sector, "gdOffset is GD_AT_END but the last sector is no end-of-stream marker (512 zero bytes)")
            }
            let footer = Array(tail[VMDK.sectorSize..<(2 * VMDK.sectorSize)])
            let footerMagic = footer.loadLE(UInt32.self, at: VMDKHeader.Field.magic.rawValue)
            guard footerMagic == VMDK.magic else {
                throw corrupt(markerAt + sector, "footer magic is 0x\(String(footerMagic, radix: 16)), expected 0x564d444b (\"KDMV\")")
            }
            header = VMDKHeader(fields: footer)
            headerOffset = markerAt + sector
            guard header.gdOffset != VMDK.gdAtEnd else {
                throw corrupt(field(.gdOffset), "the footer's gdOffset is GD_AT_END too; it must give the grain directory's sector")
            }
        }
        self.header = header
        self.headerOffset = headerOffset

        guard header.version != 0 else { throw corrupt(field(.version), "version is 0, expected 1, 2 or 3") }
        guard header.version <= 3 else {
            throw ImageReadError.unsupported(format: .vmdk, path: path, feature: "sparse extent version \(header.version)",
                                             advice: "convert it to a version 1-3 VMDK with VMware's `vmware-vdiskmanager -r` first")
        }
        guard header.compressAlgorithm <= 1 else {
            throw ImageReadError.unsupported(format: .vmdk, path: path, feature: "grain compression algorithm \(header.compressAlgorithm)",
                                             advice: "only deflate (1) is known; convert the disk with the tool that made it first")
        }
        compressed = header.compressAlgorithm == 1
        if header.flags.contains(.compressedGrains) && !compressed {
            throw corrupt(field(.flags), "flags 0x\(String(header.flags.rawValue, radix: 16)) say grains are compressed but compressAlgorithm is 0 (none)")
        }
        if compressed && !header.flags.contains(.markers) {
            throw ImageReadError.unsupported(format: .vmdk, path: path, feature: "compressed grains without grain markers",
                                             advice: "convert it with `qemu-img convert -O vmdk` first")
        }
        let grainSize = header.grainSize
        guard grainSize >= 1, grainSize <= Self.maximumGrainSectors, grainSize & (grainSize - 1) == 0 else {
            throw corrupt(field(.grainSize), "grainSize is \(grainSize) sectors, expected a power of two up to \(Self.maximumGrainSectors) (128 MiB)")
        }
        guard (1...512).contains(header.numGTEsPerGT) else {
            throw corrupt(field(.numGTEsPerGT), "numGTEsPerGT is \(header.numGTEsPerGT), expected 512 (at most 512)")
        }
        guard header.capacity <= UInt64.max / sector else {
            throw corrupt(field(.capacity), "capacity \(header.capacity) sectors does not fit in 64 bits of bytes")
        }
        guard header.overHead <= UInt64.max / sector else {
            throw corrupt(field(.overHead), "overHead \(header.overHead) sectors does not fit in 64 bits of bytes")
        }
        // Everything before the first grain must be there (qemu checks the same).
        guard header.overHead * sector <= fileSize else {
            throw ImageReadError.truncated(format: .vmdk, path: path, offset: 0, needed: header.overHead * sector, fileSize: fileSize)
        }
        capacityBytes = header.capacity * sector
        grainBytes = Int(grainSize) * VMDK.sectorSize
        grainsPerTable = Int(header.numGTEsPerGT)
        grainCount = header.capacity / grainSize + (header.capacity % grainSize == 0 ? 0 : 1)
        let tableSpan = UInt64(grainsPerTable)
        let tableCount = grainCount / tableSpan + (grainCount % tableSpan == 0 ? 0 : 1)
        guard tableCount <= Self.maximumDirectoryEntries else {
            throw corrupt(field(.capacity), "capacity \(header.capacity) sectors needs \(tableCount) grain tables, more than the \(Self.maximumDirectoryEntries) a grain directory may hold")
        }
        guard tableCount == 0 || header.gdOffset != 0 else {
            throw corrupt(field(.gdOffset), "gdOffset is 0: a sparse extent of \(header.capacity) sectors needs a grain directory")
        }
        guard header.gdOffset <= UInt64.max / sector else {
            throw corrupt(field(.gdOffset), "gdOffset \(header.gdOffset) sectors does not fit in 64 bits of bytes")
        }
        directoryOffset = header.gdOffset * sector
        try Self.checkInside(start: directoryOffset, length: tableCount * 4, what: "the grain directory (gdOffset \(header.gdOffset))",
                             entryAt: field(.gdOffset), fileSize: fileSize, path: path)
        // Read in 1 MiB pieces: the directory is held once, never beside a copy of its bytes.
        var entries: [UInt32] = []
        entries.reserveCapacity(Int(tableCount))
        let chunkEntries = 1 << 18
        while entries.count < Int(tableCount) {
            let count = min(chunkEntries, Int(tableCount) - entries.count)
            let raw = try file.read(count: count * 4, at: directoryOffset + UInt64(entries.count) * 4)
            for i in 0..<count { entries.append(raw.loadLE(UInt32.self, at: i * 4)) }
        }
        directory = entries

        // Each distinct grain table read once, in sector order. Directory entries may share a
        // table that maps no grain (all 0 or 1: it adds no data); a shared table that maps grains
        // would make the same grains appear at many places of the disk, and is refused.
        // The sort costs 8 bytes per directory entry, next to the 4 the directory holds.
        var byTable: [UInt64] = []
        byTable.reserveCapacity(directory.count)
        for (index, tableSector) in directory.enumerated() where tableSector != 0 {
            byTable.append(UInt64(tableSector) << 32 | UInt64(index))
        }
        byTable.sort()
        var allocated: UInt64 = 0
        var group = byTable.startIndex
        while group < byTable.endIndex {
            let tableSector = byTable[group] >> 32
            var end = group + 1
            while end < byTable.endIndex, byTable[end] >> 32 == tableSector { end += 1 }
            // The smallest index first: for the last (partial) table it is read alone.
            let first = Int(byTable[group] & 0xFFFF_FFFF)
            let entries = try grainTable(first, in: file) ?? []
            let used = entries.lazy.filter { $0 > 1 }.count
            if used > 0, end - group > 1 {
                let second = Int(byTable[group + 1] & 0xFFFF_FFFF)
                throw corrupt(directoryOffset + UInt64(second) * 4,
                              "grain directory entries \(first) and \(second) both point to grain table at sector \(tableSector), which maps \(used) grains: shared grain tables are refused")
            }
            if used == 0 {
                for position in group..<end { directory[Int(byTable[position] & 0xFFFF_FFFF)] = 0 }
            }
            allocated += UInt64(used)
            group = end
        }
        // Uncompressed grains must each have bytes of their own. First the pigeonhole bound (it
        // needs no memory), then a map of the file's sectors; compressed grains are caught when
        // read, as each marker names the one LBA it holds.
        if !compressed, allocated > 0 {
            let grainSectorCount = UInt64(grainBytes) / sector
            let fileSectors = fileSize / sector
            guard (allocated - 1) * grainSectorCount < fileSectors else {
                throw corrupt(directoryOffset, "the grain tables map \(allocated) grains of \(grainBytes) bytes, more than the \(fileSize)-byte file can hold: grains are shared")
            }
            if var map = HostUseMap(units: fileSectors) {
                for (index, tableSector) in directory.enumerated() where tableSector != 0 {
                    guard let entries = try grainTable(index, in: file) else { continue }
                    let firstGrain = UInt64(index) * UInt64(grainsPerTable)
                    for (slot, entry) in entries.enumerated() where entry > 1 {
                        let length = (grainLength(firstGrain + UInt64(slot)) + sector - 1) / sector
                        if let clash = map.use(first: UInt64(entry), count: length) {
                            throw corrupt(UInt64(tableSector) * sector + UInt64(slot) * 4,
                                          "the grain table entry of grain \(firstGrain + UInt64(slot)) points to sector \(entry), whose sector \(clash) another grain already uses: shared grains are refused")
                        }
                    }
                }
            }
        }
        if let embeddedDescriptor, let text = try self.embeddedDescriptor(in: file) {
            try embeddedDescriptor(text, header.descriptorOffset * UInt64(VMDK.sectorSize))
        }
    }

    /// The entries of grain table `index` that cover the disk (fewer than numGTEsPerGT in the last
    /// table), each checked against the file: an uncompressed grain must lie in the file up to
    /// the end of the disk; a compressed grain's marker must start in the file (its size and LBA
    /// are checked when it is read). Nil for a table the directory leaves out.
    func grainTable(_ index: Int, in file: RawFile) throws -> [UInt32]? {
        let tableSector = directory[index]
        guard tableSector != 0 else { return nil }
        let sector = UInt64(VMDK.sectorSize)
        let entryAt = directoryOffset + UInt64(index) * 4
        let tableOffset = UInt64(tableSector) * sector
        try Self.checkInside(start: tableOffset, length: UInt64(grainsPerTable) * 4, what: "grain table \(index) (sector \(tableSector))",
                             entryAt: entryAt, fileSize: fileSize, path: path)
        let firstGrain = UInt64(index) * UInt64(grainsPerTable)
        let count = Int(min(UInt64(grainsPerTable), grainCount - firstGrain))
        let bytes = try file.read(count: count * 4, at: tableOffset)
        var entries = [UInt32](repeating: 0, count: count)
        for slot in 0..<count {
            let entry = bytes.loadLE(UInt32.self, at: slot * 4)
            entries[slot] = entry
            guard entry > 1 else { continue }
            let grain = firstGrain + UInt64(slot)
            let length = compressed ? Self.markerReadSize : grainLength(grain)
            try Self.checkInside(start: UInt64(entry) * sector, length: length,
                                 what: compressed ? "the marker of grain \(grain)" : "grain \(grain)",
                                 entryAt: tableOffset + UInt64(slot) * 4, fileSize: fileSize, path: path)
        }
        return entries
    }

    /// Bytes of grain `grain` inside the disk: a whole grain but for the last one.
    func grainLength(_ grain: UInt64) -> UInt64 {
        min(UInt64(grainBytes), capacityBytes - grain * UInt64(grainBytes))
    }

    /// A structure of `length` bytes at `start`, named by the entry or field at `entryAt`, must
    /// lie in the file: starting past the end, the entry is wrong (corrupt); starting inside but
    /// running past the end, the file was cut short (truncated).
    static func checkInside(start: UInt64, length: UInt64, what: String, entryAt: UInt64, fileSize: UInt64, path: String) throws {
        guard start < fileSize || length == 0 && start <= fileSize else {
            throw ImageReadError.corrupt(format: .vmdk, path: path, offset: entryAt,
                                         reason: "\(what) is at byte \(start), past the end of the file (\(fileSize) bytes)")
        }
        guard length <= fileSize - start else {
            throw ImageReadError.truncated(format: .vmdk, path: path, offset: start, needed: length, fileSize: fileSize)
        }
    }

    /// The embedded descriptor text (up to its first NUL, at most 64 KiB), or nil when the header
    /// names none.
    private func embeddedDescriptor(in file: RawFile) throws -> String? {
        guard header.descriptorOffset != 0, header.descriptorSize != 0 else { return nil }
        let sector = UInt64(VMDK.sectorSize)
        let fieldAt = headerOffset + UInt64(VMDKHeader.Field.descriptorOffset.rawValue)
        guard header.descriptorOffset <= fileSize / sector, header.descriptorSize <= fileSize / sector else {
            throw ImageReadError.corrupt(format: .vmdk, path: path, offset: fieldAt,
                                         reason: "the descriptor (\(header.descriptorSize) sectors at sector \(header.descriptorOffset)) lies past the end of the file (\(fileSize) bytes)")
        }
        let start = header.descriptorOffset * sector
        let length = header.descriptorSize * sector
        try Self.checkInside(start: start, length: length, what: "the descriptor", entryAt: fieldAt, fileSize: fileSize, path: path)
        let bytes = try file.read(count: Int(min(length, UInt64(VMDKReader.maximumDescriptorSize))), at: start)
        return String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
    }

    /// The compressed size a grain's marker gives, once the marker at `markerAt` (its first
    /// bytes in `head`) is known to be the grain marker the table promises: the right LBA, a size
    /// a grain can take, and data that lies in the file.
    func grainMarkerSize(_ grain: UInt64, head: [UInt8], at markerAt: UInt64) throws -> UInt64 {
        let marker: VMDKMarker
        do {
            marker = try VMDKMarker(decoding: head, path: path, offset: markerAt)
        } catch {
            throw ImageReadError.corrupt(format: .vmdk, path: path, offset: markerAt, reason: "grain \(grain)'s table entry points at no grain marker: \(error)")
        }
        guard case let .grain(lba, size) = marker else {
            throw ImageReadError.corrupt(format: .vmdk, path: path, offset: markerAt, reason: "grain \(grain)'s table entry points at a metadata marker, not a grain marker")
        }
        guard lba == grain * header.grainSize else {
            throw ImageReadError.corrupt(format: .vmdk, path: path, offset: markerAt, reason: "grain marker says LBA \(lba), but the grain table puts it at LBA \(grain * header.grainSize)")
        }
        guard UInt64(size) <= maximumCompressedSize else {
            throw ImageReadError.corrupt(format: .vmdk, path: path, offset: markerAt, reason: "grain marker says \(size) compressed bytes, more than a \(grainBytes)-byte grain can take (\(maximumCompressedSize))")
        }
        let dataAt = markerAt + Self.markerHeaderSize
        guard UInt64(size) <= fileSize - dataAt else {
            throw ImageReadError.truncated(format: .vmdk, path: path, offset: dataAt, needed: UInt64(size), fileSize: fileSize)
        }
        return UInt64(size)
    }

    // MARK: Streaming

    /// Hands the extent's allocated grains to `body`, at `base` + their offset in the extent.
    func forEachDataPiece(base: UInt64, scratch: VMDKScratch,
                          _ body: (_ offset: UInt64, _ data: UnsafeRawBufferPointer) throws -> Void) throws {
        let file = try RawFile(path: path, mode: openMode)
        if compressed {
            try streamCompressed(file, base: base, scratch: scratch, body)
        } else {
            let reads = try HostRunStreamer(file: file, format: .vmdk, diskSize: capacityBytes)
            for index in directory.indices {
                guard let table = try grainTable(index, in: file) else { continue }
                let firstGrain = UInt64(index) * UInt64(grainsPerTable)
                for (slot, entry) in table.enumerated() where entry > 1 {
                    let grain = firstGrain + UInt64(slot)
                    try reads.add(virtual: base + grain * UInt64(grainBytes), host: UInt64(entry) * UInt64(VMDK.sectorSize),
                                  length: grainLength(grain), body)
                }
            }
            try reads.flush(body)
        }
    }

    /// Compressed grains in batches of about `maxPieceSize` of guest data: their markers and
    /// zlib data are read (in one read when the batch's markers lie close together, as they do in
    /// a stream), inflated on every core into the batch buffer, then handed out in order.
    private func streamCompressed(_ file: RawFile, base: UInt64, scratch: VMDKScratch,
                                  _ body: (_ offset: UInt64, _ data: UnsafeRawBufferPointer) throws -> Void) throws {
        let batchGrains = max(1, DiskImageReaders.maxPieceSize / grainBytes)
        var batch: [(grain: UInt64, marker: UInt64)] = []
        batch.reserveCapacity(batchGrains)
        for index in directory.indices {
            guard let table = try grainTable(index, in: file) else { continue }
            let firstGrain = UInt64(index) * UInt64(grainsPerTable)
            for (slot, entry) in table.enumerated() where entry > 1 {
                batch.append((firstGrain + UInt64(slot), UInt64(entry) * UInt64(VMDK.sectorSize)))
                if batch.count == batchGrains {
                    try inflate(batch, from: file, base: base, scratch: scratch, body)
                    batch.removeAll(keepingCapacity: true)
                }
            }
        }
        if !batch.isEmpty { try inflate(batch, from: file, base: base, scratch: scratch, body) }
    }

    /// The most zlib data one grain may take: deflate's stored blocks add 5 bytes per 64 KiB, but
    /// a compressor using only fixed Huffman codes grows random data by up to 1/8; twice the grain
    /// is ample and still bounds what a hostile marker can make us read.
    var maximumCompressedSize: UInt64 { 2 * UInt64(grainBytes) + 4096 }

    private func inflate(_ batch: [(grain: UInt64, marker: UInt64)], from file: RawFile, base: UInt64, scratch: VMDKScratch,
                         _ body: (_ offset: UInt64, _ data: UnsafeRawBufferPointer) throws -> Void) throws {
        // Where each grain's zlib data lies in `scratch.compressed`.
        var inputs: [Range<Int>] = []
        inputs.reserveCapacity(batch.count)
        let first = batch.lazy.map(\.marker).min()!
        let last = batch.lazy.map(\.marker).max()!
        let spanEnd = min(fileSize, last + Self.markerHeaderSize + maximumCompressedSize)
        let oneRead = spanEnd - first <= UInt64(batch.count) * UInt64(grainBytes) * 2 + maximumCompressedSize
        if oneRead {
            try scratch.readCompressed(file, count: Int(spanEnd - first), at: first)
        } else {
            scratch.compressed.removeAll(keepingCapacity: true)
        }
        for (grain, markerAt) in batch {
            // A whole sector when the file has it, so a metadata marker decodes as one.
            let headCount = Int(min(UInt64(VMDK.sectorSize), fileSize - markerAt))
            let head: [UInt8] = oneRead && markerAt + UInt64(headCount) <= spanEnd
                ? Array(scratch.compressed[Int(markerAt - first)..<(Int(markerAt - first) + headCount)])
                : try file.read(count: headCount, at: markerAt)
            let size = try grainMarkerSize(grain, head: head, at: markerAt)
            let dataAt = markerAt + Self.markerHeaderSize
            if oneRead {
                let start = Int(dataAt - first)
                inputs.append(start..<(start + Int(size)))
            } else {
                let start = scratch.compressed.count
                scratch.compressed += try file.read(count: Int(size), at: dataAt)
                inputs.append(start..<(start + Int(size)))
            }
        }

        let grainBytes = self.grainBytes
        let output = scratch.output(count: batch.count * grainBytes)
        let produced: [Int?] = scratch.compressed.withUnsafeBytes { input in
            parallelMap(batch.count) { slot in
                Decompressor.zlib.decompress(UnsafeRawBufferPointer(rebasing: input[inputs[slot]]),
                                             into: UnsafeMutableRawBufferPointer(rebasing: output[(slot * grainBytes)..<((slot + 1) * grainBytes)]))
            }
        }
        for (slot, (grain, markerAt)) in batch.enumerated() {
            let needed = grainLength(grain)
            guard let count = produced[slot] else {
                throw ImageReadError.corrupt(format: .vmdk, path: path, offset: markerAt,
                                             reason: "grain \(grain)'s zlib data does not inflate (corrupt, or more than \(grainBytes) bytes)")
            }
            guard UInt64(count) >= needed else {
                throw ImageReadError.corrupt(format: .vmdk, path: path, offset: markerAt,
                                             reason: "grain \(grain) inflates to \(count) bytes, expected \(needed)")
            }
        }

        // Adjacent grains sit side by side in the output too: hand them out as one piece.
        var runStart = 0
        var runLength = 0
        var runVirtual: UInt64 = 0
        func flush() throws {
            guard runLength > 0 else { return }
            try VMDKScratch.emit(UnsafeRawBufferPointer(rebasing: output[runStart..<(runStart + runLength)]), at: runVirtual, body)
            runLength = 0
        }
        for (slot, (grain, _)) in batch.enumerated() {
            let virtual = base + grain * UInt64(grainBytes)
            let length = Int(grainLength(grain))
            if runLength > 0 && runVirtual + UInt64(runLength) == virtual && runStart + runLength == slot * grainBytes {
                runLength += length
            } else {
                try flush()
                runStart = slot * grainBytes
                runVirtual = virtual
                runLength = length
            }
        }
        try flush()
    }
}

/// Buffers reused across a whole `forEachDataPiece`: a compressed batch and the grains it
/// inflates to.
final class VMDKScratch {
    private var inflated: UnsafeMutableRawBufferPointer?
    var compressed: [UInt8] = []

    deinit {
        inflated?.deallocate()
    }

    /// A buffer of at least `count` bytes for inflated grains, grown as needed.
    func output(count: Int) -> UnsafeMutableRawBufferPointer {
        if let inflated, inflated.count >= count { return inflated }
        inflated?.deallocate()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(count, DiskImageReaders.maxPieceSize), alignment: 4096)
        inflated = buffer
        return buffer
    }

    /// Fills the first `count` bytes of `compressed` with `file`'s bytes at `offset`.
    func readCompressed(_ file: RawFile, count: Int, at offset: UInt64) throws {
        if compressed.count < count { compressed = [UInt8](repeating: 0, count: count) }
        let got = try compressed.withUnsafeMutableBytes { try file.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<count]), at: offset) }
        guard got == count else {
            throw ImageReadError.truncated(format: .vmdk, path: file.path, offset: offset, needed: UInt64(count), fileSize: offset + UInt64(got))
        }
    }

    /// Hands `data` to `body` in pieces of at most `maxPieceSize`.
    static func emit(_ data: UnsafeRawBufferPointer, at offset: UInt64,
                     _ body: (_ offset: UInt64, _ data: UnsafeRawBufferPointer) throws -> Void) throws {
        var done = 0
        while done < data.count {
            let count = min(DiskImageReaders.maxPieceSize, data.count - done)
            try body(offset + UInt64(done), UnsafeRawBufferPointer(rebasing: data[done..<(done + count)]))
            done += count
        }
    }
}
