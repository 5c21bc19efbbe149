#if canImport(Glibc)
import Glibc
#endif
import ImageCore

/// Writes a VHD (layout on `VHDFooter` and `VHDDynamicHeader`) in one pass.
///
/// - fixed (Azure): the disk's bytes at their own offsets, holes where it is zero, then the
///   footer. Azure wants a whole number of MiB, so other sizes are refused with the size to ask
///   for; the footer's creator "qem2" makes qemu read the exact current size (see `VHDFooter`).
/// - dynamic: footer copy, dynamic header and BAT (ceil(size / 2 MiB) entries, padded to 512),
///   then one block (bitmap + 2 MiB) for each 2 MiB of the disk that holds data, appended in
///   increasing order, then the footer. A block's data is written where it has data and left as
///   holes elsewhere, so its sector bitmap is all ones: every sector of an allocated block is
///   "in use" and reads back exactly (zeros from the holes), which is also what qemu writes. The
///   last block of a disk that is not a multiple of 2 MiB still spans 2 MiB in the file, since
///   readers (qemu's vpc_open among them) expect whole blocks before the footer.
///
/// Sizes must be whole sectors and at most 2040 GiB (`VHDFooter.maximumDiskSize`). Memory: one
/// u32 per allocated block, plus a 1 MiB BAT chunk in `finish`.
public final class VHDWriter: DiskImageWriter {
    public let format = ImageFormat.vhd
    public let virtualSize: UInt64
    public let variant: WriterOptions.VHDVariant
    public let footer: VHDFooter
    private let sink: OutputSink
    private var next: UInt64 = 0
    /// Dynamic only: the BAT's place, where blocks start, and the allocated virtual blocks in
    /// file order.
    private let dynamicHeader: VHDDynamicHeader?
    private let firstBlockOffset: UInt64
    private var allocated: [UInt32] = []

    private static let blockSize = UInt64(VHDDynamicHeader.blockSize)
    private static let blockStride = UInt64(VHDDynamicHeader.bitmapSize) + blockSize
    private static let fullBitmap = [UInt8](repeating: 0xFF, count: VHDDynamicHeader.bitmapSize)

    public init(sink: OutputSink, virtualSize: UInt64, options: WriterOptions) throws {
        guard virtualSize > 0, virtualSize % 512 == 0 else { throw VHDError.sizeNotWholeSectors(size: virtualSize) }
        guard virtualSize <= VHDFooter.maximumDiskSize else {
            throw VHDError.tooLarge(size: virtualSize, maximum: VHDFooter.maximumDiskSize)
        }
        variant = options.vhdVariant
        if variant == .fixed, virtualSize % (1 << 20) != 0 { throw VHDError.fixedSizeNotWholeMiB(size: virtualSize) }
        self.sink = sink
        self.virtualSize = virtualSize
        let uuid = try ImageUUID.make(options.uuid, format: .vhd, purpose: "vhd uuid")
        footer = VHDFooter(diskType: variant == .fixed ? .fixed : .dynamic, size: virtualSize, uuid: uuid,
                           timestamp: VHDFooter.timestamp(unixSeconds: Reproducibility.now()))
        if variant == .dynamic {
            let entries = (virtualSize + Self.blockSize - 1) / Self.blockSize
            let tableOffset = UInt64(VHDFooter.size + VHDDynamicHeader.size)
            dynamicHeader = VHDDynamicHeader(tableOffset: tableOffset, maxTableEntries: UInt32(entries))
            firstBlockOffset = tableOffset + (entries * 4 + 511) / 512 * 512
        } else {
            dynamicHeader = nil
            firstBlockOffset = 0
        }
    }

    public func write(_ data: UnsafeRawBufferPointer, at offset: UInt64) throws {
        guard offset >= next else { throw WriterError.outOfOrder(format: format, offset: offset, expectedAtLeast: next) }
        guard offset <= virtualSize, UInt64(data.count) <= virtualSize - offset else {
            throw WriterError.beyondEnd(format: format, offset: offset, virtualSize: virtualSize)
        }
        if variant == .fixed {
            try sink.write(data, at: offset)
        } else {
            var done = 0
            while done < data.count {
                let position = offset + UInt64(done)
                let block = UInt32(position / Self.blockSize)
                let inBlock = position % Self.blockSize
                let count = Int(min(UInt64(data.count - done), Self.blockSize - inBlock))
                if allocated.last != block {
                    allocated.append(block)
                    try sink.write(Self.fullBitmap, at: blockStart(allocated.count - 1))
                }
                let fileOffset = blockStart(allocated.count - 1) + UInt64(VHDDynamicHeader.bitmapSize) + inBlock
                try sink.write(UnsafeRawBufferPointer(rebasing: data[done..<(done + count)]), at: fileOffset)
                done += count
            }
        }
        next = offset + UInt64(data.count)
    }

    public func finish() throws -> WriterSummary {
        let footerBytes = footer.encoded()
        let footerOffset: UInt64
        if let dynamicHeader {
            try sink.write(footerBytes, at: 0)
            try sink.write(dynamicHeader.encoded(), at: UInt64(VHDFooter.size))
            try writeBlockAllocationTable(dynamicHeader)
            footerOffset = blockStart(allocated.count)
        } else {
            footerOffset = virtualSize
        }
        try sink.write(footerBytes, at: footerOffset)
        let fileSize = footerOffset + UInt64(VHDFooter.size)
        let summary = variant == .fixed
            ? WriterSummary(format: format, variant: "VHD fixed", virtualSize: virtualSize, fileSize: fileSize,
                            allocatedUnits: virtualSize / 512, unitSize: 512)
            : WriterSummary(format: format, variant: "VHD dynamic, 2 MiB blocks", virtualSize: virtualSize, fileSize: fileSize,
                            allocatedUnits: UInt64(allocated.count), unitSize: Self.blockSize)
        return summary
    }

    /// Where the `index`-th allocated block (its bitmap) starts in the file.
    private func blockStart(_ index: Int) -> UInt64 {
        firstBlockOffset + UInt64(index) * Self.blockStride
    }

    /// The BAT in chunks of 256 Ki entries (1 MiB), padded with unused entries to its sector.
    private func writeBlockAllocationTable(_ header: VHDDynamicHeader) throws {
        let total = Int((firstBlockOffset - header.tableOffset) / 4)
        let chunkEntries = 1 << 18
        var nextAllocated = 0
        var first = 0
        while first < total {
            let count = min(chunkEntries, total - first)
            var chunk = [UInt8](repeating: 0xFF, count: count * 4)
            while nextAllocated < allocated.count, Int(allocated[nextAllocated]) < first + count {
                let sector = UInt32(blockStart(nextAllocated) / 512)
                chunk.storeBE(sector, at: (Int(allocated[nextAllocated]) - first) * 4)
                nextAllocated += 1
            }
            try sink.write(chunk, at: header.tableOffset + UInt64(first) * 4)
            first += count
        }
    }
}
