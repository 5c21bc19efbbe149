import Foundation
import ImageCore
import ImageFormats
import Testing
import TestSupport

/// The reader hands out each non-zero byte exactly once, in increasing order, skipping holes
/// and all-zero blocks.
struct RawDiskReaderTests {
    func pieces(of path: String) throws -> [(UInt64, [UInt8])] {
        var seen: [(UInt64, [UInt8])] = []
        try RawDiskReader(path: path).forEachDataPiece { offset, data in seen.append((offset, Array(data))) }
        return seen
    }

    @Test func twoDataRangesInOneBlockAreReadOnce() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("disk.raw")
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        let file = try RawFile(path: path, mode: .readWrite)
        try file.truncate(to: 4 << 20)
        // Two 4 KiB data ranges with a hole between them, inside the same 64 KiB block.
        try file.write([UInt8](repeating: 0xAA, count: 4096), at: 0x10000)
        try file.write([UInt8](repeating: 0xBB, count: 4096), at: 0x18000)
        let seen = try pieces(of: path)
        #expect(seen.map(\.0) == [0x10000])
        #expect(seen.first?.1.count == 65536)
        #expect(seen.first?.1[0] == 0xAA && seen.first?.1[0x8000] == 0xBB && seen.first?.1[0x4000] == 0)
    }

    @Test func zeroBlocksAndHolesAreSkippedAndOffsetsIncrease() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("disk.raw")
        let size: UInt64 = (40 << 20) + 512
        let ranges = try SyntheticDisk.make(at: path, size: size)
        let seen = try pieces(of: path)
        var end: UInt64 = 0
        for (offset, data) in seen {
            #expect(offset >= end, "pieces overlap at \(offset)")
            #expect(offset % 65536 == 0 && data.count <= 1 << 20)
            #expect((offset / (1 << 20)) == ((offset + UInt64(data.count) - 1) / (1 << 20)), "a piece crosses a 1 MiB boundary")
            #expect(data.contains { $0 != 0 }, "an all-zero piece at \(offset)")
            end = offset + UInt64(data.count)
        }
        // Every byte the disk holds is in some piece.
        for range in ranges {
            #expect(seen.contains { $0.0 <= range.lowerBound && range.upperBound <= $0.0 + UInt64($0.1.count) }
                    || seen.contains { $0.0 < range.upperBound && range.lowerBound < $0.0 + UInt64($0.1.count) })
        }
        #expect(seen.last.map { $0.0 + UInt64($0.1.count) } == size, "the last sector is data")
        // The allocated zero megabyte at 4 MiB is not handed out.
        #expect(!seen.contains { $0.0 >= 4 << 20 && $0.0 < 5 << 20 })
    }
}
