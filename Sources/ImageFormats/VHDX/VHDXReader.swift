import ImageCore

/// Reads a fixed or dynamic VHDX (layout on `VHDX`). `init` checks, in order: the "vhdxfile"
/// identifier; the two headers (the valid one with the higher sequence number is current; one
/// bad checksum is survivable, two are corruption); that the log is empty (LogGuid zero: a log
/// still to replay is refused, Rehost never replays one); a region table (the first valid copy)
/// with the BAT and metadata regions inside the file; the metadata items (block size, disk
/// size, sector sizes), refusing a parent (differencing disk) and unknown required items; and
/// every BAT entry of a payload block: FULLY_PRESENT blocks must lie in the file, past the
/// first MiB, clear of the regions and of each other. Every count read from the file is held
/// to what the file can hold before anything is allocated.
///
/// Payload blocks NOT_PRESENT, UNDEFINED, ZERO or UNMAPPED read as zeros (a disk without a parent,
/// as qemu reads them); PARTIALLY_PRESENT exists only in differencing disks and is corruption
/// here. Sector bitmap entries are not consulted, as they mean nothing without a parent.
///
/// Memory: a u64 per payload block (at most `DiskImageReaders.tableMemoryBudget`) and one 8 MiB
/// buffer.
public final class VHDXReader: DiskImageReader {
    public let format = ImageFormat.vhdx
    public let path: String
    public let virtualSize: UInt64
    public let variant: String
    public let blockSize: UInt64
    public let logicalSectorSize: UInt32
    public let physicalSectorSize: UInt32
    /// The page 83 GUID (RFC order), nil if the image has none.
    public let diskGuid: [UInt8]?
    /// One entry per payload block: its byte offset in the file, 0 for a block that reads as zeros.
    public let blockOffsets: [UInt64]
    /// What the in-place writer needs: the current header and its slot, the BAT's place, the
    /// payload blocks per sector bitmap entry, and the end of the headers, log, metadata and BAT
    /// regions (which may reach past the file's end; new blocks go after them).
    let header: VHDXHeader
    let headerOffset: UInt64
    let batOffset: UInt64
    let chunkRatio: UInt64
    let structuresEnd: UInt64
    let file: RawFile

    public init(path: String) throws {
        self.path = path
        let file = try RawFile(path: path, mode: .readOnly)
        self.file = file
        let fileSize = try file.size
        func corrupt(_ offset: UInt64, _ reason: String) -> ImageReadError {
            .corrupt(format: .vhdx, path: path, offset: offset, reason: reason)
        }
        func unsupported(_ feature: String, _ advice: String) -> ImageReadError {
            .unsupported(format: .vhdx, path: path, feature: feature, advice: advice)
        }
        let headerEnd = VHDX.regionTableOffsets[1] + UInt64(VHDX.regionTableSize)
        guard fileSize >= headerEnd else {
            throw ImageReadError.truncated(format: .vhdx, path: path, offset: 0, needed: headerEnd, fileSize: fileSize)
        }
        let identifier = try file.read(count: 8, at: 0)
        guard identifier == VHDX.signature else {
            throw corrupt(0, "found \"\(ReaderText.printable(identifier))\" where the signature \"vhdxfile\" belongs")
        }

        // Headers: the valid one with the higher sequence number.
        let headers = try VHDX.headerOffsets.map { offset in
            (offset, VHDXHeader.decode(try file.read(count: VHDX.headerSize, at: offset)))
        }
        let valid = headers.compactMap { offset, header in header.map { (offset, $0) } }
        guard let (headerOffset, header) = valid.max(by: { $0.1.sequenceNumber < $1.1.sequenceNumber }) else {
            throw corrupt(VHDX.headerOffsets[0], "neither header (at bytes \(VHDX.headerOffsets[0]) and \(VHDX.headerOffsets[1])) has the signature \"head\" and a matching CRC-32C checksum")
        }
        guard header.version == 1 else {
            throw corrupt(headerOffset + 66, "header version is \(header.version), expected 1")
        }
        if header.logGuid.contains(where: { $0 != 0 }) {
            throw unsupported("an unreplayed log (LogGuid \(UUIDBytes.format(ImageUUID.swappingGUIDFields(header.logGuid))))",
                              "open it in Hyper-V or run `qemu-img check -r all` on it first, which replays the log")
        }

        // Region table: the first valid copy.
        var regionTable: (offset: UInt64, bytes: [UInt8])?
        for offset in VHDX.regionTableOffsets {
            let bytes = try file.read(count: VHDX.regionTableSize, at: offset)
            if bytes.loadLE(UInt32.self, at: 0) == VHDX.regionSignature,
               bytes.loadLE(UInt32.self, at: 4) == CRC32C.checksum(bytes, zeroing: 4) {
                regionTable = (offset, bytes)
                break
            }
        }
        guard let (tableOffset, table) = regionTable else {
            throw corrupt(VHDX.regionTableOffsets[0], "neither region table (at bytes \(VHDX.regionTableOffsets[0]) and \(VHDX.regionTableOffsets[1])) has the signature \"regi\" and a matching CRC-32C checksum")
        }
        let regionCount = table.loadLE(UInt32.self, at: 8)
        guard regionCount <= UInt32(VHDXRegion.maximumEntries) else {
            throw corrupt(tableOffset + 8, "region table entry count is \(regionCount), at most \(VHDXRegion.maximumEntries) fit")
        }
        var bat: VHDXRegion?
        var metadata: VHDXRegion?
        for index in 0..<Int(regionCount) {
            let at = 16 + index * VHDXRegion.entrySize
            let region = VHDXRegion(guid: Array(table[at..<(at + 16)]), fileOffset: table.loadLE(UInt64.self, at: at + 16),
                                    length: table.loadLE(UInt32.self, at: at + 24), required: table.loadLE(UInt32.self, at: at + 28) & 1 == 1)
            let entryOffset = tableOffset + UInt64(at)
            let name: String
            if region.guid == VHDX.guid(VHDX.batRegion) {
                name = "BAT"
                bat = region
            } else if region.guid == VHDX.guid(VHDX.metadataRegion) {
                name = "metadata"
                metadata = region
            } else if region.required {
                throw unsupported("a required region \(UUIDBytes.format(ImageUUID.swappingGUIDFields(region.guid))) unknown to [MS-VHDX] v1.0",
                                  "convert it with the tool that made it (Hyper-V: Convert-VHD) to a plain VHDX or VHD")
            } else {
                continue
            }
            guard region.fileOffset >= VHDX.MiB, region.fileOffset % VHDX.MiB == 0, region.length > 0, UInt64(region.length) % VHDX.MiB == 0 else {
                throw corrupt(entryOffset + 16, "the \(name) region is \(region.length) bytes at byte \(region.fileOffset); expected a whole number of MiB at a MiB boundary past the first MiB")
            }
            guard region.fileOffset < fileSize else {
                throw corrupt(entryOffset + 16, "the \(name) region starts at byte \(region.fileOffset), beyond the end of the \(fileSize)-byte file")
            }
        }
        guard let bat else { throw corrupt(tableOffset, "the region table has no BAT region") }
        guard let metadata else { throw corrupt(tableOffset, "the region table has no metadata region") }
        let batRange = bat.fileOffset..<(bat.fileOffset + UInt64(bat.length))
        guard !batRange.overlaps(metadata.fileOffset..<(metadata.fileOffset + UInt64(metadata.length))) else {
            throw corrupt(tableOffset, "the BAT region (\(bat.length) bytes at byte \(bat.fileOffset)) overlaps the metadata region (\(metadata.length) bytes at byte \(metadata.fileOffset))")
        }

        // Metadata.
        let metadataEnd = metadata.fileOffset + UInt64(metadata.length)
        guard UInt64(metadata.length) >= UInt64(VHDX.metadataTableSize), metadataEnd <= fileSize else {
            throw ImageReadError.truncated(format: .vhdx, path: path, offset: metadata.fileOffset, needed: UInt64(metadata.length), fileSize: fileSize)
        }
        let metadataTable = try file.read(count: VHDX.metadataTableSize, at: metadata.fileOffset)
        guard Array(metadataTable[0..<8]) == VHDX.metadataSignature else {
            throw corrupt(metadata.fileOffset, "found \"\(ReaderText.printable(metadataTable[0..<8]))\" where the metadata table's signature \"metadata\" belongs")
        }
        let itemCount = Int(metadataTable.loadLE(UInt16.self, at: 10))
        guard itemCount <= VHDXMetadataItem.maximumEntries else {
            throw corrupt(metadata.fileOffset + 10, "metadata entry count is \(itemCount), at most \(VHDXMetadataItem.maximumEntries) fit")
        }
        var items: [[UInt8]: (entry: UInt64, offset: UInt64, bytes: [UInt8])] = [:]
        let known: [String: UInt32] = [VHDX.fileParameters: 8, VHDX.virtualDiskSize: 8, VHDX.page83Data: 16,
                                       VHDX.logicalSectorSizeItem: 4, VHDX.physicalSectorSizeItem: 4]
        for index in 0..<itemCount {
            let at = 32 + index * VHDXMetadataItem.entrySize
            let entryOffset = metadata.fileOffset + UInt64(at)
            let guid = Array(metadataTable[at..<(at + 16)])
            let offset = metadataTable.loadLE(UInt32.self, at: at + 16)
            let length = metadataTable.loadLE(UInt32.self, at: at + 20)
            let flags = metadataTable.loadLE(UInt32.self, at: at + 24)
            let name = UUIDBytes.format(ImageUUID.swappingGUIDFields(guid)).uppercased()
            if guid == VHDX.guid(VHDX.parentLocator) {
                throw unsupported("a parent locator (a differencing disk, which only holds changes to its parent)",
                                  "merge it into its parent first (Hyper-V: Merge-VHD) and convert the merged disk")
            }
            guard let expected = known[name] else {
                if flags & 4 != 0 {
                    throw unsupported("a required metadata item \(name) unknown to [MS-VHDX] v1.0",
                                      "convert it with Hyper-V (Convert-VHD) to a plain VHDX or VHD")
                }
                continue
            }
            guard length == expected, offset >= UInt32(VHDX.metadataTableSize), UInt64(offset) + UInt64(length) <= UInt64(metadata.length) else {
                throw corrupt(entryOffset + 16, "metadata item \(name) is \(length) bytes at offset \(offset) of the metadata region; expected \(expected) bytes between offset \(VHDX.metadataTableSize) and the region's end at \(metadata.length)")
            }
            let itemOffset = metadata.fileOffset + UInt64(offset)
            items[guid] = (entryOffset, itemOffset, try file.read(count: Int(length), at: itemOffset))
        }
        func item(_ guid: String, _ name: String) throws -> (entry: UInt64, offset: UInt64, bytes: [UInt8]) {
            guard let found = items[VHDX.guid(guid)] else { throw corrupt(metadata.fileOffset, "the metadata has no \(name) item") }
            return found
        }
        let parameters = try item(VHDX.fileParameters, "file parameters")
        let blockSize = parameters.bytes.loadLE(UInt32.self, at: 0)
        let parameterFlags = parameters.bytes.loadLE(UInt32.self, at: 4)
        if parameterFlags & 2 != 0 {
            throw unsupported("a parent (HasParent: a differencing disk, which only holds changes to its parent)",
                              "merge it into its parent first (Hyper-V: Merge-VHD) and convert the merged disk")
        }
        guard blockSize >= VHDX.minimumBlockSize, blockSize <= VHDX.maximumBlockSize, ReaderText.isPowerOfTwo(blockSize) else {
            throw corrupt(parameters.offset, "block size is \(blockSize), expected a power of two from 1 MiB to 256 MiB")
        }
        let logical = try item(VHDX.logicalSectorSizeItem, "logical sector size")
        logicalSectorSize = logical.bytes.loadLE(UInt32.self, at: 0)
        guard logicalSectorSize == 512 || logicalSectorSize == 4096 else {
            throw corrupt(logical.offset, "logical sector size is \(logicalSectorSize), expected 512 or 4096")
        }
        let physical = try item(VHDX.physicalSectorSizeItem, "physical sector size")
        physicalSectorSize = physical.bytes.loadLE(UInt32.self, at: 0)
        guard physicalSectorSize == 512 || physicalSectorSize == 4096 else {
            throw corrupt(physical.offset, "physical sector size is \(physicalSectorSize), expected 512 or 4096")
        }
        let sizeItem = try item(VHDX.virtualDiskSize, "virtual disk size")
        let size = sizeItem.bytes.loadLE(UInt64.self, at: 0)
        guard size > 0, size <= VHDX.maximumDiskSize, size % UInt64(logicalSectorSize) == 0 else {
            throw corrupt(sizeItem.offset, "virtual disk size is \(size), expected a whole number of \(logicalSectorSize)-byte sectors up to 64 TiB")
        }
        virtualSize = size
        diskGuid = items[VHDX.guid(VHDX.page83Data)].map { ImageUUID.swappingGUIDFields($0.bytes) }
        self.blockSize = UInt64(blockSize)

        // BAT: held to the region, which is held to the file, before anything is allocated.
        let chunkRatio = VHDX.chunkRatio(blockSize: blockSize, logicalSectorSize: logicalSectorSize)
        let blocks = (size + UInt64(blockSize) - 1) / UInt64(blockSize)
        let entries = VHDX.batEntries(blocks: blocks, chunkRatio: chunkRatio)
        guard entries * 8 <= UInt64(bat.length) else {
            throw corrupt(bat.fileOffset, "the BAT region is \(bat.length) bytes, but a \(size)-byte disk in \(ReaderText.size(UInt64(blockSize))) blocks needs \(entries) entries (\(entries * 8) bytes)")
        }
        guard blocks * 8 <= DiskImageReaders.tableMemoryBudget else {
            throw corrupt(bat.fileOffset, "\(blocks) blocks need a \(blocks * 8)-byte table, more than the \(DiskImageReaders.tableMemoryBudget) Rehost holds in memory")
        }
        guard bat.fileOffset + entries * 8 <= fileSize else {
            throw ImageReadError.truncated(format: .vhdx, path: path, offset: bat.fileOffset, needed: entries * 8, fileSize: fileSize)
        }
        let (logEnd, logOverflow) = header.logOffset.addingReportingOverflow(UInt64(header.logLength))
        guard !logOverflow else { throw corrupt(headerOffset + 72, "log offset \(header.logOffset) plus length \(header.logLength) overflows") }
        let reserved: [(range: Range<UInt64>, name: String)] = [
            (0..<VHDX.MiB, "the headers"),
            (header.logOffset..<logEnd, "the log"),
            (metadata.fileOffset..<metadataEnd, "the metadata region"),
            (bat.fileOffset..<(bat.fileOffset + UInt64(bat.length)), "the BAT region"),
        ]
        var offsets: [UInt64] = []
        offsets.reserveCapacity(Int(blocks))
        var present: [(start: UInt64, index: Int)] = []
        let stride = chunkRatio + 1
        let chunkEntries: UInt64 = 1 << 17
        var first: UInt64 = 0
        while first < entries {
            let count = min(chunkEntries, entries - first)
            let raw = try file.read(count: Int(count) * 8, at: bat.fileOffset + first * 8)
            for entry in first..<(first + count) where (entry + 1) % stride != 0 {
                let value = raw.loadLE(UInt64.self, at: Int(entry - first) * 8)
                let block = entry - entry / stride
                let entryOffset = bat.fileOffset + entry * 8
                switch VHDX.BlockState(rawValue: value & 7) {
                case .notPresent?, .undefined?, .zero?, .unmapped?:
                    offsets.append(0)
                case .fullyPresent?:
                    let start = (value >> 20) * VHDX.MiB
                    let length = min(UInt64(blockSize), size - block * UInt64(blockSize))
                    guard start >= VHDX.MiB, start <= fileSize, length <= fileSize - start else {
                        throw corrupt(entryOffset, "BAT entry \(entry) (block \(block)) puts its \(length) bytes at byte \(start), outside the \(fileSize)-byte file")
                    }
                    let range = start..<(start + UInt64(blockSize))
                    if let hit = reserved.first(where: { $0.range.overlaps(range) }) {
                        throw corrupt(entryOffset, "BAT entry \(entry) (block \(block)) at byte \(start) overlaps \(hit.name)")
                    }
                    offsets.append(start)
                    present.append((start, Int(block)))
                case .partiallyPresent?:
                    throw corrupt(entryOffset, "BAT entry \(entry) (block \(block)) is PARTIALLY_PRESENT, which only a differencing disk may use")
                case nil:
                    throw corrupt(entryOffset, "BAT entry \(entry) (block \(block)) has state \(value & 7), which [MS-VHDX] does not define")
                }
            }
            first += count
        }
        present.sort { $0.start < $1.start }
        for (previous, next) in zip(present, present.dropFirst()) where previous.start + UInt64(blockSize) > next.start {
            throw corrupt(bat.fileOffset, "block \(next.index) at byte \(next.start) lies inside block \(previous.index) at byte \(previous.start)")
        }
        blockOffsets = offsets
        self.header = header
        self.headerOffset = headerOffset
        batOffset = bat.fileOffset
        self.chunkRatio = chunkRatio
        structuresEnd = reserved.map(\.range.upperBound).max()!
        let kind = parameterFlags & 1 != 0 ? "fixed" : "dynamic"
        variant = "VHDX \(kind), \(ReaderText.size(UInt64(blockSize))) blocks, \(present.count) of \(blocks) allocated"
    }

    public func forEachDataPiece(_ body: (_ offset: UInt64, _ data: UnsafeRawBufferPointer) throws -> Void) throws {
        let streamer = try HostRunStreamer(file: file, format: format, diskSize: virtualSize)
        for (index, host) in blockOffsets.enumerated() where host != 0 {
            let virtual = UInt64(index) * blockSize
            try streamer.add(virtual: virtual, host: host, length: min(blockSize, virtualSize - virtual), body)
        }
        try streamer.flush(body)
    }
}
