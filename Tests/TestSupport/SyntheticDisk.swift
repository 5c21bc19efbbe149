import Foundation
import ImageCore

/// Raw disks with every shape a format writer must handle: random (incompressible) data, text
/// (compressible) data, allocated all-zero blocks, holes, data that straddles cluster and block
/// boundaries, and data in the very last sector of a disk whose size is not a multiple of any
/// cluster or block size.
public enum SyntheticDisk {
    /// Writes a sparse raw disk of `size` bytes (a multiple of 512) at `path`, deterministically
    /// from `seed`. Returns the byte ranges that hold non-zero data.
    @discardableResult
    public static func make(at path: String, size: UInt64, seed: UInt64 = 1) throws -> [Range<UInt64>] {
        precondition(size % 512 == 0 && size >= 8 << 20, "a synthetic disk is at least 8 MiB of whole sectors")
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        let file = try RawFile(path: path, mode: .readWrite)
        try file.truncate(to: size)
        var generator = SplitMix(seed: seed)
        var ranges: [Range<UInt64>] = []
        func put(_ bytes: [UInt8], at offset: UInt64) throws {
            guard offset + UInt64(bytes.count) <= size else { return }
            try file.write(bytes, at: offset)
            ranges.append(offset..<(offset + UInt64(bytes.count)))
        }
        let text = Array(String(repeating: "rehost synthetic disk: compressible text line\n", count: 30000).utf8)
        // Random data across the first clusters, text at a grain boundary, a lone sector
        // straddling 64 KiB, a zero-filled but allocated megabyte, and data in the last sector.
        try put((0..<(3 << 20)).map { _ in UInt8(truncatingIfNeeded: generator.next()) }, at: 0)
        try put(Array(text.prefix(1 << 20)), at: 5 << 20)
        try put((0..<1024).map { _ in UInt8(truncatingIfNeeded: generator.next()) | 1 }, at: (7 << 20) - 512)
        try file.write([UInt8](repeating: 0, count: 1 << 20), at: 4 << 20)
        var offset: UInt64 = 8 << 20
        while offset + (2 << 20) < size - (1 << 20) {
            try put((0..<(64 << 10)).map { _ in UInt8(truncatingIfNeeded: generator.next()) }, at: offset + 4096)
            offset += max(16 << 20, size / 16)
        }
        try put(Array(text.prefix(512)), at: size - 512)
        try file.sync()
        return ranges
    }
}
