import ImageCore

#if canImport(Glibc)
import Glibc
#endif

/// Guest clusters written into an existing qcow2 image in place, as qemu writes them:
///
/// ```
/// guest cluster --L1[i]--> L2 table --L2[j]--> host cluster
///   uncompressed, COPIED (refcount 1)  -> overwritten where it is (a zero flag cleared)
///   unallocated, zero, compressed      -> a new cluster at the end of the file, L2[j] = it | COPIED
///   L1[i] empty                        -> a new L2 table at the end of the file
///   refcount of every new cluster      -> its refcount block, a new one at the end when the
///                                         refcount table's entry is empty
///   compressed data replaced           -> the refcounts of the host clusters it spans drop by one
/// ```
///
/// Everything is planned in memory before the first write, so what cannot be done (internal
/// snapshots, whose clusters are shared; a dirty or corrupt image; sub-byte refcounts; a refcount
/// table that would have to grow; too little space on the host) is refused with the image
/// unchanged. Then the writes go in qemu's safe order, each step synced before the next: data
/// clusters, new and increased refcounts; L2 tables; L1 entries; decreased refcounts last. An
/// interruption leaves at worst leaked clusters (`qemu-img check -r leaks`), never a cluster in
/// use whose refcount says free.
public final class QCOW2InPlaceWriter: InPlaceDiskWriter {
    public let path: String
    public let clusterSize: UInt64
    public var unitSize: UInt64 { clusterSize }
    let header: QCOW2Header
    let file: RawFile
    let fileSize: UInt64
    let refcountBytes: Int
    var l1: [UInt64]
    var l1Dirty: Set<Int> = []
    var l2Tables: [Int: (offset: UInt64, entries: [UInt64])] = [:]
    var l2Dirty: Set<Int> = []
    var refcountTable: [UInt64]
    var refcountTableDirty: Set<Int> = []
    var refcountBlocks: [Int: [UInt8]] = [:]
    var refcountBlocksDirty: Set<Int> = []
    /// Host offsets of the clusters compressed data spanned, once per compressed cluster replaced.
    var decrements: [UInt64] = []
    /// Where each guest cluster's new contents go.
    var dataWrites: [(guestCluster: UInt64, host: UInt64)] = []
    var allocationEnd: UInt64

    /// Incompatible feature bits this writer handles (the compression type: written clusters are
    /// never compressed).
    static let handledIncompatible = QCOW2Header.compressionTypeFeature

    public init(path: String) throws {
        self.path = path
        file = try RawFile(path: path, mode: .readWrite)
        fileSize = try file.size
        let head = try file.read(count: Int(min(fileSize, 4096)), at: 0)
        header = try QCOW2Header.parse(head, path: path)
        clusterSize = header.clusterSize
        guard header.snapshotCount == 0 else {
            throw InPlaceWriteError.unsupported(path: path, what: "a qcow2 image with \(header.snapshotCount) internal snapshots (their clusters are shared)")
        }
        guard header.backingFileOffset == 0 else { throw InPlaceWriteError.unsupported(path: path, what: "a qcow2 image with a backing file") }
        guard header.cryptMethod == 0 else { throw InPlaceWriteError.unsupported(path: path, what: "a qcow2 image with encryption") }
        if header.incompatibleFeatures & 1 != 0 {
            throw InPlaceWriteError.unsupported(path: path, what: "a qcow2 image with the dirty bit set (refcounts not up to date: run `qemu-img check -r all` first)")
        }
        if header.incompatibleFeatures & 2 != 0 { throw InPlaceWriteError.unsupported(path: path, what: "a qcow2 image with the corrupt bit set") }
        let unknown = header.incompatibleFeatures & ~(Self.handledIncompatible | 3)
        guard unknown == 0 else {
            throw InPlaceWriteError.unsupported(path: path, what: "a qcow2 image with incompatible feature bits 0x\(String(unknown, radix: 16))")
        }
        guard header.refcountOrder >= 3 else {
            throw InPlaceWriteError.unsupported(path: path, what: "a qcow2 image with refcounts of \(1 << header.refcountOrder) bits (below a byte)")
        }
        refcountBytes = 1 << Int(header.refcountOrder - 3)
        l1 = try Self.loadTable(file, at: header.l1TableOffset, count: Int(header.l1Size), path: path, what: "L1 table", fileSize: fileSize)
        refcountTable = try Self.loadTable(file, at: header.refcountTableOffset,
                                           count: Int(UInt64(header.refcountTableClusters) * header.clusterSize / 8),
                                           path: path, what: "refcount table", fileSize: fileSize)
        allocationEnd = (fileSize + clusterSize - 1) / clusterSize * clusterSize
    }

    static func loadTable(_ file: RawFile, at offset: UInt64, count: Int, path: String, what: String, fileSize: UInt64) throws -> [UInt64] {
        let bytes = UInt64(count) * 8
        guard offset <= fileSize, bytes <= fileSize - offset, bytes <= 256 << 20 else {
            throw InPlaceWriteError.corrupt(path: path, what: "the \(what) at byte \(offset) (\(bytes) bytes) lies outside the file")
        }
        let raw = try file.read(count: Int(bytes), at: offset)
        return (0..<count).map { raw.loadBE(UInt64.self, at: $0 * 8) }
    }

    var entriesPerTable: UInt64 { clusterSize / 8 }
    var refcountsPerBlock: UInt64 { clusterSize / UInt64(refcountBytes) }

    // MARK: Planning

    /// Plans the writes of `guestClusters` (indexes of `clusterSize` bytes of the virtual disk).
    /// Throws, with nothing written, when they cannot be done.
    public func plan(_ guestClusters: [UInt64]) throws {
        for cluster in guestClusters.sorted() {
            let l1Index = Int(cluster / entriesPerTable), l2Index = Int(cluster % entriesPerTable)
            guard l1Index < l1.count else {
                throw InPlaceWriteError.corrupt(path: path, what: "guest cluster \(cluster) is beyond the L1 table's \(l1.count) entries")
            }
            var table = try l2Table(l1Index)
            let entry = table.entries[l2Index]
            let host = entry & QCOW2Entry.offsetMask
            let target: UInt64
            if entry & QCOW2Entry.compressed != 0 {
                let (offset, sectors) = QCOW2Entry.decodeCompressed(entry, clusterBits: Int(header.clusterBits))
                let start = offset & ~511, end = start + sectors * 512
                var spanned = start / clusterSize * clusterSize
                while spanned < end { decrements.append(spanned); spanned += clusterSize }
                target = try allocate()
            } else if host != 0 {
                guard entry & QCOW2Entry.copied != 0 else {
                    throw InPlaceWriteError.unsupported(path: path, what: "a qcow2 image whose guest cluster \(cluster) is shared with another (refcount above 1)")
                }
                guard host % clusterSize == 0, host < fileSize else {
                    throw InPlaceWriteError.corrupt(path: path, what: "guest cluster \(cluster) maps to byte \(host), outside the file or unaligned")
                }
                target = host
            } else {
                target = try allocate()
            }
            table.entries[l2Index] = target | QCOW2Entry.copied
            l2Tables[l1Index] = table
            l2Dirty.insert(l1Index)
            dataWrites.append((cluster, target))
        }
        // Decrements checked now, on a copy, so none can fail once writing has started.
        let saved = (refcountBlocks, refcountBlocksDirty)
        for host in decrements { try adjustRefcount(host, by: -1) }
        (refcountBlocks, refcountBlocksDirty) = saved
    }

    private func l2Table(_ l1Index: Int) throws -> (offset: UInt64, entries: [UInt64]) {
        if let table = l2Tables[l1Index] { return table }
        let entry = l1[l1Index]
        let offset = entry & QCOW2Entry.offsetMask
        if offset == 0 {
            let new = try allocate()
            l1[l1Index] = new | QCOW2Entry.copied
            l1Dirty.insert(l1Index)
            let table = (new, [UInt64](repeating: 0, count: Int(entriesPerTable)))
            l2Tables[l1Index] = table
            return table
        }
        guard entry & QCOW2Entry.copied != 0 else {
            throw InPlaceWriteError.unsupported(path: path, what: "a qcow2 image whose L2 table \(l1Index) is shared with another (refcount above 1)")
        }
        guard offset % clusterSize == 0 else {
            throw InPlaceWriteError.corrupt(path: path, what: "L1 entry \(l1Index) points to byte \(offset), not cluster-aligned")
        }
        let table = (offset, try Self.loadTable(file, at: offset, count: Int(entriesPerTable), path: path,
                                                what: "L2 table of L1 entry \(l1Index)", fileSize: fileSize))
        l2Tables[l1Index] = table
        return table
    }

    /// A new cluster at the end of the file, its refcount set to one.
    private func allocate() throws -> UInt64 {
        let cluster = allocationEnd
        allocationEnd += clusterSize
        try adjustRefcount(cluster, by: 1)
        return cluster
    }

    private func adjustRefcount(_ host: UInt64, by delta: Int64) throws {
        let cluster = host / clusterSize
        let index = Int(cluster / refcountsPerBlock)
        guard index < refcountTable.count else {
            throw InPlaceWriteError.unsupported(path: path, what: "a qcow2 image with a refcount table that would have to grow (byte \(host) is beyond what it covers)")
        }
        if refcountBlocks[index] == nil {
            let offset = refcountTable[index] & ~(clusterSize - 1)
            if offset == 0 && delta < 0 {
                throw InPlaceWriteError.corrupt(path: path, what: "the cluster at byte \(host) is in use but no refcount block covers it")
            }
            if offset == 0 {
                let block = allocationEnd
                allocationEnd += clusterSize
                refcountTable[index] = block
                refcountTableDirty.insert(index)
                refcountBlocks[index] = [UInt8](repeating: 0, count: Int(clusterSize))
                refcountBlocksDirty.insert(index)
                try adjustRefcount(block, by: 1)
            } else {
                guard offset <= fileSize, clusterSize <= fileSize - offset else {
                    throw InPlaceWriteError.corrupt(path: path, what: "refcount block \(index) at byte \(offset) lies outside the file")
                }
                refcountBlocks[index] = try file.read(count: Int(clusterSize), at: offset)
            }
        }
        let at = Int(cluster % refcountsPerBlock) * refcountBytes
        var value: UInt64 = 0
        for byte in refcountBlocks[index]![at..<(at + refcountBytes)] { value = value << 8 | UInt64(byte) }
        let maximum: UInt64 = refcountBytes == 8 ? .max : (1 << UInt64(refcountBytes * 8)) - 1
        if delta < 0 {
            guard value >= UInt64(-delta) else {
                throw InPlaceWriteError.corrupt(path: path, what: "the refcount of the cluster at byte \(host) is already \(value)")
            }
            value -= UInt64(-delta)
        } else {
            guard value <= maximum - UInt64(delta) else {
                throw InPlaceWriteError.corrupt(path: path, what: "the refcount of the cluster at byte \(host) would overflow")
            }
            value += UInt64(delta)
        }
        for position in 0..<refcountBytes {
            refcountBlocks[index]![at + position] = UInt8(truncatingIfNeeded: value >> UInt64(8 * (refcountBytes - 1 - position)))
        }
        refcountBlocksDirty.insert(index)
    }

    // MARK: Writing

    /// The bytes the file grows by.
    public var growth: UInt64 { allocationEnd - (fileSize + clusterSize - 1) / clusterSize * clusterSize }

    /// Writes what `plan` planned; `contents` gives a guest cluster's whole new contents. Checks
    /// the host's free space first.
    public func commit(contents: (UInt64) throws -> [UInt8]) throws {
        try checkHostSpace(file, growth: growth)
        // Unknown autoclear bits (persistent bitmaps) no longer describe the image: cleared, as
        // the specification asks of a writer that does not update them.
        if header.version >= 3, header.autoclearFeatures != 0 {
            var zero = [UInt8](repeating: 0, count: 8)
            zero.storeBE(UInt64(0), at: 0)
            try file.write(zero, at: 88)
        }
        for (cluster, host) in dataWrites {
            let bytes = try contents(cluster)
            precondition(bytes.count == Int(clusterSize))
            try file.write(bytes, at: host)
        }
        try writeRefcounts()
        try file.sync()
        for index in l2Dirty.sorted() {
            let table = l2Tables[index]!
            var bytes = [UInt8](repeating: 0, count: Int(clusterSize))
            for (position, entry) in table.entries.enumerated() { bytes.storeBE(entry, at: position * 8) }
            try file.write(bytes, at: table.offset)
        }
        try file.sync()
        for index in l1Dirty.sorted() {
            var bytes = [UInt8](repeating: 0, count: 8)
            bytes.storeBE(l1[index], at: 0)
            try file.write(bytes, at: header.l1TableOffset + UInt64(index) * 8)
        }
        try file.sync()
        refcountBlocksDirty = []
        refcountTableDirty = []
        for host in decrements { try adjustRefcount(host, by: -1) }
        try writeRefcounts()
        try file.sync()
    }

    private func writeRefcounts() throws {
        for index in refcountBlocksDirty.sorted() {
            try file.write(refcountBlocks[index]!, at: refcountTable[index] & ~(clusterSize - 1))
        }
        for index in refcountTableDirty.sorted() {
            var bytes = [UInt8](repeating: 0, count: 8)
            bytes.storeBE(refcountTable[index], at: 0)
            try file.write(bytes, at: header.refcountTableOffset + UInt64(index) * 8)
        }
    }
}
