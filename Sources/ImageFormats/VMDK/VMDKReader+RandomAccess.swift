import Compression
import ImageCore

extension VMDKReader: RandomAccessDiskImageReader {
    /// The disk read at any offset, extent by extent: ZERO extents and unallocated grains read as
    /// zeros, FLAT extents straight from their file, SPARSE ones through their grain directory
    /// (a streamOptimized disk through the one its footer gives) and grain tables, compressed
    /// grains inflated whole.
    public func randomAccess() -> any RandomAccessDisk {
        VMDKDisk(extents: extents, size: virtualSize, name: path)
    }
}

/// Memory is bounded whatever the disk: at most `openFiles` extent files open, `tableCacheBytes`
/// of grain tables (2 KiB each for 512-entry tables; two at least) and `inflatedCacheBytes` of
/// inflated grains (64 KiB each as VMware writes them; one at least, a grain being at most 128
/// MiB), each least recently used out.
final class VMDKDisk: RandomAccessDisk {
    let size: UInt64
    let name: String
    private let extents: [VMDKReader.Extent]
    private let files: BoundedCache<Int, RawFile>
    private let tables: BoundedCache<[Int], [UInt32]>
    private let inflated: BoundedCache<[UInt64], [UInt8]>

    static let openFiles = 16
    static let tableCacheBytes = 1 << 20
    static let inflatedCacheBytes = 2 << 20

    init(extents: [VMDKReader.Extent], size: UInt64, name: String) {
        self.extents = extents
        self.size = size
        self.name = name
        var tableBytes = 4, grainBytes = 1
        for extent in extents {
            if case let .sparse(sparse) = extent.data {
                tableBytes = max(tableBytes, sparse.grainsPerTable * 4)
                grainBytes = max(grainBytes, sparse.grainBytes)
            }
        }
        files = BoundedCache(capacity: Self.openFiles)
        tables = BoundedCache(capacity: max(2, Self.tableCacheBytes / tableBytes))
        inflated = BoundedCache(capacity: max(1, Self.inflatedCacheBytes / grainBytes))
    }

    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws {
        try checkRange(offset: offset, count: buffer.count)
        var done = 0
        // Extents are in disk order, contiguous from 0; the first one that ends past the offset.
        var index = firstExtent(endingAfter: offset)
        while done < buffer.count {
            let position = offset + UInt64(done)
            guard index < extents.count, extents[index].start <= position, position < extents[index].start + extents[index].size else {
                // Zero-sized extents were dropped; there is no gap between the others.
                throw ImageReadError.corrupt(format: .vmdk, path: name, offset: 0, reason: "no extent holds disk byte \(position)")
            }
            let extent = extents[index]
            let within = position - extent.start
            let count = Int(min(UInt64(buffer.count - done), extent.size - within))
            let target = UnsafeMutableRawBufferPointer(rebasing: buffer[done..<(done + count)])
            switch extent.data {
            case .zero:
                target.initializeMemory(as: UInt8.self, repeating: 0)
            case let .flat(path, hostOffset):
                let file = try self.file(index, path: path)
                let got = try file.read(into: target, at: hostOffset + within)
                guard got == count else {
                    throw ImageReadError.truncated(format: .vmdk, path: path, offset: hostOffset + within, needed: UInt64(count),
                                                   fileSize: hostOffset + within + UInt64(got))
                }
            case let .sparse(sparse):
                try readSparse(sparse, extent: index, into: target, at: within)
            }
            done += count
            index += 1
        }
    }

    private func firstExtent(endingAfter offset: UInt64) -> Int {
        var low = 0, high = extents.count
        while low < high {
            let middle = (low + high) / 2
            if extents[middle].start + extents[middle].size <= offset { low = middle + 1 } else { high = middle }
        }
        return low
    }

    private func file(_ index: Int, path: String) throws -> RawFile {
        try files.value(for: index) { try RawFile(path: path, mode: .readOnly) }
    }

    private func readSparse(_ sparse: VMDKSparseExtent, extent: Int, into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws {
        let file = try self.file(extent, path: sparse.path)
        let grainBytes = UInt64(sparse.grainBytes)
        let sector = UInt64(VMDK.sectorSize)
        var done = 0
        while done < buffer.count {
            let position = offset + UInt64(done)
            let grain = position / grainBytes
            let within = position % grainBytes
            let count = Int(min(UInt64(buffer.count - done), grainBytes - within))
            let target = UnsafeMutableRawBufferPointer(rebasing: buffer[done..<(done + count)])
            let tableIndex = Int(grain / UInt64(sparse.grainsPerTable))
            let slot = Int(grain % UInt64(sparse.grainsPerTable))
            let table: [UInt32]? = tableIndex < sparse.directory.count && sparse.directory[tableIndex] != 0
                ? try tables.value(for: [extent, tableIndex]) { try sparse.grainTable(tableIndex, in: file) ?? [] }
                : nil
            let entry = table.flatMap { slot < $0.count ? $0[slot] : nil } ?? 0
            if entry <= 1 {
                target.initializeMemory(as: UInt8.self, repeating: 0)
            } else if sparse.compressed {
                let data = try inflated.value(for: [UInt64(extent), grain]) {
                    try sparse.inflateGrain(grain, markerAt: UInt64(entry) * sector, from: file)
                }
                data.withUnsafeBytes { target.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[Int(within)..<(Int(within) + count)])) }
            } else {
                let host = UInt64(entry) * sector + within
                let got = try file.read(into: target, at: host)
                guard got == count else {
                    throw ImageReadError.truncated(format: .vmdk, path: sparse.path, offset: host, needed: UInt64(count), fileSize: host + UInt64(got))
                }
            }
            done += count
        }
    }
}

extension VMDKSparseExtent {
    /// One compressed grain, read from its marker and inflated, with the checks of the stream.
    func inflateGrain(_ grain: UInt64, markerAt: UInt64, from file: RawFile) throws -> [UInt8] {
        let headCount = Int(min(UInt64(VMDK.sectorSize), fileSize - markerAt))
        let head = try file.read(count: headCount, at: markerAt)
        let size = try grainMarkerSize(grain, head: head, at: markerAt)
        let dataAt = markerAt + Self.markerHeaderSize
        let input = try file.read(count: Int(size), at: dataAt)
        var output = [UInt8](repeating: 0, count: grainBytes)
        let produced = input.withUnsafeBytes { source in output.withUnsafeMutableBytes { Decompressor.zlib.decompress(source, into: $0) } }
        let needed = grainLength(grain)
        guard let produced else {
            throw ImageReadError.corrupt(format: .vmdk, path: path, offset: markerAt,
                                         reason: "grain \(grain)'s zlib data does not inflate (corrupt, or more than \(grainBytes) bytes)")
        }
        guard UInt64(produced) >= needed else {
            throw ImageReadError.corrupt(format: .vmdk, path: path, offset: markerAt, reason: "grain \(grain) inflates to \(produced) bytes, expected \(needed)")
        }
        return output
    }
}
