import ImageCore

/// Writes a VirtualBox VDI 1.1 image (layout on `VDIHeader`) in one pass.
///
/// - dynamic: only 1 MiB blocks that hold data get a place in the file, appended in the order the
///   data arrives (which is increasing), so the file is header, block map, then those blocks.
///   Blocks never written are free (0xFFFFFFFF), which reads as zeros without a parent.
/// - fixed: every block is present at its own index. Blocks with data are written; the rest are
///   holes, so the file has its full size but stays sparse on disk.
///
/// A disk whose size is not a multiple of 1 MiB gets ceil(size / 1 MiB) blocks and keeps its exact
/// size in cbDisk, as VirtualBox's own vdiInitHeader and qemu's vdi create do; the tail of the
/// last block past the disk's end is a hole in the file. The size must be whole 512-byte sectors
/// (qemu would round anything else up and report a different size).
///
/// Memory: one u32 per allocated block (4 bytes per MiB of data), plus a 1 MiB map chunk in
/// `finish`.
public final class VDIWriter: DiskImageWriter {
    public let format = ImageFormat.vdi
    public let virtualSize: UInt64
    public let variant: WriterOptions.VDIVariant
    /// The header as it will be written; `allocatedBlocks` is final after `finish`.
    public private(set) var header: VDIHeader
    private let sink: OutputSink
    private var next: UInt64 = 0
    /// Virtual block numbers of the allocated blocks, in file order (dynamic only).
    private var allocated: [UInt32] = []

    public init(sink: OutputSink, virtualSize: UInt64, options: WriterOptions) throws {
        guard virtualSize > 0, virtualSize % 512 == 0 else { throw VDIError.sizeNotWholeSectors(size: virtualSize) }
        let maximum = UInt64(VDIHeader.maximumBlocks) * UInt64(VDIHeader.blockSize)
        guard virtualSize <= maximum else { throw VDIError.tooLarge(size: virtualSize, maximum: maximum) }
        self.sink = sink
        self.virtualSize = virtualSize
        variant = options.vdiVariant
        let uuid = try ImageUUID.make(options.uuid, format: .vdi, purpose: "vdi uuid")
        // VirtualBox refuses a null modification UUID. A given image UUID makes the build
        // reproducible, so reuse it there rather than draw a random one.
        let modification = options.uuid == nil ? UUIDBytes.random(for: "vdi modification uuid") : uuid
        header = VDIHeader(imageType: variant == .fixed ? .fixed : .dynamic, diskSize: virtualSize,
                           uuidCreate: uuid, uuidModify: modification)
    }

    public func write(_ data: UnsafeRawBufferPointer, at offset: UInt64) throws {
        guard offset >= next else { throw WriterError.outOfOrder(format: format, offset: offset, expectedAtLeast: next) }
        guard offset <= virtualSize, UInt64(data.count) <= virtualSize - offset else {
            throw WriterError.beyondEnd(format: format, offset: offset, virtualSize: virtualSize)
        }
        let dataOffset = UInt64(header.dataOffset)
        if variant == .fixed {
            // Block i sits at data + i MiB, so the virtual disk is one contiguous run of the file.
            try sink.write(data, at: dataOffset + offset)
        } else {
            let blockSize = UInt64(header.blockSize)
            var done = 0
            while done < data.count {
                let position = offset + UInt64(done)
                let block = UInt32(position / blockSize)
                let inBlock = position % blockSize
                let count = Int(min(UInt64(data.count - done), blockSize - inBlock))
                if allocated.last != block { allocated.append(block) }
                let fileOffset = dataOffset + UInt64(allocated.count - 1) * blockSize + inBlock
                try sink.write(UnsafeRawBufferPointer(rebasing: data[done..<(done + count)]), at: fileOffset)
                done += count
            }
        }
        next = offset + UInt64(data.count)
    }

    public func finish() throws -> WriterSummary {
        if variant == .dynamic { header.allocatedBlocks = UInt32(allocated.count) }
        try sink.write(header.encoded(), at: 0)
        try writeBlockMap()
        let fileSize = UInt64(header.dataOffset) + UInt64(header.allocatedBlocks) * UInt64(header.blockSize)
        try sink.extend(to: fileSize)
        return WriterSummary(format: format, variant: "VDI \(variant.rawValue), 1 MiB blocks", virtualSize: virtualSize,
                             fileSize: fileSize, allocatedUnits: UInt64(header.allocatedBlocks),
                             unitSize: UInt64(header.blockSize))
    }

    /// The map in chunks of 256 Ki entries (1 MiB), so its size never matters.
    private func writeBlockMap() throws {
        let chunkEntries = 1 << 18
        var nextAllocated = 0
        var first = 0
        while first < Int(header.blockCount) {
            let count = min(chunkEntries, Int(header.blockCount) - first)
            var chunk = [UInt8](repeating: 0xFF, count: count * 4)
            if variant == .fixed {
                for i in 0..<count { chunk.storeLE(UInt32(first + i), at: i * 4) }
            } else {
                while nextAllocated < allocated.count, Int(allocated[nextAllocated]) < first + count {
                    chunk.storeLE(UInt32(nextAllocated), at: (Int(allocated[nextAllocated]) - first) * 4)
                    nextAllocated += 1
                }
            }
            try sink.write(chunk, at: UInt64(header.blockMapOffset) + UInt64(first) * 4)
            first += count
        }
    }
}
