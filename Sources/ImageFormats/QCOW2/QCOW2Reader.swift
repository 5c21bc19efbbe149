import Compression
import ImageCore

/// Reads a qcow2 image (version 2 = compat 0.10, version 3 = compat 1.1) as a virtual disk: the
/// input side of `qemu-img convert`. What it reads:
///
/// ```
///  cluster 0    header (72 bytes in v2, header_length in v3) | header extensions, up to the end
///               of the cluster or the backing file name: u32 type, u32 length, data padded to 8,
///               type 0 ends them
///  anywhere     active L1 table: l1_size big-endian u64 entries, cluster aligned
///    L1 entry   -> one L2 table: a cluster of cluster_size / 8 big-endian u64 entries
///    L2 entry   -> one guest cluster: 0 = unallocated (zeros); bit 0 (v3) = zeros;
///                  bit 62 = compressed data at a byte offset, counted in 512-byte sectors;
///                  else a cluster-aligned host cluster, read as is
///  anywhere     refcount table and blocks, snapshot table: checked for place, not read
///
///  guest byte g:  L1[g >> (cluster_bits + l2_bits)], then L2[(g >> cluster_bits) % 2^l2_bits],
///                 with l2_bits = cluster_bits - 3
/// ```
///
/// `init` reads the header, the extensions and the active L1 table, then every L2 table once,
/// checking each entry against the file: it holds the L1 table (at most 32 MiB, qemu's limit) and
/// one L2 table at a time. `forEachDataPiece` walks the L2 tables again, in guest order, checking
/// each entry again (the file may have changed), and hands out host-contiguous runs of clusters in
/// reads of up to 8 MiB, and compressed clusters inflated in parallel, about 8 MiB of guest data
/// per batch.
///
/// Refused as `.unsupported`: backing files, encryption, external data files, extended L2 entries
/// (subclusters), unknown incompatible features, compression types other than zlib and zstd.
/// Read anyway: the dirty and corrupt bits (qemu opens such images read-only), internal snapshots
/// (only the active state is read), any refcount width.
public final class QCOW2Reader: DiskImageReader {
    public let format = ImageFormat.qcow2
    public let path: String
    /// The header size rounded down to whole sectors, as qemu reports it.
    public let virtualSize: UInt64
    public let variant: String
    public let header: QCOW2Header

    let file: RawFile
    let layout: QCOW2Layout
    /// The active L1 entries that cover the virtual disk; those after them map the VM state of
    /// snapshots (v2 savevm) and are never read.
    let l1: [UInt64]
    let decompressor: Decompressor

    /// qemu's `QCOW_MAX_L1_SIZE`: 4 Mi entries.
    public static let maxL1Bytes: UInt64 = 32 << 20
    /// qemu's `QCOW_MAX_REFTABLE_SIZE`.
    static let maxRefcountTableBytes: UInt64 = 8 << 20
    /// qemu's `QCOW_MAX_SNAPSHOTS`, and the fixed part of one snapshot table entry.
    static let maxSnapshots: UInt32 = 65536
    static let snapshotEntryMinimumSize: UInt64 = 40
    /// qemu reads backing file names of at most 1023 bytes.
    static let maxBackingFileNameLength: UInt32 = 1023
    /// Incompatible feature bits this reader knows (qcow2.txt): 0 dirty, 1 corrupt, 2 external
    /// data file, 3 compression type, 4 extended L2 entries.
    static let dirtyBit: UInt64 = 1 << 0
    static let corruptBit: UInt64 = 1 << 1
    static let externalDataFileBit: UInt64 = 1 << 2
    static let extendedL2Bit: UInt64 = 1 << 4
    static let knownIncompatibleFeatures: UInt64 = 0b1_1111
    /// Guest bytes of compressed clusters inflated per parallel batch.
    static let batchBytes = 8 << 20

    public init(path: String) throws {
        self.path = path
        let file = try RawFile(path: path, mode: .readOnly)
        let fileSize = try file.size
        let failure = QCOW2Failure(path: path, fileSize: fileSize)

        // The header, checked field by field by QCOW2Header once enough bytes are known to be there.
        guard fileSize >= UInt64(QCOW2Header.version2Length) else {
            throw failure.truncated(at: 0, needed: UInt64(QCOW2Header.version2Length))
        }
        let head = try file.read(count: Int(min(fileSize, UInt64(QCOW2Header.version3Length))), at: 0)
        let magic = head.loadBE(UInt32.self, at: 0)
        guard magic == QCOW2Header.magic else {
            throw failure.corrupt(0, "the magic is 0x\(String(magic, radix: 16)), expected 0x514649fb (\"QFI\\xfb\"): not a qcow2 image")
        }
        let version = head.loadBE(UInt32.self, at: 4)
        if version == 1 {
            throw failure.unsupported("the original qcow format (version 1)",
                                      advice: "convert it first with `qemu-img convert -O qcow2 \(path) converted.qcow2`")
        }
        if version == 3 {
            let declaredLength = head.count >= 104 ? head.loadBE(UInt32.self, at: 100) : 104
            let needed: UInt64 = declaredLength > 104 ? 105 : 104
            guard fileSize >= needed else { throw failure.truncated(at: 0, needed: needed) }
        }
        let header: QCOW2Header
        do {
            header = try QCOW2Header.parse(head, path: path)
        } catch let error as QCOW2Error {
            throw failure.translated(error)
        }
        self.header = header
        let clusterSize = header.clusterSize
        let headerLength = UInt64(version >= 3 ? header.headerLength : UInt32(QCOW2Header.version2Length))
        guard fileSize >= headerLength else { throw failure.truncated(at: 0, needed: headerLength) }

        // A backing file: refused, named when its name can be read. An offset with an empty name
        // is no backing file (qemu reads it so too).
        if header.backingFileOffset != 0 {
            guard header.backingFileOffset <= clusterSize else {
                throw failure.corrupt(8, "backing_file_offset is \(header.backingFileOffset), expected a byte within the first cluster (at most \(clusterSize))")
            }
            if header.backingFileSize != 0 {
                guard header.backingFileSize <= Self.maxBackingFileNameLength,
                      header.backingFileOffset + UInt64(header.backingFileSize) <= clusterSize else {
                    throw failure.corrupt(16, "backing_file_size is \(header.backingFileSize), expected at most \(min(UInt64(Self.maxBackingFileNameLength), clusterSize - header.backingFileOffset)) bytes, within the first cluster")
                }
                let end = header.backingFileOffset + UInt64(header.backingFileSize)
                var name = "a backing file"
                if end <= fileSize {
                    let bytes = try file.read(count: Int(header.backingFileSize), at: header.backingFileOffset)
                    name = "a backing file (\"\(ReaderText.printable(bytes))\")"
                }
                throw failure.unsupported(name, advice: "flatten it first with `qemu-img convert -O qcow2 \(path) flat.qcow2`, which merges the backing chain into one image")
            }
        }

        // Header extensions, up to the backing file name or the end of the first cluster; bytes
        // past the end of a short file read as zeros (an end marker), as in qemu.
        let extensionsEnd = header.backingFileOffset != 0 ? max(header.backingFileOffset, headerLength) : clusterSize
        var area = [UInt8](repeating: 0, count: Int(extensionsEnd - headerLength))
        let available = Int(min(extensionsEnd, fileSize) - headerLength)
        if available > 0 {
            try area.withUnsafeMutableBytes { buffer in
                _ = try file.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<available]), at: headerLength)
            }
        }
        let extensions: [QCOW2HeaderExtension]
        do {
            extensions = try QCOW2HeaderExtension.parse(area, areaOffset: headerLength, path: path)
        } catch let error as QCOW2Error {
            throw failure.translated(error)
        }

        // Features this reader cannot honour.
        let incompatible = header.incompatibleFeatures
        let unknown = incompatible & ~Self.knownIncompatibleFeatures
        if unknown != 0 {
            let names = (0..<64).filter { unknown >> UInt64($0) & 1 != 0 }.map { bit in
                QCOW2HeaderExtension.featureName(in: extensions, kind: 0, bit: bit).map { "\"\(ReaderText.printable($0.utf8))\" (bit \(bit))" } ?? "bit \(bit)"
            }
            throw failure.unsupported("incompatible feature \(names.joined(separator: ", ")), which this reader does not know",
                                      advice: "convert it with the qemu-img that wrote it: `qemu-img convert -O qcow2 \(path) plain.qcow2`")
        }
        if incompatible & Self.externalDataFileBit != 0 {
            let name = extensions.first { $0.type == QCOW2HeaderExtension.externalDataFile }
                .map { " (\"\(ReaderText.printable($0.data))\")" } ?? ""
            throw failure.unsupported("an external data file\(name)",
                                      advice: "copy the data into one image first with `qemu-img convert -O qcow2 \(path) single.qcow2`")
        }
        if incompatible & Self.extendedL2Bit != 0 {
            throw failure.unsupported("extended L2 entries (subclusters)",
                                      advice: "convert it first with `qemu-img convert -O qcow2 -o extended_l2=off \(path) plain.qcow2`")
        }
        switch header.cryptMethod {
        case 0: break
        case 1, 2:
            throw failure.unsupported(header.cryptMethod == 1 ? "AES encryption" : "LUKS encryption",
                                      advice: "decrypt it first with `qemu-img convert` (key given with --object secret,... and encrypt.key-secret) into an unencrypted qcow2")
        default:
            throw failure.corrupt(32, "crypt_method is \(header.cryptMethod), expected 0 (none), 1 (AES) or 2 (LUKS)")
        }
        switch header.compressionType {
        case QCOW2Header.CompressionType.zlib.rawValue: decompressor = .rawDeflate
        case QCOW2Header.CompressionType.zstd.rawValue: decompressor = .zstd
        default:
            throw failure.unsupported("compression type \(header.compressionType)",
                                      advice: "recompress it first with `qemu-img convert -c -O qcow2 -o compression_type=zlib \(path) zlib.qcow2`")
        }

        // Tables the header places: each aligned, within qemu's limits and inside the file. The
        // refcount and snapshot tables are not needed to read the disk, but an image whose
        // header misplaces them is not one qemu would open. The L1 table first: a file cut
        // short is reported by the table the disk cannot be read without.
        func checkTable(_ offset: UInt64, field: UInt64, name: String, bytes: UInt64) throws {
            guard offset % clusterSize == 0 else {
                throw failure.corrupt(field, "the \(name) offset is \(offset), not a multiple of the cluster size \(clusterSize)")
            }
            guard bytes > 0 else { return }
            guard offset != 0 else { throw failure.corrupt(field, "the \(name) is at byte 0, over the header") }
            let (end, overflow) = offset.addingReportingOverflow(bytes)
            guard !overflow else { throw failure.corrupt(field, "the \(name) at byte \(offset) of \(bytes) bytes ends beyond 2^64") }
            guard end <= fileSize else { throw failure.truncated(at: offset, needed: bytes) }
        }

        // The active L1 table: within qemu's cap, large enough for the virtual size.
        let clusterBits = Int(header.clusterBits)
        let l2Bits = clusterBits - 3
        let l1Shift = UInt64(clusterBits + l2Bits)
        let l1Bytes = UInt64(header.l1Size) * 8
        guard l1Bytes <= Self.maxL1Bytes else {
            throw failure.corrupt(36, "l1_size is \(header.l1Size) entries (\(l1Bytes) bytes), more than qemu's limit of \(Self.maxL1Bytes) bytes")
        }
        let l1Needed = (header.size >> l1Shift) + (header.size & ((1 << l1Shift) - 1) != 0 ? 1 : 0)
        guard UInt64(header.l1Size) >= l1Needed else {
            throw failure.corrupt(36, "l1_size is \(header.l1Size) entries, but the virtual size of \(header.size) bytes needs \(l1Needed)")
        }
        try checkTable(header.l1TableOffset, field: 40, name: "L1 table", bytes: l1Bytes)

        let refcountTableBytes = UInt64(header.refcountTableClusters) * clusterSize
        guard header.refcountTableClusters > 0 else {
            throw failure.corrupt(56, "refcount_table_clusters is 0: the image has no refcount table")
        }
        guard refcountTableBytes <= Self.maxRefcountTableBytes else {
            throw failure.corrupt(56, "refcount_table_clusters is \(header.refcountTableClusters) (\(refcountTableBytes) bytes), more than qemu's limit of \(Self.maxRefcountTableBytes) bytes")
        }
        try checkTable(header.refcountTableOffset, field: 48, name: "refcount table", bytes: refcountTableBytes)
        guard header.snapshotCount <= Self.maxSnapshots else {
            throw failure.corrupt(60, "nb_snapshots is \(header.snapshotCount), more than qemu's limit of \(Self.maxSnapshots)")
        }
        try checkTable(header.snapshotsOffset, field: 64, name: "snapshot table",
                       bytes: UInt64(header.snapshotCount) * Self.snapshotEntryMinimumSize)

        let l1: [UInt64] = try {
            let bytes = try file.read(count: Int(l1Needed) * 8, at: header.l1TableOffset)
            return (0..<Int(l1Needed)).map { bytes.loadBE(UInt64.self, at: $0 * 8) }
        }()

        virtualSize = header.size / 512 * 512
        let layout = QCOW2Layout(failure: failure, version: header.version, clusterBits: clusterBits, virtualSize: virtualSize)

        // Every L2 table inside the file, aligned, and used once: two L1 entries sharing a table
        // would let a small file describe an endless disk.
        for (index, entry) in l1.enumerated() {
            try layout.checkL2Table(entry, index: index, entryAt: header.l1TableOffset + UInt64(index) * 8)
        }
        let tables = l1.map { $0 & QCOW2Entry.offsetMask }.filter { $0 != 0 }.sorted()
        if let shared = zip(tables, tables.dropFirst()).first(where: { $0.0 == $0.1 })?.0 {
            let users = l1.indices.filter { l1[$0] & QCOW2Entry.offsetMask == shared }
            throw failure.corrupt(header.l1TableOffset + UInt64(users[1]) * 8,
                                  "L1 entries \(users[0]) and \(users[1]) both point to the L2 table at byte \(shared)")
        }

        // Every L2 entry that maps the disk, checked once now and again while streaming. Each
        // data cluster must be used once: the active L2 tables of an image qemu wrote never share
        // one (only snapshots do, and they are not read), and shared clusters would let a file of
        // a few clusters read as terabytes of data. The map of the file's clusters takes one bit
        // per cluster; without it (files of more than 2^31 clusters), the count of data clusters
        // is still held to what the file can hold.
        var compressedClusters = 0
        var dataClusters: UInt64 = 0
        let fileClusters = (fileSize + clusterSize - 1) / clusterSize
        var used = HostUseMap(units: fileClusters)
        var table = [UInt8](repeating: 0, count: Int(clusterSize))
        for (index, entry) in l1.enumerated() where entry & QCOW2Entry.offsetMask != 0 {
            let tableOffset = entry & QCOW2Entry.offsetMask
            try layout.readL2Table(into: &table, from: file, at: tableOffset)
            for slot in layout.slots(ofL2Table: index) {
                let guestCluster = UInt64(index) * layout.l2Entries + UInt64(slot)
                let entryAt = tableOffset + UInt64(slot) * 8
                let mapping = try layout.map(table.loadBE(UInt64.self, at: slot * 8), guestCluster: guestCluster, entryAt: entryAt)
                switch mapping {
                case .compressed: compressedClusters += 1
                case let .data(host, _):
                    dataClusters += 1
                    guard dataClusters <= fileClusters else {
                        throw failure.corrupt(entryAt, "the L2 tables map more data clusters than the \(fileClusters) the file holds: clusters are shared")
                    }
                    if used?.use(first: host / clusterSize, count: 1) != nil {
                        throw failure.corrupt(entryAt, "the L2 entry of guest byte \(guestCluster * clusterSize) points to host cluster at byte \(host), which another L2 entry uses already: shared clusters are refused")
                    }
                case nil: break
                }
            }
        }

        var notes = ["qcow2 v\(header.version)", "\(ByteCount.format(clusterSize)) clusters"]
        if compressedClusters > 0 { notes.append(decompressor == .zstd ? "zstd-compressed" : "zlib-compressed") }
        if incompatible & Self.dirtyBit != 0 { notes.append("dirty") }
        if incompatible & Self.corruptBit != 0 { notes.append("marked corrupt") }
        if header.snapshotCount > 0 {
            notes.append("\(header.snapshotCount) internal snapshot\(header.snapshotCount == 1 ? "" : "s") (active state read)")
        }
        variant = notes.joined(separator: ", ")
        self.file = file
        self.layout = layout
        self.l1 = l1
    }

    public func forEachDataPiece(_ body: (_ offset: UInt64, _ data: UnsafeRawBufferPointer) throws -> Void) throws {
        let streamer = PieceStreamer(file: file, layout: layout, decompressor: decompressor)
        var table = [UInt8](repeating: 0, count: Int(layout.clusterSize))
        for (index, entry) in l1.enumerated() where entry & QCOW2Entry.offsetMask != 0 {
            let tableOffset = entry & QCOW2Entry.offsetMask
            try layout.readL2Table(into: &table, from: file, at: tableOffset)
            for slot in layout.slots(ofL2Table: index) {
                let guestCluster = UInt64(index) * layout.l2Entries + UInt64(slot)
                let entryAt = tableOffset + UInt64(slot) * 8
                switch try layout.map(table.loadBE(UInt64.self, at: slot * 8), guestCluster: guestCluster, entryAt: entryAt) {
                case nil:
                    continue
                case let .data(host, length):
                    try streamer.addData(guest: guestCluster * layout.clusterSize, host: host, length: length, body)
                case let .compressed(host, end):
                    try streamer.addCompressed(guestCluster: guestCluster, host: host, end: end, entryAt: entryAt, body)
                }
            }
        }
        try streamer.finish(body)
    }
}

/// Builds the reader's errors, all naming the file.
struct QCOW2Failure: Sendable {
    let path: String
    let fileSize: UInt64

    func corrupt(_ offset: UInt64, _ reason: String) -> ImageReadError {
        .corrupt(format: .qcow2, path: path, offset: offset, reason: reason)
    }

    func truncated(at offset: UInt64, needed: UInt64) -> ImageReadError {
        .truncated(format: .qcow2, path: path, offset: offset, needed: needed, fileSize: fileSize)
    }

    func unsupported(_ feature: String, advice: String) -> ImageReadError {
        .unsupported(format: .qcow2, path: path, feature: feature, advice: advice)
    }

    /// A field-level finding of QCOW2Header, in the reader's terms.
    func translated(_ error: QCOW2Error) -> ImageReadError {
        switch error {
        case let .badField(_, offset, field, found, expected):
            return corrupt(offset, "\(field) is \(found), expected \(expected)")
        case let .truncated(_, offset, _):
            return truncated(at: 0, needed: offset + 1)
        default:
            return corrupt(0, error.description)
        }
    }
}

/// Where a guest cluster's data is.
enum QCOW2Mapping {
    /// `length` bytes (a cluster, or less at the end of the disk) at a host offset.
    case data(host: UInt64, length: UInt64)
    /// Compressed data from `host` to `end` (its last sector, cut at the end of the file).
    case compressed(host: UInt64, end: UInt64)
}

/// The image's geometry and the checks of table entries against it, shared by `init` and the
/// streaming pass.
struct QCOW2Layout: Sendable {
    let failure: QCOW2Failure
    let version: UInt32
    let clusterBits: Int
    let virtualSize: UInt64

    var clusterSize: UInt64 { 1 << UInt64(clusterBits) }
    var l2Entries: UInt64 { clusterSize / 8 }
    var guestClusters: UInt64 { (virtualSize + clusterSize - 1) / clusterSize }
    var fileSize: UInt64 { failure.fileSize }

    /// The L2 slots of table `index` that map the disk (the last table may map past its end).
    func slots(ofL2Table index: Int) -> Range<Int> {
        let first = UInt64(index) * l2Entries
        guard first < guestClusters else { return 0..<0 }
        return 0..<Int(min(l2Entries, guestClusters - first))
    }

    func checkL2Table(_ entry: UInt64, index: Int, entryAt: UInt64) throws {
        let offset = entry & QCOW2Entry.offsetMask
        guard offset != 0 else { return }
        guard offset % clusterSize == 0 else {
            throw failure.corrupt(entryAt, "L1 entry \(index) points to an L2 table at byte \(offset), not a multiple of the cluster size \(clusterSize)")
        }
        guard offset + clusterSize <= fileSize else {
            throw failure.corrupt(entryAt, "L1 entry \(index) points to an L2 table at bytes \(offset)..<\(offset + clusterSize), beyond the end of the file (\(fileSize) bytes)")
        }
    }

    func readL2Table(into table: inout [UInt8], from file: RawFile, at offset: UInt64) throws {
        let got = try table.withUnsafeMutableBytes { try file.read(into: $0, at: offset) }
        guard got == table.count else { throw failure.truncated(at: offset, needed: UInt64(table.count)) }
    }

    /// Checks one L2 entry and says where its cluster's data is; nil for clusters that read as
    /// zeros. Copied flags are ignored; reserved bits too, as qemu does when reading.
    func map(_ entry: UInt64, guestCluster: UInt64, entryAt: UInt64) throws -> QCOW2Mapping? {
        let guest = guestCluster * clusterSize
        switch QCOW2Entry.cluster(of: entry, clusterBits: clusterBits) {
        case .unallocated:
            return nil
        case let .zero(host):
            guard version >= 3 else {
                throw failure.corrupt(entryAt, "the L2 entry of guest byte \(guest) has the zero flag (bit 0), which version 2 images do not have")
            }
            try checkAligned(host, guest: guest, entryAt: entryAt)
            return nil
        case let .data(host):
            try checkAligned(host, guest: guest, entryAt: entryAt)
            let length = min(clusterSize, virtualSize - guest)
            guard host + length <= fileSize else {
                throw failure.corrupt(entryAt, "the L2 entry of guest byte \(guest) points to host bytes \(host)..<\(host + length), beyond the end of the file (\(fileSize) bytes)")
            }
            return .data(host: host, length: length)
        case let .compressed(host, sectors):
            // qemu reads whole sectors and sees zeros past the end of the file, so only the last
            // sector's first byte, and the data's first byte, must be in the file.
            let end = ((host >> 9) + sectors) << 9
            guard host < fileSize, end - 512 < fileSize else {
                throw failure.corrupt(entryAt, "the compressed L2 entry of guest byte \(guest) points to host bytes \(host)..<\(end), beyond the end of the file (\(fileSize) bytes)")
            }
            return .compressed(host: host, end: min(end, fileSize))
        }
    }

    private func checkAligned(_ host: UInt64, guest: UInt64, entryAt: UInt64) throws {
        guard host % clusterSize == 0 else {
            throw failure.corrupt(entryAt, "the L2 entry of guest byte \(guest) points to host byte \(host), not a multiple of the cluster size \(clusterSize)")
        }
    }
}

/// Turns the walk's clusters into pieces, in guest order: host-contiguous data clusters are
/// coalesced into one read of up to `DiskImageReaders.maxPieceSize`; compressed clusters are
/// gathered with the data runs around them into a batch, whose compressed data is read in a few
/// large reads, inflated in parallel into one slot per cluster, and handed out in order.
private final class PieceStreamer {
    let file: RawFile
    let layout: QCOW2Layout
    private let decompressor: Decompressor
    private let clusterSize: Int
    /// Compressed clusters per batch.
    private let slots: Int
    private let runBuffer: UnsafeMutableRawBufferPointer
    /// Compressed data of the batch, as read: at most two clusters per compressed cluster.
    private let input: UnsafeMutableRawBufferPointer
    /// Inflated clusters of the batch, one slot each.
    private let output: UnsafeMutableRawBufferPointer

    private struct Run { var guest: UInt64; var host: UInt64; var length: UInt64 }
    private struct Unit { var guestCluster: UInt64; var host: UInt64; var end: UInt64; var entryAt: UInt64; var inputStart = 0 }
    private enum Item { case run(Run), unit(Int) }

    private var run: Run?
    private var items: [Item] = []
    private var units: [Unit] = []
    private var batchGuestBytes = 0

    init(file: RawFile, layout: QCOW2Layout, decompressor: Decompressor) {
        self.file = file
        self.layout = layout
        self.decompressor = decompressor
        clusterSize = Int(layout.clusterSize)
        slots = max(1, QCOW2Reader.batchBytes / clusterSize)
        runBuffer = .allocate(byteCount: DiskImageReaders.maxPieceSize, alignment: 4096)
        input = .allocate(byteCount: slots * 2 * clusterSize, alignment: 4096)
        output = .allocate(byteCount: slots * clusterSize, alignment: 4096)
    }

    deinit {
        runBuffer.deallocate()
        input.deallocate()
        output.deallocate()
    }

    typealias Body = (UInt64, UnsafeRawBufferPointer) throws -> Void

    func addData(guest: UInt64, host: UInt64, length: UInt64, _ body: Body) throws {
        if var current = run, current.guest + current.length == guest, current.host + current.length == host,
           current.length + length <= UInt64(DiskImageReaders.maxPieceSize) {
            current.length += length
            run = current
            return
        }
        try closeRun(body)
        run = Run(guest: guest, host: host, length: length)
    }

    func addCompressed(guestCluster: UInt64, host: UInt64, end: UInt64, entryAt: UInt64, _ body: Body) throws {
        try closeRun(body)
        if units.count == slots { try processBatch(body) }
        units.append(Unit(guestCluster: guestCluster, host: host, end: end, entryAt: entryAt))
        items.append(.unit(units.count - 1))
        batchGuestBytes += clusterSize
    }

    func finish(_ body: Body) throws {
        try closeRun(body)
        try processBatch(body)
    }

    private func closeRun(_ body: Body) throws {
        guard let current = run else { return }
        run = nil
        items.append(.run(current))
        batchGuestBytes += Int(current.length)
        if batchGuestBytes >= QCOW2Reader.batchBytes { try processBatch(body) }
    }

    private func processBatch(_ body: Body) throws {
        defer {
            items.removeAll(keepingCapacity: true)
            units.removeAll(keepingCapacity: true)
            batchGuestBytes = 0
        }
        try inflateUnits()
        var index = 0
        while index < items.count {
            switch items[index] {
            case let .run(current):
                let buffer = UnsafeMutableRawBufferPointer(rebasing: runBuffer[0..<Int(current.length)])
                try readFully(buffer, at: current.host)
                try body(current.guest, UnsafeRawBufferPointer(buffer))
                index += 1
            case let .unit(first):
                // Guest-contiguous compressed clusters sit in consecutive slots: one piece.
                var last = first
                while index + 1 < items.count, case let .unit(next) = items[index + 1],
                      units[next].guestCluster == units[last].guestCluster + 1 {
                    last = next
                    index += 1
                }
                let guest = units[first].guestCluster * UInt64(clusterSize)
                let guestEnd = min((units[last].guestCluster + 1) * UInt64(clusterSize), layout.virtualSize)
                let start = first * clusterSize
                try body(guest, UnsafeRawBufferPointer(rebasing: output[start..<(start + Int(guestEnd - guest))]))
                index += 1
            }
        }
    }

    /// Reads the batch's compressed data, merging units that overlap or touch on the host (qemu
    /// and Rehost pack them back to back, sharing sectors), and inflates every unit in parallel.
    private func inflateUnits() throws {
        guard !units.isEmpty else { return }
        var span: (inputStart: Int, host: UInt64, end: UInt64)?
        var filled = 0
        for index in units.indices {
            let unit = units[index]
            if var current = span, unit.host >= current.host, unit.host <= current.end {
                if unit.end > current.end {
                    let more = UnsafeMutableRawBufferPointer(rebasing: input[filled..<(filled + Int(unit.end - current.end))])
                    try readFully(more, at: current.end)
                    filled += more.count
                    current.end = unit.end
                    span = current
                }
                units[index].inputStart = current.inputStart + Int(unit.host - current.host)
            } else {
                let data = UnsafeMutableRawBufferPointer(rebasing: input[filled..<(filled + Int(unit.end - unit.host))])
                try readFully(data, at: unit.host)
                span = (filled, unit.host, unit.end)
                units[index].inputStart = filled
                filled += data.count
            }
        }

        let size = clusterSize
        let decompressor = decompressor
        let inputBase = UnsafeRawPointer(input.baseAddress!)
        let outputBase = output.baseAddress!
        let placements = units.map { (start: $0.inputStart, count: Int($0.end - $0.host)) }
        let produced = parallelMap(placements.count) { index -> Int? in
            decompressor.decompress(UnsafeRawBufferPointer(start: inputBase + placements[index].start, count: placements[index].count),
                                    into: UnsafeMutableRawBufferPointer(start: outputBase + index * size, count: size))
        }
        for (index, count) in produced.enumerated() where count != size {
            let unit = units[index]
            let method = decompressor == .zstd ? "zstd" : "deflate"
            let outcome = count.map { "gives \($0) bytes" } ?? "is not valid \(method) data or inflates past the cluster"
            throw layout.failure.corrupt(unit.host, "the compressed cluster of guest byte \(unit.guestCluster * UInt64(size)) (L2 entry at byte \(unit.entryAt)) \(outcome); expected \(size) bytes")
        }
    }

    /// The checks in `init` put every read inside the file; a short read means it shrank since.
    private func readFully(_ buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws {
        let got = try file.read(into: buffer, at: offset)
        guard got == buffer.count else { throw layout.failure.truncated(at: offset, needed: UInt64(buffer.count)) }
    }
}
