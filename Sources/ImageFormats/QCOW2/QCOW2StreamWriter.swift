import ImageCore

/// A qcow2 v3 written strictly front to back, so it can go to a network stream as it is made.
///
/// `QCOW2Writer` puts its tables after the data, which only a file can take. This one is told
/// beforehand which clusters may hold data (a raw disk's allocated ranges, from SEEK_DATA,
/// which costs no read), so every table is known before the first data byte:
///
///     cluster 0          header (v3, no extensions)
///     refcount table     one entry per refcount block
///     refcount blocks    16-bit refcounts, 1 for every cluster of the file
///     L1 table           an entry for every 512 MiB of the disk; COPIED flags set
///     L2 tables          one per 512 MiB span that has data
///     data clusters      in disk order
///
/// The file's length is known from the start (`fileSize`). A planned cluster the stream never
/// gets data for (it was all zeros) is written as zeros: the file stays what the plan said.
public final class QCOW2StreamWriter: DiskImageWriter {
    public let format = ImageFormat.qcow2
    public let virtualSize: UInt64
    /// The exact length of the file this writer makes.
    public let fileSize: UInt64

    static let clusterBits: UInt32 = 16
    static let clusterSize = 1 << 16
    static let l2Entries = clusterSize / 8
    static let refcountsPerBlock = clusterSize / 2

    private let sink: OutputSink
    /// Guest cluster indices that get a data cluster, increasing.
    private let planned: [UInt64]
    private let header: [UInt8]
    private let tables: [[UInt8]]
    private var nextPlanned = 0
    private var position: UInt64 = 0
    private var cluster: [UInt8]
    private var clusterIndex: UInt64?
    private var highest: UInt64 = 0

    /// `dataRanges`: the only byte ranges of the disk that may hold data; writes outside them fail.
    public init(sink: OutputSink, virtualSize: UInt64, dataRanges: [Range<UInt64>]) throws {
        self.sink = sink
        self.virtualSize = virtualSize
        let size = UInt64(Self.clusterSize)
        var clusters: [UInt64] = []
        for range in dataRanges where range.lowerBound < min(range.upperBound, virtualSize) {
            let first = range.lowerBound / size, last = (min(range.upperBound, virtualSize) - 1) / size
            // Ranges may share a cluster (4 KiB extents with holes between): each cluster once.
            let start = max(first, clusters.last.map { $0 + 1 } ?? 0)
            guard start <= last else { continue }
            for index in start...last { clusters.append(index) }
        }
        planned = clusters
        let spanBytes = size * UInt64(Self.l2Entries)
        let l1Entries = Int((virtualSize + spanBytes - 1) / spanBytes)
        let l1Clusters = max(1, (l1Entries * 8 + Self.clusterSize - 1) / Self.clusterSize)
        var spans: [UInt64] = []
        for index in clusters where spans.last != index / UInt64(Self.l2Entries) { spans.append(index / UInt64(Self.l2Entries)) }
        // The refcount blocks must count every cluster, themselves and their table included.
        let fixed = 1 + l1Clusters + spans.count + clusters.count
        var blocks = 1, tableClusters = 1
        while true {
            let total = fixed + blocks + tableClusters
            let neededBlocks = (total + Self.refcountsPerBlock - 1) / Self.refcountsPerBlock
            let neededTable = max(1, (neededBlocks * 8 + Self.clusterSize - 1) / Self.clusterSize)
            if neededBlocks == blocks && neededTable == tableClusters { break }
            blocks = neededBlocks
            tableClusters = neededTable
        }
        let total = fixed + blocks + tableClusters
        fileSize = UInt64(total) * size
        let tableAt = size, blocksAt = tableAt + UInt64(tableClusters) * size
        let l1At = blocksAt + UInt64(blocks) * size
        let l2At = l1At + UInt64(l1Clusters) * size
        let dataAt = l2At + UInt64(spans.count) * size

        let encoded = QCOW2Header(version: 3, clusterBits: Self.clusterBits, size: virtualSize, l1Size: UInt32(l1Entries),
                                  l1TableOffset: l1At, refcountTableOffset: tableAt, refcountTableClusters: UInt32(tableClusters),
                                  compressionType: .zlib).encoded()
        header = encoded + [UInt8](repeating: 0, count: Self.clusterSize - encoded.count)
        let copied: UInt64 = 1 << 63
        var refcountTable = [UInt8](repeating: 0, count: tableClusters * Self.clusterSize)
        for block in 0..<blocks { refcountTable.storeBE(blocksAt + UInt64(block) * size, at: block * 8) }
        var refcounts = [UInt8](repeating: 0, count: blocks * Self.clusterSize)
        for index in 0..<total { refcounts.storeBE(UInt16(1), at: index * 2) }
        var l1 = [UInt8](repeating: 0, count: l1Clusters * Self.clusterSize)
        for (number, span) in spans.enumerated() { l1.storeBE((l2At + UInt64(number) * size) | copied, at: Int(span) * 8) }
        var l2 = [UInt8](repeating: 0, count: spans.count * Self.clusterSize)
        var spanNumber = -1, currentSpan: UInt64?
        for (number, index) in clusters.enumerated() {
            let span = index / UInt64(Self.l2Entries)
            if span != currentSpan {
                spanNumber += 1
                currentSpan = span
            }
            let entry = spanNumber * Self.clusterSize + Int(index % UInt64(Self.l2Entries)) * 8
            l2.storeBE((dataAt + UInt64(number) * size) | copied, at: entry)
        }
        tables = [refcountTable, refcounts, l1, l2]
        cluster = [UInt8](repeating: 0, count: Self.clusterSize)
    }

    public func write(_ data: UnsafeRawBufferPointer, at offset: UInt64) throws {
        guard offset >= highest else { throw WriterError.outOfOrder(format: format, offset: offset, expectedAtLeast: highest) }
        guard offset + UInt64(data.count) <= virtualSize else {
            throw WriterError.beyondEnd(format: format, offset: offset, virtualSize: virtualSize)
        }
        if position == 0 { try writeTables() }
        var done = 0
        while done < data.count {
            let at = offset + UInt64(done)
            let index = at / UInt64(Self.clusterSize)
            if index != clusterIndex {
                try emitCluster()
                try emitPlanned(before: index)
                guard nextPlanned < planned.count, planned[nextPlanned] == index else {
                    throw WriterError.unsupported(format: format, what: "internal: data at byte \(at) lies outside the planned allocation")
                }
                clusterIndex = index
            }
            let within = Int(at % UInt64(Self.clusterSize))
            let count = min(Self.clusterSize - within, data.count - done)
            cluster.withUnsafeMutableBytes { ($0.baseAddress! + within).copyMemory(from: data.baseAddress! + done, byteCount: count) }
            done += count
        }
        highest = offset + UInt64(data.count)
    }

    private func writeTables() throws {
        try append(header)
        for table in tables { try append(table) }
    }

    private func append(_ bytes: [UInt8]) throws {
        try sink.write(bytes, at: position)
        position += UInt64(bytes.count)
    }

    /// The cluster being filled, if any, as the next planned data cluster.
    private func emitCluster() throws {
        guard clusterIndex != nil else { return }
        try append(cluster)
        cluster.withUnsafeMutableBytes { $0.initializeMemory(as: UInt8.self, repeating: 0) }
        clusterIndex = nil
        nextPlanned += 1
    }

    /// Zeros for the planned clusters before guest cluster `index` that got no data.
    private func emitPlanned(before index: UInt64) throws {
        while nextPlanned < planned.count, planned[nextPlanned] < index {
            try append(cluster)
            nextPlanned += 1
        }
    }

    public func finish() throws -> WriterSummary {
        if position == 0 { try writeTables() }
        try emitCluster()
        try emitPlanned(before: UInt64.max)
        guard position == fileSize else {
            throw WriterError.unsupported(format: format, what: "internal: wrote \(position) bytes of a planned \(fileSize)")
        }
        return WriterSummary(format: .qcow2, variant: "qcow2 v3 (compat 1.1), 64 KiB clusters, streamed (tables first)",
                             virtualSize: virtualSize, fileSize: fileSize, allocatedUnits: UInt64(planned.count),
                             unitSize: UInt64(Self.clusterSize))
    }
}
