import Ext2
import ImageCore
import ImageFormats

/// A filesystem's bytes on a disk read in place (a partition of a qcow2 image), with libext2fs's
/// writes kept in memory, page by page, over it: the image is not touched until the filesystem has
/// been closed without error, and then only the pages changed are written, through the format's
/// in-place writer. Reads see the writes.
final class StagedDisk: Ext2WritableBlockSource {
    static let pageSize: UInt64 = 4096
    /// The whole virtual disk, and where the filesystem lies on it.
    let disk: any RandomAccessDisk
    let offset: UInt64
    let size: UInt64
    /// The most bytes staged; more is refused before anything reaches the image.
    let limit: UInt64
    let image: String
    /// Changed pages by absolute page number on `disk`.
    private(set) var pages: [UInt64: [UInt8]] = [:]

    init(disk: any RandomAccessDisk, offset: UInt64, size: UInt64, limit: UInt64, image: String) {
        self.disk = disk
        self.offset = offset
        self.size = size
        self.limit = limit
        self.image = image
    }

    func read(into buffer: UnsafeMutableRawBufferPointer, at position: UInt64) throws {
        try readAbsolute(into: buffer, at: offset + position)
    }

    func write(_ bytes: UnsafeRawBufferPointer, at position: UInt64) throws {
        var done = 0
        while done < bytes.count {
            let absolute = offset + position + UInt64(done)
            let page = absolute / Self.pageSize
            let within = Int(absolute % Self.pageSize)
            let count = min(bytes.count - done, Int(Self.pageSize) - within)
            var contents = try pages[page] ?? original(page)
            contents.withUnsafeMutableBytes { target in
                UnsafeMutableRawBufferPointer(rebasing: target[within..<(within + count)])
                    .copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[done..<(done + count)]))
            }
            if pages[page] == nil, UInt64(pages.count + 1) * Self.pageSize > limit {
                throw FileAccessError.stagingLimit(image: image, limit: limit)
            }
            pages[page] = contents
            done += count
        }
    }

    /// A page as the disk holds it (cut at the disk's end).
    private func original(_ page: UInt64) throws -> [UInt8] {
        let start = page * Self.pageSize
        var bytes = [UInt8](repeating: 0, count: Int(Self.pageSize))
        let count = Int(min(Self.pageSize, disk.size - start))
        try bytes.withUnsafeMutableBytes { try disk.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<count]), at: start) }
        return bytes
    }

    /// Bytes of the whole disk with the staged pages over them.
    func readAbsolute(into buffer: UnsafeMutableRawBufferPointer, at absolute: UInt64) throws {
        var done = 0
        while done < buffer.count {
            let position = absolute + UInt64(done)
            let page = position / Self.pageSize
            let within = Int(position % Self.pageSize)
            if let staged = pages[page] {
                let count = min(buffer.count - done, Int(Self.pageSize) - within)
                staged.withUnsafeBytes { source in
                    UnsafeMutableRawBufferPointer(rebasing: buffer[done..<(done + count)])
                        .copyMemory(from: UnsafeRawBufferPointer(rebasing: source[within..<(within + count)]))
                }
                done += count
                continue
            }
            // A run of unstaged pages in one read.
            var end = (page + 1) * Self.pageSize
            while end < absolute + UInt64(buffer.count), pages[end / Self.pageSize] == nil { end += Self.pageSize }
            let count = Int(min(end, absolute + UInt64(buffer.count)) - position)
            try disk.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[done..<(done + count)]), at: position)
            done += count
        }
    }

    /// The indexes of the `clusterSize`-byte clusters of the disk the staged pages touch.
    func clusters(of clusterSize: UInt64) -> [UInt64] {
        var clusters: Set<UInt64> = []
        for page in pages.keys {
            let start = page * Self.pageSize
            let end = min(start + Self.pageSize, disk.size)
            var cluster = start / clusterSize
            while cluster * clusterSize < end { clusters.insert(cluster); cluster += 1 }
        }
        return clusters.sorted()
    }

    /// Copies the staged pages that fall in `bytes` (which starts at `start` on the disk) over it.
    func overlay(_ bytes: inout [UInt8], at start: UInt64) {
        let end = start + UInt64(bytes.count)
        var page = start / Self.pageSize
        while page * Self.pageSize < end {
            if let staged = pages[page] {
                let pageStart = page * Self.pageSize
                let from = max(pageStart, start), to = min(pageStart + Self.pageSize, end)
                for position in from..<to { bytes[Int(position - start)] = staged[Int(position - pageStart)] }
            }
            page += 1
        }
    }
}
