import Compression
import ImageCore

extension QCOW2Reader: RandomAccessDiskImageReader {
    /// The disk read at any offset, through the tables `init` checked.
    public func randomAccess() -> any RandomAccessDisk {
        randomAccess(l2CacheBytes: QCOW2Disk.l2CacheBytes)
    }

    /// As `randomAccess()`, holding at most `l2CacheBytes` of L2 tables (two at least).
    public func randomAccess(l2CacheBytes: Int) -> QCOW2Disk {
        QCOW2Disk(file: file, layout: layout, l1: l1, decompressor: decompressor, name: path, l2CacheBytes: l2CacheBytes)
    }
}

/// A qcow2 image read at random offsets: guest byte g is found through L1[g >> (cluster_bits +
/// l2_bits)] and its L2 table, as drawn on `QCOW2Reader`. Every entry is checked again as it is
/// used (the file may have changed since `init`); unallocated and zero clusters read as zeros,
/// compressed clusters are inflated whole.
///
/// Memory is bounded whatever the disk: at most `l2CacheBytes` of L2 tables (two tables at
/// least) and `inflatedCacheBytes` of inflated clusters (one at least, a cluster being at most
/// 2 MiB), each least recently used out.
public final class QCOW2Disk: RandomAccessDisk {
    public let size: UInt64
    public let name: String
    private let file: RawFile
    private let layout: QCOW2Layout
    private let l1: [UInt64]
    private let decompressor: Decompressor
    private let l2Tables: BoundedCache<UInt64, [UInt64]>
    /// L2 tables held now: never more than the cache's capacity.
    public var cachedL2Tables: Int { l2Tables.count }
    private let inflated: BoundedCache<UInt64, [UInt8]>

    /// 4 MiB of L2 tables map 32 GiB of guest with 64 KiB clusters.
    public static let l2CacheBytes = 4 << 20
    static let inflatedCacheBytes = 1 << 20

    init(file: RawFile, layout: QCOW2Layout, l1: [UInt64], decompressor: Decompressor, name: String, l2CacheBytes: Int) {
        self.file = file
        self.layout = layout
        self.l1 = l1
        self.decompressor = decompressor
        self.name = name
        size = layout.virtualSize
        l2Tables = BoundedCache(capacity: max(2, l2CacheBytes / Int(layout.clusterSize)))
        inflated = BoundedCache(capacity: max(1, Self.inflatedCacheBytes / Int(layout.clusterSize)))
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws {
        try checkRange(offset: offset, count: buffer.count)
        let clusterSize = layout.clusterSize
        // Host-contiguous data clusters are read with one pread.
        var run: (start: Int, host: UInt64, length: Int)?
        func flush() throws {
            guard let current = run else { return }
            run = nil
            let target = UnsafeMutableRawBufferPointer(rebasing: buffer[current.start..<(current.start + current.length)])
            let got = try file.read(into: target, at: current.host)
            guard got == current.length else {
                throw layout.failure.truncated(at: current.host, needed: UInt64(current.length))
            }
        }
        var done = 0
        while done < buffer.count {
            let guest = offset + UInt64(done)
            let guestCluster = guest / clusterSize
            let within = guest % clusterSize
            let count = Int(min(UInt64(buffer.count - done), clusterSize - within))
            let target = UnsafeMutableRawBufferPointer(rebasing: buffer[done..<(done + count)])
            switch try mapping(ofCluster: guestCluster) {
            case nil:
                try flush()
                target.initializeMemory(as: UInt8.self, repeating: 0)
            case let .data(host, _):
                if let current = run, current.host + UInt64(current.length) == host + within, current.start + current.length == done {
                    run = (current.start, current.host, current.length + count)
                } else {
                    try flush()
                    run = (done, host + within, count)
                }
            case let .compressed(host, end):
                try flush()
                let cluster = try inflate(guestCluster: guestCluster, host: host, end: end)
                cluster.withUnsafeBytes { target.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[Int(within)..<(Int(within) + count)])) }
            }
            done += count
        }
        try flush()
    }

    /// Where guest cluster `guestCluster` is, its L2 entry checked as `init` checked it.
    private func mapping(ofCluster guestCluster: UInt64) throws -> QCOW2Mapping? {
        let index = Int(guestCluster / layout.l2Entries)
        let slot = Int(guestCluster % layout.l2Entries)
        guard index < l1.count else { return nil }
        let tableOffset = l1[index] & QCOW2Entry.offsetMask
        guard tableOffset != 0 else { return nil }
        let table = try l2Tables.value(for: tableOffset) {
            var bytes = [UInt8](repeating: 0, count: Int(layout.clusterSize))
            try layout.readL2Table(into: &bytes, from: file, at: tableOffset)
            return (0..<Int(layout.l2Entries)).map { bytes.loadBE(UInt64.self, at: $0 * 8) }
        }
        return try layout.map(table[slot], guestCluster: guestCluster, entryAt: tableOffset + UInt64(slot) * 8)
    }

    /// One compressed cluster, inflated whole (and kept: the filesystem reads it block by block).
    private func inflate(guestCluster: UInt64, host: UInt64, end: UInt64) throws -> [UInt8] {
        try inflated.value(for: guestCluster) {
            let clusterSize = Int(layout.clusterSize)
            let input = try file.read(count: Int(end - host), at: host)
            var output = [UInt8](repeating: 0, count: clusterSize)
            let produced = input.withUnsafeBytes { source in
                output.withUnsafeMutableBytes { decompressor.decompress(source, into: $0) }
            }
            guard produced == clusterSize else {
                let method = decompressor == .zstd ? "zstd" : "deflate"
                let outcome = produced.map { "gives \($0) bytes" } ?? "is not valid \(method) data or inflates past the cluster"
                throw layout.failure.corrupt(host, "the compressed cluster of guest byte \(guestCluster * UInt64(clusterSize)) \(outcome); expected \(clusterSize) bytes")
            }
            return output
        }
    }
}
