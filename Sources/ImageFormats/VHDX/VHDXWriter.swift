import Digests
import ImageCore

/// Writes a VHDX (layout on `VHDX`) in one pass: payload blocks as the data arrives, then in
/// `finish` the file identifier, both headers, both region tables, the metadata and the BAT.
///
/// - fixed: every block FULLY_PRESENT, block i at `payloadStart + i x blockSize`, so the disk's
///   bytes sit at `payloadStart + offset`; zeros stay holes; the file spans every whole block.
/// - dynamic: a block is allocated (appended, 1 MiB aligned since block sizes are whole MiB) the
///   first time data arrives for it and marked FULLY_PRESENT; the others stay NOT_PRESENT, which
///   reads as zeros for a disk without a parent (Hyper-V's own dynamic disks start that way).
///   Sector bitmap entries are NOT_PRESENT: only differencing disks have bitmaps.
///
/// No log entries are written and LogGuid is zero, so there is nothing to replay; the 1 MiB log
/// region is still reserved (as qemu and Hyper-V do), since readers that later write to the
/// image log their BAT updates there and qemu refuses a log offset below 1 MiB.
///
/// Memory: one u32 per allocated block, plus a 1 MiB BAT chunk in `finish`.
public final class VHDXWriter: DiskImageWriter {
    public let format = ImageFormat.vhdx
    public let virtualSize: UInt64
    public let variant: WriterOptions.VHDXVariant
    public let blockSize: UInt32
    public let diskGuid: [UInt8]
    /// 4096 (as Hyper-V), or 512 for a disk that does not end on a 4 KiB boundary, so that no
    /// physical sector is cut short.
    public let physicalSectorSize: UInt32
    private let sink: OutputSink
    private var next: UInt64 = 0
    private let chunkRatio: UInt64
    private let blockCount: UInt64
    private let batEntries: UInt64
    private let batLength: UInt64
    private let payloadStart: UInt64
    /// The caller's UUID, when given: the header GUIDs derive from it, so that the same disk and
    /// options give the same bytes (a VHDX holds no timestamp).
    private let givenUUID: [UInt8]?
    /// Dynamic only: the allocated virtual blocks in file order.
    private var allocated: [UInt32] = []

    public init(sink: OutputSink, virtualSize: UInt64, options: WriterOptions) throws {
        guard virtualSize > 0, virtualSize % UInt64(VHDX.logicalSectorSize) == 0 else {
            throw WriterError.unsupported(format: .vhdx, what: "the disk size \(virtualSize) is not a whole number of \(VHDX.logicalSectorSize)-byte sectors")
        }
        guard virtualSize <= VHDX.maximumDiskSize else {
            throw WriterError.unsupported(format: .vhdx, what: "the disk size \(virtualSize) is more than the 64 TiB a VHDX holds")
        }
        let blockSize = options.vhdxBlockSize
        guard blockSize >= VHDX.minimumBlockSize, blockSize <= VHDX.maximumBlockSize, blockSize & (blockSize - 1) == 0 else {
            throw WriterError.unsupported(format: .vhdx, what: "block size \(blockSize): expected a power of two from 1 MiB to 256 MiB")
        }
        self.sink = sink
        self.virtualSize = virtualSize
        self.blockSize = blockSize
        variant = options.vhdxVariant
        diskGuid = try ImageUUID.make(options.uuid, format: .vhdx, purpose: "vhdx disk guid")
        givenUUID = options.uuid
        physicalSectorSize = virtualSize % UInt64(VHDX.physicalSectorSize) == 0 ? VHDX.physicalSectorSize : VHDX.logicalSectorSize
        chunkRatio = VHDX.chunkRatio(blockSize: blockSize, logicalSectorSize: VHDX.logicalSectorSize)
        blockCount = (virtualSize + UInt64(blockSize) - 1) / UInt64(blockSize)
        batEntries = VHDX.batEntries(blocks: blockCount, chunkRatio: chunkRatio)
        batLength = (batEntries * 8 + VHDX.MiB - 1) / VHDX.MiB * VHDX.MiB
        payloadStart = VHDX.batOffset + batLength
    }

    public func write(_ data: UnsafeRawBufferPointer, at offset: UInt64) throws {
        guard offset >= next else { throw WriterError.outOfOrder(format: format, offset: offset, expectedAtLeast: next) }
        guard offset <= virtualSize, UInt64(data.count) <= virtualSize - offset else {
            throw WriterError.beyondEnd(format: format, offset: offset, virtualSize: virtualSize)
        }
        if variant == .fixed {
            try sink.write(data, at: payloadStart + offset)
        } else {
            let size = UInt64(blockSize)
            var done = 0
            while done < data.count {
                let position = offset + UInt64(done)
                let block = UInt32(position / size)
                let inBlock = position % size
                let count = Int(min(UInt64(data.count - done), size - inBlock))
                if allocated.last != block { allocated.append(block) }
                let fileOffset = blockStart(allocated.count - 1) + inBlock
                try sink.write(UnsafeRawBufferPointer(rebasing: data[done..<(done + count)]), at: fileOffset)
                done += count
            }
        }
        next = offset + UInt64(data.count)
    }

    public func finish() throws -> WriterSummary {
        var identifier = [UInt8](repeating: 0, count: 8 + 512)
        identifier.replaceSubrange(0..<8, with: VHDX.signature)
        for (index, unit) in "Rehost".utf16.enumerated() { identifier.storeLE(unit, at: 8 + index * 2) }
        try sink.write(identifier, at: 0)

        let fileWriteGuid = writeGuid("file")
        let dataWriteGuid = writeGuid("data")
        for (index, offset) in VHDX.headerOffsets.enumerated() {
            let header = VHDXHeader(sequenceNumber: UInt64(index + 1), fileWriteGuid: fileWriteGuid, dataWriteGuid: dataWriteGuid,
                                    logGuid: [UInt8](repeating: 0, count: 16), logLength: VHDX.logLength, logOffset: VHDX.logOffset)
            try sink.write(header.encoded(), at: offset)
        }
        let regions = VHDXRegion.encodeTable([
            VHDXRegion(guid: VHDX.guid(VHDX.batRegion), fileOffset: VHDX.batOffset, length: UInt32(batLength), required: true),
            VHDXRegion(guid: VHDX.guid(VHDX.metadataRegion), fileOffset: VHDX.metadataOffset, length: VHDX.metadataLength, required: true),
        ])
        for offset in VHDX.regionTableOffsets { try sink.write(regions, at: offset) }
        try sink.write(metadataRegion(), at: VHDX.metadataOffset)
        try writeBlockAllocationTable()

        let end = variant == .fixed ? payloadStart + blockCount * UInt64(blockSize) : blockStart(allocated.count)
        try sink.extend(to: end)
        let units = variant == .fixed ? blockCount : UInt64(allocated.count)
        return WriterSummary(format: format, variant: "VHDX \(variant.rawValue), \(ReaderText.size(UInt64(blockSize))) blocks",
                             virtualSize: virtualSize, fileSize: end, allocatedUnits: units, unitSize: UInt64(blockSize))
    }

    /// FileWriteGuid and DataWriteGuid: fresh, or a version-4 UUID hashed from the given UUID.
    private func writeGuid(_ label: String) -> [UInt8] {
        guard let givenUUID else { return UUIDBytes.random(for: "vhdx \(label) write guid") }
        var bytes = Array(Digest.bytes(.sha256, of: givenUUID + Array("VHDX \(label) write GUID".utf8)).prefix(16))
        bytes[6] = bytes[6] & 0x0F | 0x40
        bytes[8] = bytes[8] & 0x3F | 0x80
        return bytes
    }

    /// Where the `index`-th allocated block starts in the file (dynamic).
    private func blockStart(_ index: Int) -> UInt64 {
        payloadStart + UInt64(index) * UInt64(blockSize)
    }

    private func metadataRegion() -> [UInt8] {
        var parameters = [UInt8](repeating: 0, count: 8)
        parameters.storeLE(blockSize, at: 0)
        // LeaveBlocksAllocated for a fixed disk, as qemu and Hyper-V set it.
        parameters.storeLE(UInt32(variant == .fixed ? 1 : 0), at: 4)
        var size = [UInt8](repeating: 0, count: 8)
        size.storeLE(virtualSize, at: 0)
        var logical = [UInt8](repeating: 0, count: 4)
        logical.storeLE(VHDX.logicalSectorSize, at: 0)
        var physical = [UInt8](repeating: 0, count: 4)
        physical.storeLE(physicalSectorSize, at: 0)
        let contents: [(String, [UInt8], Bool)] = [
            (VHDX.fileParameters, parameters, false),
            (VHDX.virtualDiskSize, size, true),
            (VHDX.page83Data, ImageUUID.swappingGUIDFields(diskGuid), true),
            (VHDX.logicalSectorSizeItem, logical, true),
            (VHDX.physicalSectorSizeItem, physical, true),
        ]
        var offset = UInt32(VHDX.metadataTableSize)
        var items: [(item: VHDXMetadataItem, data: [UInt8])] = []
        for (guid, data, isVirtualDisk) in contents {
            items.append((VHDXMetadataItem(guid: VHDX.guid(guid), offset: offset, length: UInt32(data.count), isUser: false,
                                           isVirtualDisk: isVirtualDisk, isRequired: true), data))
            offset += UInt32(data.count)
        }
        return VHDXMetadataItem.encodeRegion(items)
    }

    /// The BAT in chunks of 128 Ki entries (1 MiB); the rest of its region stays a hole (zeros,
    /// NOT_PRESENT).
    private func writeBlockAllocationTable() throws {
        let chunkEntries: UInt64 = 1 << 17
        let stride = chunkRatio + 1
        var nextAllocated = 0
        var first: UInt64 = 0
        while first < batEntries {
            let count = min(chunkEntries, batEntries - first)
            var chunk = [UInt8](repeating: 0, count: Int(count) * 8)
            for entry in first..<(first + count) where (entry + 1) % stride != 0 {
                let block = entry - entry / stride
                let fileOffset: UInt64
                if variant == .fixed {
                    fileOffset = payloadStart + block * UInt64(blockSize)
                } else {
                    guard nextAllocated < allocated.count, UInt64(allocated[nextAllocated]) == block else { continue }
                    fileOffset = blockStart(nextAllocated)
                    nextAllocated += 1
                }
                chunk.storeLE(VHDX.BlockState.fullyPresent.rawValue | (fileOffset / VHDX.MiB) << 20, at: Int(entry - first) * 8)
            }
            try sink.write(chunk, at: VHDX.batOffset + first * 8)
            first += count
        }
    }
}
