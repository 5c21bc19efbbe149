import ImageCore

/// Reads a VirtualBox VDI 1.1 image, dynamic or fixed (layout drawn on `VDIHeader`):
///
/// ```
/// [ pre-header + header, 512 ][ ... ][ block map: cBlocks x u32 at offBlocks ][ ... ]
/// [ data area at offData: data block 0 | data block 1 | ... , cbBlock bytes each ]
///
/// virtual block i  ->  map[i] = k < cBlocksAllocated : bytes at offData + k x cbBlock
///                      map[i] = 0xFFFFFFFF (free) or 0xFFFFFFFE (zero) : reads as zeros
/// ```
///
/// What it accepts, and why it differs from qemu's `vdi_open` (7.2) where it does:
/// - header 1.1 only, as qemu; 1.0 images (VirtualBox before 1.4) are `.unsupported`.
/// - block size: any power of two of at least 512, as VirtualBox's own reader
///   (vdiValidateHeader); qemu refuses all but 1 MiB because that is all it and VirtualBox ever
///   write. The walk below does not depend on the size, and a sector keeps every offset aligned.
/// - cbBlockExtra must be 0: qemu ignores the field and would read the wrong bytes otherwise;
///   VirtualBox never writes any.
/// - undo (3) and differencing (4) images, and any image with a link or parent UUID, need their
///   parent: `.unsupported` (qemu refuses the UUIDs as well).
/// - the virtual size is cbDisk rounded up to a sector, exactly as qemu reports it.
/// - every map entry is checked up front, which qemu does not do: an index must be below
///   cBlocksAllocated, used by one virtual block only, and its bytes must lie in the file.
///
/// Memory: the block map (4 bytes per block, 4 MiB per TiB of 1 MiB blocks, and never more than
/// the file holds) plus one 8 MiB read buffer while streaming.
public final class VDIReader: DiskImageReader {
    public let format = ImageFormat.vdi
    public let path: String
    public let virtualSize: UInt64
    public let variant: String
    public let header: VDIHeader
    /// One entry per block: an index into the data area, or `VDIHeader.freeBlock`/`zeroBlock`.
    public let blockMap: [UInt32]
    let file: RawFile

    public init(path: String) throws {
        self.path = path
        file = try RawFile(path: path, mode: .readOnly)
        let fileSize = try file.size
        func corrupt(_ offset: UInt64, _ reason: String) -> ImageReadError {
            .corrupt(format: .vdi, path: path, offset: offset, reason: reason)
        }
        func unsupported(_ feature: String) -> ImageReadError {
            .unsupported(format: .vdi, path: path, feature: feature,
                         advice: "merge or clone it into a standalone image first (VBoxManage clonemedium disk IN OUT.vdi), then convert that")
        }

        let headerBytes = VDIHeader.encodedSize
        guard fileSize >= UInt64(headerBytes) else {
            throw ImageReadError.truncated(format: .vdi, path: path, offset: 0, needed: UInt64(headerBytes), fileSize: fileSize)
        }
        let bytes = try file.read(count: headerBytes, at: 0)

        // Checked here, before VDIHeader.decode, so that what is valid but unread says so
        // rather than being called corrupt.
        let signature = bytes.loadLE(UInt32.self, at: 64)
        guard signature == VDIHeader.signature else {
            throw corrupt(64, "signature is 0x\(String(signature, radix: 16)), expected 0xbeda107f: not a VDI image")
        }
        let version = bytes.loadLE(UInt32.self, at: 68)
        if version == 0x0001_0000 {
            throw ImageReadError.unsupported(format: .vdi, path: path, feature: "header version 1.0",
                                             advice: "clone it with a current VirtualBox (VBoxManage clonemedium disk IN OUT.vdi), which writes version 1.1")
        }
        let imageType = bytes.loadLE(UInt32.self, at: 76)
        if imageType == 3 { throw unsupported("an undo image (type 3), which only holds changes to another image") }
        if imageType == 4 { throw unsupported("a differencing image (type 4), which only holds changes to its parent") }
        let blockExtra = bytes.loadLE(UInt32.self, at: 380)
        if blockExtra != 0, ReaderText.isPowerOfTwo(blockExtra) {
            throw ImageReadError.unsupported(format: .vdi, path: path, feature: "\(blockExtra) bytes of extra data per block",
                                             advice: "clone it with VirtualBox (VBoxManage clonemedium disk IN OUT.vdi), which writes none")
        }
        do {
            header = try VDIHeader.decode(bytes, path: path)
        } catch let error as VDIError {
            throw Self.readError(error, path: path, fileSize: fileSize)
        }
        if header.uuidLinkage.contains(where: { $0 != 0 }) {
            throw unsupported("a link to a parent image (link UUID \(UUIDBytes.format(header.uuidLinkage)))")
        }
        if header.uuidParentModify.contains(where: { $0 != 0 }) {
            throw unsupported("a parent image (parent UUID \(UUIDBytes.format(header.uuidParentModify)))")
        }

        let blockSize = UInt64(header.blockSize)
        // decode checked cBlocks x cbBlock >= cbDisk, and that is a sector multiple.
        virtualSize = (header.diskSize + 511) / 512 * 512

        // decode capped cBlocks (VDIHeader.maximumBlocks); the map must also lie in the file,
        // so what is allocated here is never more than the file holds.
        let mapOffset = UInt64(header.blockMapOffset)
        let mapBytes = UInt64(header.blockCount) * 4
        guard mapBytes <= DiskImageReaders.tableMemoryBudget else {
            throw corrupt(384, "block count is \(header.blockCount): a block map of \(mapBytes) bytes, more than the \(DiskImageReaders.tableMemoryBudget) Rehost holds in memory (a \(ByteCount.format(DiskImageReaders.tableMemoryBudget / 4 * blockSize)) disk)")
        }
        guard mapOffset <= fileSize, mapBytes <= fileSize - mapOffset else {
            throw ImageReadError.truncated(format: .vdi, path: path, offset: mapOffset, needed: mapBytes, fileSize: fileSize)
        }
        var map: [UInt32] = []
        map.reserveCapacity(Int(header.blockCount))
        let chunkEntries = 1 << 18
        while map.count < Int(header.blockCount) {
            let count = min(chunkEntries, Int(header.blockCount) - map.count)
            let raw = try file.read(count: count * 4, at: mapOffset + UInt64(map.count) * 4)
            for i in 0..<count { map.append(raw.loadLE(UInt32.self, at: i * 4)) }
        }

        // Each data block may serve one virtual block only: one bit per allocated block.
        var used = [UInt64](repeating: 0, count: (Int(header.allocatedBlocks) + 63) / 64)
        let dataOffset = UInt64(header.dataOffset)
        var allocated = 0
        for (block, entry) in map.enumerated() where entry < VDIHeader.zeroBlock {
            let entryOffset = mapOffset + UInt64(block) * 4
            guard entry < header.allocatedBlocks else {
                throw corrupt(entryOffset, "block map entry \(block) is \(entry), expected below the \(header.allocatedBlocks) allocated blocks, or 0xffffffff (free) or 0xfffffffe (zero)")
            }
            let word = Int(entry) / 64, bit = UInt64(1) << (UInt64(entry) % 64)
            guard used[word] & bit == 0 else {
                let first = map.firstIndex(of: entry) ?? 0
                throw corrupt(entryOffset, "block map entry \(block) points at data block \(entry), which entry \(first) uses already")
            }
            used[word] |= bit
            // Blocks past the disk's end are never read. Of the last block, only the part inside
            // the disk is read; that part must be in the file.
            guard UInt64(block) * blockSize < virtualSize else { continue }
            let host = dataOffset + UInt64(entry) * blockSize
            let length = min(blockSize, virtualSize - UInt64(block) * blockSize)
            guard host <= fileSize, length <= fileSize - host else {
                throw ImageReadError.truncated(format: .vdi, path: path, offset: host, needed: length, fileSize: fileSize)
            }
            allocated += 1
        }
        blockMap = map
        let kind = header.imageType == .fixed ? "fixed" : "dynamic"
        variant = "VDI \(kind), \(ReaderText.size(blockSize)) blocks, \(allocated) of \(header.blockCount) allocated"
    }

    public func forEachDataPiece(_ body: (_ offset: UInt64, _ data: UnsafeRawBufferPointer) throws -> Void) throws {
        let streamer = try HostRunStreamer(file: file, format: format, diskSize: virtualSize)
        let blockSize = UInt64(header.blockSize)
        let dataOffset = UInt64(header.dataOffset)
        for (block, entry) in blockMap.enumerated() where entry < VDIHeader.zeroBlock {
            let virtual = UInt64(block) * blockSize
            guard virtual < virtualSize else { break }
            try streamer.add(virtual: virtual, host: dataOffset + UInt64(entry) * blockSize,
                             length: min(blockSize, virtualSize - virtual), body)
        }
        try streamer.flush(body)
    }

    /// The header decoder's errors in the reader's terms.
    static func readError(_ error: VDIError, path: String, fileSize: UInt64) -> ImageReadError {
        switch error {
        case let .truncated(_, offset, wanted, _):
            return .truncated(format: .vdi, path: path, offset: offset, needed: UInt64(wanted), fileSize: fileSize)
        case let .badField(_, offset, field, found, expected):
            return .corrupt(format: .vdi, path: path, offset: offset,
                            reason: "\(field) is \(found) (0x\(String(found, radix: 16))), expected \(expected)")
        case .sizeNotWholeSectors, .tooLarge:
            return .corrupt(format: .vdi, path: path, offset: 0, reason: error.description)
        }
    }
}
