import ImageCore

/// Reads back the metadata of a qcow2 image this project wrote: header, L1 and L2 tables,
/// refcount table and blocks, and recounts references the way `qemu-img check` does. Meant for
/// tests and diagnostics of small-to-medium images: it holds one refcount per host cluster.
public struct QCOW2Inspector {
    public enum Mapping: Equatable, Sendable {
        /// An uncompressed cluster at a host offset; `copied` is the L2 entry's bit 63.
        case standard(hostOffset: UInt64, copied: Bool)
        /// Compressed data at a host byte offset, spanning `sectors` 512-byte sectors.
        case compressed(hostOffset: UInt64, sectors: UInt64, copied: Bool)
    }

    public let path: String
    public let fileSize: UInt64
    public let header: QCOW2Header
    public let l1: [UInt64]
    /// Every mapped guest cluster, in guest order.
    public let mappings: [(guestCluster: UInt64, mapping: Mapping)]
    /// Host offsets of the refcount blocks, by refcount table index (0 = none).
    public let refcountBlockOffsets: [UInt64]
    /// The refcount the image records for each host cluster of the file.
    public let storedRefcounts: [UInt16]

    public init(path: String) throws {
        self.path = path
        let file = try RawFile(path: path, mode: .readOnly)
        fileSize = try file.size
        let header = try QCOW2Header.decode(try file.read(count: Int(min(fileSize, 4096)), at: 0), path: path)
        self.header = header
        let clusterSize = header.clusterSize
        let clusterBits = Int(header.clusterBits)
        let fileSize = self.fileSize

        func checkTarget(_ target: UInt64, length: UInt64, at offset: UInt64, what: String, aligned: Bool = true) throws {
            if aligned && target % clusterSize != 0 {
                throw QCOW2Error.misaligned(path: path, offset: offset, what: what, target: target, clusterSize: clusterSize)
            }
            guard target + length <= fileSize else {
                throw QCOW2Error.outsideFile(path: path, offset: offset, what: what, target: target, fileSize: fileSize)
            }
        }

        try checkTarget(header.l1TableOffset, length: UInt64(header.l1Size) * 8, at: 40, what: "L1 table offset")
        let l1Bytes = try file.read(count: Int(header.l1Size) * 8, at: header.l1TableOffset)
        l1 = (0..<Int(header.l1Size)).map { l1Bytes.loadBE(UInt64.self, at: $0 * 8) }

        let l2Entries = clusterSize / 8
        var mappings: [(UInt64, Mapping)] = []
        for (index, entry) in l1.enumerated() where entry != 0 {
            let entryOffset = header.l1TableOffset + UInt64(index) * 8
            let l2Offset = entry & QCOW2Entry.offsetMask
            try checkTarget(l2Offset, length: clusterSize, at: entryOffset, what: "L1 entry \(index)")
            let table = try file.read(count: Int(clusterSize), at: l2Offset)
            for slot in 0..<Int(l2Entries) {
                let l2Entry = table.loadBE(UInt64.self, at: slot * 8)
                guard l2Entry != 0 else { continue }
                let guest = UInt64(index) * l2Entries + UInt64(slot)
                let at = l2Offset + UInt64(slot) * 8
                let copied = l2Entry & QCOW2Entry.copied != 0
                if l2Entry & QCOW2Entry.compressed != 0 {
                    let (host, sectors) = QCOW2Entry.decodeCompressed(l2Entry, clusterBits: clusterBits)
                    // The last sector may run past the end of the data, but never past the file's
                    // last cluster, which this writer always completes.
                    try checkTarget(host, length: sectors * 512 - (host & 511), at: at,
                                    what: "compressed L2 entry of guest cluster \(guest)", aligned: false)
                    mappings.append((guest, .compressed(hostOffset: host, sectors: sectors, copied: copied)))
                } else {
                    let host = l2Entry & QCOW2Entry.offsetMask
                    // An entry past the virtual size (a hostile header's L1 may reach beyond it)
                    // maps nothing the disk holds: its length is 0, not a wrapped subtraction.
                    let (start, overflow) = guest.multipliedReportingOverflow(by: clusterSize)
                    let remaining = overflow || start >= header.size ? 0 : header.size - start
                    try checkTarget(host, length: min(clusterSize, remaining), at: at,
                                    what: "L2 entry of guest cluster \(guest)")
                    mappings.append((guest, .standard(hostOffset: host, copied: copied)))
                }
            }
        }
        self.mappings = mappings

        let tableLength = UInt64(header.refcountTableClusters) * clusterSize
        try checkTarget(header.refcountTableOffset, length: tableLength, at: 48, what: "refcount table offset")
        let table = try file.read(count: Int(tableLength), at: header.refcountTableOffset)
        let perBlock = clusterSize / 2
        let fileClusters = (fileSize + clusterSize - 1) / clusterSize
        var blockOffsets: [UInt64] = []
        var stored = [UInt16](repeating: 0, count: Int(fileClusters))
        for index in 0..<Int(tableLength / 8) {
            let blockOffset = table.loadBE(UInt64.self, at: index * 8)
            blockOffsets.append(blockOffset)
            guard blockOffset != 0 else { continue }
            try checkTarget(blockOffset, length: clusterSize, at: header.refcountTableOffset + UInt64(index) * 8,
                            what: "refcount table entry \(index)")
            let block = try file.read(count: Int(clusterSize), at: blockOffset)
            for slot in 0..<Int(perBlock) {
                let count = block.loadBE(UInt16.self, at: slot * 2)
                let cluster = UInt64(index) * perBlock + UInt64(slot)
                guard count != 0 else { continue }
                guard cluster < fileClusters else {
                    throw QCOW2Error.outsideFile(path: path, offset: blockOffset + UInt64(slot) * 2,
                                                 what: "non-zero refcount", target: cluster * clusterSize, fileSize: fileSize)
                }
                stored[Int(cluster)] = count
            }
        }
        while blockOffsets.last == 0 { blockOffsets.removeLast() }
        refcountBlockOffsets = blockOffsets
        storedRefcounts = stored
    }

    /// Refcounts recomputed from the metadata, as `qemu-img check` does: header cluster, L1
    /// table, refcount table, refcount blocks, L2 tables and data clusters count one each;
    /// compressed data counts one for every host cluster its sectors touch.
    public func recountedRefcounts() -> [UInt64] {
        let clusterSize = header.clusterSize
        var counts = [UInt64](repeating: 0, count: storedRefcounts.count)
        func reference(_ offset: UInt64, _ length: UInt64) {
            guard length > 0 else { return }
            for cluster in (offset / clusterSize)...((offset + length - 1) / clusterSize) where cluster < UInt64(counts.count) {
                counts[Int(cluster)] += 1
            }
        }
        reference(0, clusterSize)
        reference(header.l1TableOffset, UInt64(header.l1Size) * 8)
        reference(header.refcountTableOffset, UInt64(header.refcountTableClusters) * clusterSize)
        for offset in refcountBlockOffsets where offset != 0 { reference(offset, clusterSize) }
        for entry in l1 where entry != 0 { reference(entry & QCOW2Entry.offsetMask, clusterSize) }
        for (_, mapping) in mappings {
            switch mapping {
            case let .standard(host, _): reference(host, clusterSize)
            case let .compressed(host, sectors, _): reference(host & ~511, sectors * 512)
            }
        }
        return counts
    }
}
