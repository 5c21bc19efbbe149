import Compression
import ImageCore

/// A streaming qcow2 writer (version 3 = compat 1.1 by default, or 2 = compat 0.10), with optional
/// deflate or zstd compression. Never a backing file, snapshots, encryption or extensions.
///
/// One pass, front to back, tables at the end and the header written last:
///
/// ```
///  cluster 0        header (written by finish; the rest of the cluster is a hole = zeros,
///                   which also ends the header extension list)
///  clusters 1...    data clusters in increasing guest order; compressed data packed tightly,
///                   byte after byte, several compressed clusters sharing host clusters; an
///                   uncompressed cluster starts on the next cluster boundary
///                   interleaved: each L2 table right after the last data it maps (a table
///                   maps cluster_size / 8 guest clusters, so it is complete once the guest
///                   offset has passed them), and each refcount block as soon as every host
///                   cluster it counts has been allocated
///  end              L1 table | the last refcount blocks | refcount table (finish)
/// ```
///
/// The refcount table is the last structure of the file: 7-Zip takes the end of a qcow2 image to
/// be the furthest end of its header, refcount table, L1 table, L2 tables and data clusters (it
/// does not read refcount blocks), and warns of "data after the end of the archive" past it.
/// qemu-img's own images start with header | refcount table | refcount block | L1 and end with
/// data or an L2 table, so 7-Zip sees them whole; with the table last, so does it ours.
///
/// Why tables at the end rather than precomputed up front (as e2image does): until the last byte
/// we do not know how many host clusters the image will take (compression, zero clusters), so
/// reserving refcount blocks up front means reserving them for the worst case, which leaves a
/// hole of up to 1/256 of the virtual size inside the file. Here the host file is allocated
/// strictly sequentially, so every refcount is known exactly once the allocation has moved past
/// its cluster, and the writer keeps in memory only the current L2 table, the L1 table, the
/// offsets of the refcount blocks written so far, and the one or two refcount blocks still open.
///
/// Refcounts follow what `qemu-img check` recounts: 1 for the header, each table cluster, each
/// uncompressed data cluster; for compressed data, one per compressed cluster for every host
/// cluster touched by the 512-byte sectors its L2 entry names.
///
/// Limits (those of qemu 7.2, which refuses to open images beyond them):
/// - L1 table at most 32 MiB (`QCOW_MAX_L1_SIZE`): the virtual size is at most
///   4 Mi entries * (cluster_size / 8) * cluster_size, e.g. 128 GiB with 512-byte clusters,
///   2 PiB with 64 KiB ones.
/// - refcount table at most 8 MiB (`QCOW_MAX_REFTABLE_SIZE`): 1 Mi refcount blocks of
///   cluster_size / 2 clusters each, i.e. an image file of at most 2^19 * cluster_size^2 bytes.
/// - refcounts are 16 bits (refcount_order 4); a host cluster stops taking compressed data
///   before 65535 compressed clusters share it (only possible with tiny zstd frames).
public final class QCOW2Writer: DiskImageWriter {
    public let format = ImageFormat.qcow2
    public let virtualSize: UInt64

    private let sink: OutputSink
    private let version: Int
    private let clusterBits: Int
    private let clusterSize: UInt64
    private let compressor: Compressor?
    private let compressionType: QCOW2Header.CompressionType
    private let compressionLevel: Int32
    private let compressionName: String
    /// Guest clusters mapped by one L2 table.
    private let l2Entries: UInt64
    /// Host clusters counted by one refcount block (16-bit refcounts).
    private let refcountsPerBlock: UInt64
    private let guestClusters: UInt64
    /// The streamer never passes an all-zero aligned block of its zero granularity, so a
    /// cluster at least that large that receives data holds a non-zero byte: only smaller
    /// clusters need checking (the check would be a second pass over every byte).
    private let checksZeroClusters: Bool

    // Guest side.
    private var nextGuestOffset: UInt64 = 0
    /// A cluster assembled from several writes (clusters larger than a write piece, or pieces
    /// that start or end inside a cluster), zero-filled.
    private var assembly: [UInt8]
    private var assemblyCluster: UInt64?
    private var dataClusters: UInt64 = 0

    // Tables.
    private var l1: [UInt64]
    private var l2: [UInt64]
    private var l2Index: UInt64?

    // Host side: bytes [pendingStart, hostEnd) are buffered in `pending`; everything before
    // pendingStart is in the file. hostEnd is a byte offset (compressed data is byte-packed).
    private var hostEnd: UInt64
    private var pendingStart: UInt64
    private var pending: [UInt8] = []
    private let pendingFlushSize = 8 << 20

    // Refcounts of host clusters refcountBase ..< refcountBase + refcounts.count; refcountBase is
    // the first cluster of the first refcount block not yet written.
    private var refcountBase: UInt64 = 0
    private var refcounts: [UInt16] = []
    private var refcountBlockOffsets: [UInt64] = []

    // Compression batch: whole clusters, zero-padded, compressed in parallel, placed in order.
    private let batch: UnsafeMutableRawBufferPointer
    private let batchCapacity: Int
    private var batchClusters: [UInt64] = []

    private var finished = false

    /// Bytes of guest data compressed per parallel batch: enough to keep every core busy for a
    /// while, small enough to keep memory flat.
    static let batchBytes = 8 << 20
    /// Runs of uncompressed data at least this long are written without buffering.
    static let directWriteSize = 64 << 10
    /// qemu's `QCOW_MAX_L1_SIZE` and `QCOW_MAX_REFTABLE_SIZE`.
    static let maxL1Bytes: UInt64 = 32 << 20
    static let maxRefcountTableBytes: UInt64 = 8 << 20

    public init(sink: OutputSink, virtualSize: UInt64, options: WriterOptions) throws {
        guard options.qcow2Version == 2 || options.qcow2Version == 3 else {
            throw QCOW2Error.unsupportedVersion(options.qcow2Version)
        }
        let size = options.qcow2ClusterSize
        guard size >= 512, size <= 2 << 20, size & (size - 1) == 0 else { throw QCOW2Error.invalidClusterSize(size) }
        guard virtualSize % 512 == 0 else { throw QCOW2Error.sizeNotWholeSectors(path: sink.path, size: virtualSize) }
        switch options.qcow2Compression {
        case .none:
            compressor = nil
            compressionType = .zlib
            compressionName = "uncompressed"
        case .deflate:
            guard (1...9).contains(options.compressionLevel) else {
                throw QCOW2Error.invalidCompressionLevel(compression: "deflate", level: options.compressionLevel, allowed: 1...9)
            }
            // qemu inflates qcow2 clusters with a 4 KiB window.
            compressor = .zlibRawDeflate4K
            compressionType = .zlib
            compressionName = "deflate"
        case .zstd:
            guard options.qcow2Version == 3 else { throw QCOW2Error.zstdNeedsVersion3 }
            guard (1...19).contains(options.compressionLevel) else {
                throw QCOW2Error.invalidCompressionLevel(compression: "zstd", level: options.compressionLevel, allowed: 1...19)
            }
            compressor = .zstd
            compressionType = .zstd
            compressionName = "zstd"
        }
        self.sink = sink
        self.virtualSize = virtualSize
        version = options.qcow2Version
        compressionLevel = options.compressionLevel
        clusterBits = size.trailingZeroBitCount
        clusterSize = UInt64(size)
        l2Entries = clusterSize / 8
        refcountsPerBlock = clusterSize / 2
        guestClusters = (virtualSize + clusterSize - 1) / clusterSize
        checksZeroClusters = size < DiskStreamer.zeroGranularity
        let l1Count = (guestClusters + l2Entries - 1) / l2Entries
        guard l1Count * 8 <= Self.maxL1Bytes else {
            throw QCOW2Error.tableTooLarge(path: sink.path, what: "L1 table", bytes: l1Count * 8, limit: Self.maxL1Bytes,
                                           hint: "use a larger cluster size")
        }
        // The largest file this disk can need: every cluster with data, an L2 table per L1
        // entry, a cluster lost to alignment before each table, the tables at the end.
        let l1Clusters = (l1Count * 8 + clusterSize - 1) / clusterSize
        let worstClusters = 1 + guestClusters + 2 * l1Count + l1Clusters + 2
        let worstBlocks = (worstClusters + refcountsPerBlock - 1) / refcountsPerBlock
        let worstBlocksWithSelf = (worstClusters + 2 * worstBlocks + 2 + refcountsPerBlock - 1) / refcountsPerBlock
        guard worstBlocksWithSelf * 8 <= Self.maxRefcountTableBytes else {
            throw QCOW2Error.tableTooLarge(path: sink.path, what: "refcount table", bytes: worstBlocksWithSelf * 8,
                                           limit: Self.maxRefcountTableBytes, hint: "use a larger cluster size")
        }
        l1 = [UInt64](repeating: 0, count: Int(l1Count))
        l2 = [UInt64](repeating: 0, count: Int(l2Entries))
        assembly = [UInt8](repeating: 0, count: size)
        hostEnd = clusterSize
        pendingStart = clusterSize
        pending.reserveCapacity(pendingFlushSize + 2 * size)
        batchCapacity = compressor == nil ? 0 : max(1, Self.batchBytes / size)
        batch = .allocate(byteCount: max(1, batchCapacity * size), alignment: 64)
        batchClusters.reserveCapacity(batchCapacity)
        addReference(cluster: 0)  // the header
    }

    deinit { batch.deallocate() }

    // MARK: - Guest side

    public func write(_ data: UnsafeRawBufferPointer, at offset: UInt64) throws {
        guard !finished else {
            throw WriterError.unsupported(format: format, what: "internal: write at byte \(offset) after finish")
        }
        guard offset >= nextGuestOffset else {
            throw WriterError.outOfOrder(format: format, offset: offset, expectedAtLeast: nextGuestOffset)
        }
        let end = offset + UInt64(data.count)
        guard end <= virtualSize else { throw WriterError.beyondEnd(format: format, offset: offset, virtualSize: virtualSize) }
        guard !data.isEmpty, let base = data.baseAddress else { return }
        var position = offset
        while position < end {
            let cluster = position / clusterSize
            let clusterStart = cluster * clusterSize
            let clusterEnd = min(clusterStart + clusterSize, virtualSize)
            if let pendingCluster = assemblyCluster, pendingCluster != cluster { try emitAssembled() }
            if assemblyCluster == nil, position == clusterStart, end >= clusterEnd {
                // Whole clusters straight from the caller's buffer.
                let lastCluster = end == virtualSize ? guestClusters : end / clusterSize
                let runEnd = min(end, lastCluster * clusterSize)
                try emitWhole(first: cluster, count: lastCluster - cluster,
                              UnsafeRawBufferPointer(start: base + Int(position - offset), count: Int(runEnd - position)))
                position = runEnd
            } else {
                if assemblyCluster == nil {
                    assemblyCluster = cluster
                    assembly.withUnsafeMutableBytes { _ = $0.initializeMemory(as: UInt8.self, repeating: 0) }
                }
                let pieceEnd = min(end, clusterEnd)
                let source = UnsafeRawBufferPointer(start: base + Int(position - offset), count: Int(pieceEnd - position))
                let at = Int(position - clusterStart)
                assembly.withUnsafeMutableBytes { $0.baseAddress!.advanced(by: at).copyMemory(from: source.baseAddress!, byteCount: source.count) }
                position = pieceEnd
                if position == clusterEnd { try emitAssembled() }
            }
        }
        nextGuestOffset = end
    }

    private func emitAssembled() throws {
        guard let cluster = assemblyCluster else { return }
        assemblyCluster = nil
        let length = Int(min(clusterSize, virtualSize - cluster * clusterSize))
        try assembly.withUnsafeBytes { try emitWhole(first: cluster, count: 1, UnsafeRawBufferPointer(rebasing: $0[0..<length])) }
    }

    /// `count` consecutive guest clusters from `first`; `bytes` holds them all (the last may be
    /// short at the end of the disk).
    private func emitWhole(first: UInt64, count: UInt64, _ bytes: UnsafeRawBufferPointer) throws {
        let size = Int(clusterSize)
        if compressor != nil {
            for index in 0..<Int(count) {
                let start = index * size
                let piece = UnsafeRawBufferPointer(rebasing: bytes[start..<min(bytes.count, start + size)])
                let slot = batch.baseAddress! + batchClusters.count * size
                slot.copyMemory(from: piece.baseAddress!, byteCount: piece.count)
                if piece.count < size { (slot + piece.count).initializeMemory(as: UInt8.self, repeating: 0, count: size - piece.count) }
                batchClusters.append(first + UInt64(index))
                if batchClusters.count == batchCapacity { try compressBatch() }
            }
            return
        }
        // Uncompressed: coalesce runs of non-zero clusters within one L2 table into one write.
        var runStart: Int? = nil
        for index in 0...Int(count) {
            let cluster = first + UInt64(index)
            var isData = false
            if index < Int(count) {
                let start = index * size
                isData = !checksZeroClusters
                    || !ZeroDetection.isAllZero(UnsafeRawBufferPointer(rebasing: bytes[start..<min(bytes.count, start + size)]))
            }
            if let start = runStart, !isData || cluster % l2Entries == 0 {
                let from = start * size, to = min(bytes.count, index * size)
                try placeUncompressed(first: first + UInt64(start), count: UInt64(index - start),
                                      UnsafeRawBufferPointer(rebasing: bytes[from..<to]))
                runStart = nil
            }
            if isData && runStart == nil { runStart = index }
        }
    }

    private enum Outcome { case zero, raw, compressed([UInt8]) }

    private func compressBatch() throws {
        guard let compressor else { return }
        let count = batchClusters.count
        let size = Int(clusterSize)
        let level = compressionLevel
        let batchStart = UnsafeRawPointer(batch.baseAddress!)
        let outcomes = parallelMap(count) { index -> Outcome in
            let slot = UnsafeRawBufferPointer(start: batchStart + index * size, count: size)
            if ZeroDetection.isAllZero(slot) { return .zero }
            if Incompressibility.check(slot) { return .raw }
            // Stored as is unless compression saves at least a byte (qemu's rule).
            if let packed = compressor.compress(slot, level: level, limit: size) { return .compressed(packed) }
            return .raw
        }
        for (index, outcome) in outcomes.enumerated() {
            let cluster = batchClusters[index]
            switch outcome {
            case .zero:
                continue
            case .raw:
                let length = Int(min(clusterSize, virtualSize - cluster * clusterSize))
                try placeUncompressed(first: cluster, count: 1, UnsafeRawBufferPointer(start: batchStart + index * size, count: length))
            case let .compressed(packed):
                try placeCompressed(cluster: cluster, packed)
            }
        }
        batchClusters.removeAll(keepingCapacity: true)
    }

    // MARK: - Host side

    /// Writes `count` guest clusters (all in one L2 table) to consecutive new host clusters.
    private func placeUncompressed(first: UInt64, count: UInt64, _ bytes: UnsafeRawBufferPointer) throws {
        try selectL2(for: first)
        alignHostEnd()
        // Small runs join the buffer; large ones go straight from the caller's memory to the
        // file, saving a copy.
        if bytes.count < Self.directWriteSize {
            pending.append(contentsOf: bytes)
            let padding = Int(count * clusterSize) - bytes.count
            if padding > 0 { pending.append(contentsOf: repeatElement(0, count: padding)) }
        } else {
            try flushPending()
            try sink.write(bytes, at: hostEnd)
        }
        for index in 0..<count {
            let host = hostEnd + index * clusterSize
            l2[Int((first + index) % l2Entries)] = host | QCOW2Entry.copied
            addReference(cluster: host / clusterSize)
        }
        hostEnd += count * clusterSize
        if pending.isEmpty { pendingStart = hostEnd }
        dataClusters += count
        try afterAllocation()
    }

    /// Appends one compressed cluster right after the previous bytes.
    private func placeCompressed(cluster: UInt64, _ packed: [UInt8]) throws {
        try selectL2(for: cluster)
        // A 16-bit refcount caps how many compressed clusters may share a host cluster.
        if hostEnd % clusterSize != 0, refcount(of: hostEnd / clusterSize) >= UInt16.max - 1 { alignHostEnd() }
        let offset = hostEnd
        l2[Int(cluster % l2Entries)] = QCOW2Entry.compressedEntry(offset: offset, length: packed.count, clusterBits: clusterBits)
        let touchedEnd = (offset + UInt64(packed.count) + 511) & ~511
        for host in (offset / clusterSize)...((touchedEnd - 1) / clusterSize) { addReference(cluster: host) }
        pending.append(contentsOf: packed)
        hostEnd += UInt64(packed.count)
        dataClusters += 1
        try afterAllocation()
    }

    /// Makes the L2 table mapping `cluster` the current one, writing out the previous table.
    private func selectL2(for cluster: UInt64) throws {
        let index = cluster / l2Entries
        guard index != l2Index else { return }
        try writeCurrentL2()
        l2Index = index
    }

    private func writeCurrentL2() throws {
        guard let index = l2Index else { return }
        l2Index = nil
        alignHostEnd()
        let offset = hostEnd
        var table = [UInt8](repeating: 0, count: Int(clusterSize))
        for (slot, entry) in l2.enumerated() where entry != 0 { table.storeBE(entry, at: slot * 8) }
        pending.append(contentsOf: table)
        hostEnd += clusterSize
        addReference(cluster: offset / clusterSize)
        l1[Int(index)] = offset | QCOW2Entry.copied
        for slot in l2.indices { l2[slot] = 0 }
        try afterAllocation()
    }

    /// Moves the allocation point to the next cluster boundary; the skipped bytes belong to a
    /// cluster already allocated (and counted), and read as zeros.
    private func alignHostEnd() {
        let aligned = (hostEnd + clusterSize - 1) / clusterSize * clusterSize
        guard aligned != hostEnd else { return }
        if pending.isEmpty {
            pendingStart = aligned
        } else {
            pending.append(contentsOf: repeatElement(0, count: Int(aligned - hostEnd)))
        }
        hostEnd = aligned
    }

    private func flushPending() throws {
        if !pending.isEmpty {
            try sink.write(pending, at: pendingStart)
            pending.removeAll(keepingCapacity: true)
        }
        pendingStart = hostEnd
    }

    /// Writes every refcount block whose clusters are all allocated, and flushes a large buffer.
    private func afterAllocation() throws {
        // Clusters below the one holding hostEnd can never be referenced again.
        while refcountBase + refcountsPerBlock <= hostEnd / clusterSize {
            let block = encodeRefcountBlock(from: 0)
            refcounts.removeFirst(Int(refcountsPerBlock))
            refcountBase += refcountsPerBlock
            alignHostEnd()
            refcountBlockOffsets.append(hostEnd)
            addReference(cluster: hostEnd / clusterSize)
            pending.append(contentsOf: block)
            hostEnd += clusterSize
        }
        if pending.count >= pendingFlushSize { try flushPending() }
    }

    private func addReference(cluster: UInt64) {
        precondition(cluster >= refcountBase, "qcow2 writer: host cluster \(cluster) referenced after its refcount block was written")
        let index = Int(cluster - refcountBase)
        if index >= refcounts.count { refcounts.append(contentsOf: repeatElement(0, count: index - refcounts.count + 1)) }
        refcounts[index] += 1
    }

    private func refcount(of cluster: UInt64) -> UInt16 {
        let index = Int(cluster - refcountBase)
        return index < refcounts.count ? refcounts[index] : 0
    }

    /// The refcount block for clusters refcountBase + start ..< + refcountsPerBlock.
    private func encodeRefcountBlock(from start: Int) -> [UInt8] {
        var block = [UInt8](repeating: 0, count: Int(clusterSize))
        let end = min(refcounts.count, start + Int(refcountsPerBlock))
        if start < end {
            for index in start..<end { block.storeBE(refcounts[index], at: (index - start) * 2) }
        }
        return block
    }

    // MARK: - Finish

    public func finish() throws -> WriterSummary {
        guard !finished else { throw WriterError.unsupported(format: format, what: "internal: finish called twice") }
        try emitAssembled()
        try compressBatch()
        try writeCurrentL2()
        alignHostEnd()
        try flushPending()

        // Tail: L1 table, the refcount blocks still open, which must also count the tail itself,
        // then the refcount table. The block count is the least fixed point of
        // blocks = ceil((tailStart + l1 + reftable(blocks) + open blocks) / perBlock).
        let tailStart = hostEnd / clusterSize
        let l1Clusters = (UInt64(l1.count) * 8 + clusterSize - 1) / clusterSize
        let firstOpenBlock = refcountBase / refcountsPerBlock
        var blocks = firstOpenBlock + 1
        var tableClusters: UInt64 = 0
        var total: UInt64 = 0
        while true {
            tableClusters = (blocks * 8 + clusterSize - 1) / clusterSize
            total = tailStart + l1Clusters + tableClusters + (blocks - firstOpenBlock)
            let needed = (total + refcountsPerBlock - 1) / refcountsPerBlock
            if needed <= blocks { break }
            blocks = needed
        }
        guard tableClusters * clusterSize <= Self.maxRefcountTableBytes else {
            throw QCOW2Error.tableTooLarge(path: sink.path, what: "refcount table", bytes: tableClusters * clusterSize,
                                           limit: Self.maxRefcountTableBytes, hint: "use a larger cluster size")
        }
        for cluster in tailStart..<total { addReference(cluster: cluster) }

        // The refcount table goes last: readers that take the end of the image to be the end of
        // the last structure its header, L1 and L2 tables reach (7-Zip's qcow handler, which does
        // not follow the refcount table to its blocks) then see the whole file, as with qemu-img's
        // images, whose refcount blocks all lie before data clusters.
        let l1Offset = tailStart * clusterSize
        let firstBlockOffset = l1Offset + l1Clusters * clusterSize
        let tableOffset = firstBlockOffset + (blocks - firstOpenBlock) * clusterSize
        var l1Bytes = [UInt8](repeating: 0, count: l1.count * 8)
        for (index, entry) in l1.enumerated() where entry != 0 { l1Bytes.storeBE(entry, at: index * 8) }
        try sink.write(l1Bytes, at: l1Offset)

        var table = [UInt8](repeating: 0, count: Int(blocks * 8))
        for (index, offset) in refcountBlockOffsets.enumerated() { table.storeBE(offset, at: index * 8) }
        var tail: [UInt8] = []
        tail.reserveCapacity(Int((blocks - firstOpenBlock) * clusterSize))
        for block in firstOpenBlock..<blocks {
            table.storeBE(firstBlockOffset + (block - firstOpenBlock) * clusterSize, at: Int(block) * 8)
            tail += encodeRefcountBlock(from: Int((block - firstOpenBlock) * refcountsPerBlock))
        }
        try sink.write(table, at: tableOffset)
        try sink.write(tail, at: firstBlockOffset)

        let header = QCOW2Header(version: UInt32(version), clusterBits: UInt32(clusterBits), size: virtualSize,
                                 l1Size: UInt32(l1.count), l1TableOffset: l1Offset, refcountTableOffset: tableOffset,
                                 refcountTableClusters: UInt32(tableClusters), compressionType: compressionType)
        try sink.write(header.encoded(), at: 0)
        try sink.extend(to: total * clusterSize)
        finished = true

        let compat = version == 3 ? "v3 (compat 1.1)" : "v2 (compat 0.10)"
        let sizeText = clusterSize >= 1 << 20 ? "\(clusterSize >> 20) MiB" : clusterSize >= 1024 ? "\(clusterSize >> 10) KiB" : "\(clusterSize) B"
        return WriterSummary(format: format, variant: "qcow2 \(compat), \(sizeText) clusters, \(compressionName)",
                             virtualSize: virtualSize, fileSize: total * clusterSize,
                             allocatedUnits: dataClusters, unitSize: clusterSize)
    }
}
