import ImageCore

/// Reads a fixed or dynamic VHD (layouts drawn on `VHDFooter` and `VHDDynamicHeader`):
///
/// ```
/// fixed:    [ disk data ............................ ][ footer 512 ]
/// dynamic:  [ footer copy 512 ][ dynamic header 1024 at data offset ][ BAT at table offset ]
///           [ bitmap | block ] [ bitmap | block ] ...  (in any order)  [ footer 512 ]
///
/// BAT entry i (u32 BE) = 0xFFFFFFFF : virtual block i reads as zeros
///                      = s          : its sector bitmap at s x 512, then block_size data bytes
/// bitmap = one bit per sector of the block, rounded up to whole 512-byte sectors
/// ```
///
/// The virtual size is the one qemu 7.2 reports (`vpc_open` in block/vpc.c): the footer's CHS
/// geometry (cylinders x heads x sectors x 512), except that the current-size field is used
/// when the creator application is "win " (Hyper-V), "qem2" (qemu with force_size), "d2v "
/// (Disk2vhd), "CTXS" (XenConverter) or "tap\0" (XenServer), or when the geometry is the largest
/// one CHS can say (65535/16/255), which means the size did not fit. So an image qemu made with
/// plain `-O vpc` ("qemu", size rounded to CHS) reads as what qemu shows, not as its source.
/// (Later qemu releases add Azure's "wa\0\0" to that list; 7.2, installed here, does not.)
///
/// Footers: qemu takes a dynamic disk's footer from the copy at byte 0 and a fixed disk's from
/// the end. Here the end footer decides the type; a dynamic disk's two copies must agree on what
/// matters (type, sizes, geometry, creator, data offset), and either may stand in for the other
/// if it is missing, so a dynamic image whose last sector or first sector was lost still reads.
/// A checksum that does not match is corruption, whichever copy has it.
///
/// Differencing disks (type 4) read sectors from their parent and are `.unsupported`.
/// Memory: the BAT (4 bytes per block, never more than the file holds) and one 8 MiB buffer.
public final class VHDReader: DiskImageReader {
    public let format = ImageFormat.vhd
    public let path: String
    public let virtualSize: UInt64
    public let variant: String
    /// The footer the disk is read by (the copy at byte 0 for a dynamic disk that has one).
    public let footer: VHDFooter
    public let dynamicHeader: VHDDynamicHeader?
    /// Dynamic disks: one entry per block, the sector of its bitmap or `VHDDynamicHeader.unusedBlock`.
    public let blockAllocationTable: [UInt32]
    /// Dynamic disks: bytes of sector bitmap before each block's data.
    public let bitmapSize: UInt64
    let file: RawFile

    /// qemu's VHD_MAX_GEOMETRY: the largest CHS geometry, which says "use the current size".
    static let maximumGeometry: UInt64 = 65535 * 16 * 255
    /// Creators whose current-size field qemu 7.2 believes (block/vpc.c, vpc_open).
    static let currentSizeCreators: [[UInt8]] = [Array("win ".utf8), Array("qem2".utf8), Array("d2v ".utf8),
                                                 Array("CTXS".utf8), [0x74, 0x61, 0x70, 0x00]]

    public init(path: String) throws {
        self.path = path
        file = try RawFile(path: path, mode: .readOnly)
        let fileSize = try file.size
        func corrupt(_ offset: UInt64, _ reason: String) -> ImageReadError {
            .corrupt(format: .vhd, path: path, offset: offset, reason: reason)
        }
        let footerSize = UInt64(VHDFooter.size)
        guard fileSize >= footerSize else {
            throw ImageReadError.truncated(format: .vhd, path: path, offset: 0, needed: footerSize, fileSize: fileSize)
        }

        let tailOffset = fileSize - footerSize
        let tail = try file.read(count: VHDFooter.size, at: tailOffset)
        let head = try file.read(count: VHDFooter.size, at: 0)
        let tailFooter = Self.hasCookie(tail) ? try Self.decodeFooter(tail, at: tailOffset, path: path, fileSize: fileSize) : nil
        let headFooter: VHDFooter?
        if let tailFooter, tailFooter.diskType == .fixed {
            // Byte 0 is the guest's first sector, unless it is this very disk's dynamic footer
            // copy: then the end footer's type was damaged, and reading the file as fixed would
            // hand out its metadata as disk data.
            if let copy = try? Self.decodeFooter(head, at: 0, path: path, fileSize: fileSize), copy.diskType == .dynamic,
               copy.uuid == tailFooter.uuid, !tailFooter.uuid.allSatisfy({ $0 == 0 }) {
                throw corrupt(tailOffset + 60, "disk type is 2 (fixed), but byte 0 holds this disk's dynamic footer copy (type 3)")
            }
            headFooter = nil
        } else if Self.hasCookie(head) {
            headFooter = try Self.decodeFooter(head, at: 0, path: path, fileSize: fileSize)
        } else {
            headFooter = nil
        }
        guard let chosen = headFooter ?? tailFooter else {
            throw corrupt(tailOffset, "no VHD footer: found \"\(ReaderText.printable(tail[0..<8]))\" where the cookie \"conectix\" belongs (the last 512 bytes, or the first for a dynamic disk)")
        }
        if let headFooter, let tailFooter {
            let differences = Self.differences(headFooter, tailFooter)
            guard differences.isEmpty else {
                throw corrupt(tailOffset, "the footer at the end and its copy at byte 0 disagree on \(differences.joined(separator: ", "))")
            }
        }
        if headFooter != nil, tailFooter == nil, chosen.diskType == .fixed {
            throw corrupt(tailOffset, "a fixed disk's footer belongs in the last 512 bytes, which hold \"\(ReaderText.printable(tail[0..<8]))\"")
        }
        footer = chosen

        // The size qemu 7.2 shows; see the type's documentation.
        let creator = Array(chosen.creatorApplication.utf8)
        let geometrySectors = chosen.geometry.sectors
        let useCurrentSize = Self.currentSizeCreators.contains(creator) || geometrySectors == Self.maximumGeometry
        // decode capped the current size at qemu's 2040 GiB; a CHS size is below 127 GiB.
        virtualSize = useCurrentSize ? chosen.currentSize : geometrySectors * 512
        let sizeSource = useCurrentSize ? "current size" : "CHS size \(chosen.geometry.cylinders)/\(chosen.geometry.heads)/\(chosen.geometry.sectorsPerTrack)"

        guard chosen.diskType == .dynamic else {
            // The data is the file before the footer; qemu reads the first virtualSize bytes.
            guard virtualSize <= tailOffset else {
                throw ImageReadError.truncated(format: .vhd, path: path, offset: 0, needed: virtualSize + footerSize, fileSize: fileSize)
            }
            dynamicHeader = nil
            blockAllocationTable = []
            bitmapSize = 0
            variant = "VHD fixed, \(sizeSource)"
            return
        }

        // Where block data may end: before the footer, if the file still has it.
        let dataEnd = tailFooter != nil ? tailOffset : fileSize
        let headerOffset = chosen.dataOffset
        let headerSize = UInt64(VHDDynamicHeader.size)
        guard headerOffset <= fileSize, headerSize <= fileSize - headerOffset else {
            if headerOffset > fileSize {
                throw corrupt((headFooter != nil ? 0 : tailOffset) + 16,
                              "data offset is \(headerOffset), past the end of the \(fileSize)-byte file (the dynamic header belongs there)")
            }
            throw ImageReadError.truncated(format: .vhd, path: path, offset: headerOffset, needed: headerSize, fileSize: fileSize)
        }
        let header: VHDDynamicHeader
        do {
            header = try VHDDynamicHeader.decode(file.read(count: VHDDynamicHeader.size, at: headerOffset), path: path, offset: headerOffset)
        } catch let error as VHDError {
            throw Self.readError(error, path: path, fileSize: fileSize)
        }
        dynamicHeader = header
        let blockSize = UInt64(header.blockSize)
        // The specification's bitmap: a bit per sector, padded to a sector. (qemu 7.2 computes
        // block_size / 4096 rounded to 512, the same for every block size of 4 KiB and up.)
        let bitmap = ((blockSize / 512 + 7) / 8 + 511) / 512 * 512
        bitmapSize = bitmap

        let entries = UInt64(header.maxTableEntries)
        guard entries * blockSize >= virtualSize else {
            throw corrupt(headerOffset + 28, "max table entries is \(entries): \(entries) blocks of \(blockSize) bytes cannot hold the \(virtualSize)-byte disk")
        }
        let tableOffset = header.tableOffset
        let tableBytes = entries * 4
        guard tableBytes <= DiskImageReaders.tableMemoryBudget else {
            throw corrupt(headerOffset + 28, "max table entries is \(entries): a BAT of \(tableBytes) bytes, more than the \(DiskImageReaders.tableMemoryBudget) Rehost holds in memory (the largest VHD, 2040 GiB in 2 MiB blocks, needs 4 MiB)")
        }
        guard tableOffset <= fileSize, tableBytes <= fileSize - tableOffset else {
            if tableOffset > fileSize {
                throw corrupt(headerOffset + 16, "table offset is \(tableOffset), past the end of the \(fileSize)-byte file")
            }
            throw ImageReadError.truncated(format: .vhd, path: path, offset: tableOffset, needed: tableBytes, fileSize: fileSize)
        }
        // In the file, so this allocation is never more than the file holds.
        var table: [UInt32] = []
        table.reserveCapacity(Int(entries))
        let chunkEntries = 1 << 18
        while table.count < Int(entries) {
            let count = min(chunkEntries, Int(entries) - table.count)
            let raw = try file.read(count: count * 4, at: tableOffset + UInt64(table.count) * 4)
            for i in 0..<count { table.append(raw.loadBE(UInt32.self, at: i * 4)) }
        }

        // Every block (bitmap + data) must lie in the file before the footer, clear of the
        // metadata and of every other block. qemu checks only the first (its "image has been
        // truncated"); the rest would make two sectors share bytes.
        let stride = bitmap + blockSize
        var metadata: [(range: Range<UInt64>, name: String)] = [
            (headerOffset..<(headerOffset + headerSize), "the dynamic header"),
            (tableOffset..<(tableOffset + tableBytes), "the BAT"),
        ]
        if headFooter != nil { metadata.append((0..<footerSize, "the footer copy")) }
        // Blocks may not share bytes (checked below, sorted); the list is held to the count the
        // file can hold, which bounds its memory.
        let blockRoom = dataEnd / stride
        var blocks: [(start: UInt64, index: Int)] = []
        for (index, entry) in table.enumerated() where entry != VHDDynamicHeader.unusedBlock {
            let entryOffset = tableOffset + UInt64(index) * 4
            let start = UInt64(entry) * 512
            guard start <= dataEnd, stride <= dataEnd - start else {
                let place = tailFooter != nil ? "before the footer at byte \(dataEnd)" : "in the \(fileSize)-byte file, which has lost its footer: truncated?"
                if tailFooter == nil {
                    throw ImageReadError.truncated(format: .vhd, path: path, offset: start, needed: stride, fileSize: fileSize)
                }
                throw corrupt(entryOffset, "BAT entry \(index) is sector \(entry): its block (\(stride) bytes at byte \(start)) does not end \(place)")
            }
            let block = start..<(start + stride)
            if let hit = metadata.first(where: { $0.range.overlaps(block) }) {
                throw corrupt(entryOffset, "BAT entry \(index) is sector \(entry): its block at byte \(start) overlaps \(hit.name)")
            }
            guard UInt64(blocks.count) < blockRoom else {
                throw corrupt(entryOffset, "BAT entry \(index) allocates block \(blocks.count + 1), more blocks of \(stride) bytes (bitmap and data) than the \(fileSize)-byte file can hold: blocks are shared")
            }
            blocks.append((start, index))
        }
        blocks.sort { $0.start < $1.start }
        for (previous, next) in zip(blocks, blocks.dropFirst()) where previous.start + stride > next.start {
            throw corrupt(tableOffset + UInt64(next.index) * 4,
                          "BAT entry \(next.index) puts its block at byte \(next.start), inside the block of entry \(previous.index) at byte \(previous.start)")
        }
        blockAllocationTable = table
        variant = "VHD dynamic, \(ReaderText.size(blockSize)) blocks, \(blocks.count) of \(entries) allocated, \(sizeSource)"
    }

    public func forEachDataPiece(_ body: (_ offset: UInt64, _ data: UnsafeRawBufferPointer) throws -> Void) throws {
        let streamer = try HostRunStreamer(file: file, format: format, diskSize: virtualSize)
        guard let header = dynamicHeader else {
            if virtualSize > 0 { try streamer.add(virtual: 0, host: 0, length: virtualSize, body) }
            try streamer.flush(body)
            return
        }
        // The sector bitmap is not consulted, as qemu does not for a dynamic disk: a clear bit
        // means "never written", whose bytes Virtual PC and Hyper-V leave zero in the block
        // anyway, and qemu itself sets every bit when it allocates a block. Only a differencing
        // disk, refused above, gives the bits a meaning (read the parent instead).
        let blockSize = UInt64(header.blockSize)
        for (index, entry) in blockAllocationTable.enumerated() where entry != VHDDynamicHeader.unusedBlock {
            let virtual = UInt64(index) * blockSize
            guard virtual < virtualSize else { break }
            try streamer.add(virtual: virtual, host: UInt64(entry) * 512 + bitmapSize,
                             length: min(blockSize, virtualSize - virtual), body)
        }
        try streamer.flush(body)
    }

    // MARK: - Footers

    private static func hasCookie(_ bytes: [UInt8]) -> Bool {
        bytes.count >= 8 && bytes[0..<8].elementsEqual(VHDFooter.cookie.utf8)
    }

    /// Checks the checksum and type before `VHDFooter.decode`, so that a damaged footer is called
    /// corrupt and a differencing disk unsupported, not the other way round.
    private static func decodeFooter(_ bytes: [UInt8], at offset: UInt64, path: String, fileSize: UInt64) throws -> VHDFooter {
        let stored = bytes.loadBE(UInt32.self, at: 64)
        let computed = VHDChecksum.compute(bytes, skipping: 64)
        guard stored == computed else {
            throw ImageReadError.corrupt(format: .vhd, path: path, offset: offset + 64,
                                         reason: "footer checksum is 0x\(String(stored, radix: 16)), expected 0x\(String(computed, radix: 16))")
        }
        if bytes.loadBE(UInt32.self, at: 60) == 4 {
            throw ImageReadError.unsupported(format: .vhd, path: path, feature: "a differencing disk (type 4), which only holds changes to its parent",
                                             advice: "merge it into its parent first (Hyper-V: Merge-VHD; VirtualBox: VBoxManage clonemedium disk IN.vhd OUT.vhd --format VHD) and convert the merged disk")
        }
        do {
            return try VHDFooter.decode(bytes, path: path, offset: offset)
        } catch let error as VHDError {
            throw readError(error, path: path, fileSize: fileSize)
        }
    }

    /// The fields of two footers that decide how the disk reads, where they differ. (Not the
    /// timestamp or unique id, which tools may update in one copy without harm.)
    private static func differences(_ a: VHDFooter, _ b: VHDFooter) -> [String] {
        var names: [String] = []
        if a.diskType != b.diskType { names.append("disk type (\(a.diskType.rawValue) and \(b.diskType.rawValue))") }
        if a.dataOffset != b.dataOffset { names.append("data offset (\(a.dataOffset) and \(b.dataOffset))") }
        if a.currentSize != b.currentSize { names.append("current size (\(a.currentSize) and \(b.currentSize))") }
        if a.geometry != b.geometry { names.append("geometry") }
        if a.creatorApplication != b.creatorApplication { names.append("creator application") }
        return names
    }

    /// The footer/header decoders' errors in the reader's terms.
    static func readError(_ error: VHDError, path: String, fileSize: UInt64) -> ImageReadError {
        switch error {
        case let .truncated(_, offset, wanted, _):
            return .truncated(format: .vhd, path: path, offset: offset, needed: UInt64(wanted), fileSize: fileSize)
        case let .badCookie(_, offset, found, expected):
            return .corrupt(format: .vhd, path: path, offset: offset,
                            reason: "found \"\(ReaderText.printable(found.utf8))\" where the cookie \"\(expected)\" belongs")
        case let .badField(_, offset, field, found, expected):
            return .corrupt(format: .vhd, path: path, offset: offset,
                            reason: "\(field) is \(found) (0x\(String(found, radix: 16))), expected \(expected)")
        case .footerCopyDiffers:
            return .corrupt(format: .vhd, path: path, offset: 0, reason: error.description)
        case .sizeNotWholeSectors, .fixedSizeNotWholeMiB, .tooLarge:
            return .corrupt(format: .vhd, path: path, offset: 0, reason: error.description)
        }
    }
}
