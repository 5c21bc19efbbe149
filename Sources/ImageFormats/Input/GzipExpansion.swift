import Compression
import ImageCore
import Zlib

/// Decompresses a gzip input (or xz, or zstd: `compression`) once into a sparse scratch file: 64 KiB chunks that are all zero
/// are skipped, so an image of a mostly empty filesystem costs only its data on disk.
///
/// Bounded by what the data says, as a gzip stream declares no size of its own (its trailer
/// holds the size modulo 2^32, at the end): once the first 64 KiB are out, they say what the
/// stream holds.
/// - A bare ext2/3/4 filesystem (its superblock at byte 1024): the filesystem's size plus
///   `declaredSlack`. Inflating past it is an error (a gzip bomb, or a stream that is not the
///   filesystem image it starts as).
/// - A partitioned disk (an MBR signature): the end of its furthest partition (a GPT's protective
///   partition covers the disk). Zeros up to there cost nothing (a mostly empty disk is normal);
///   past it, as everywhere when nothing is declared, they count against `limit`, so a disk with
///   some free space after its last partition still reads, and an endless stream of zeros stops.
/// - Non-zero bytes, which are written, always count against `limit` (`--max-output-size`).
enum GzipExpansion {
    static let chunkSize = 64 * 1024
    static let readSize = 1024 * 1024
    /// A filesystem image may be followed by a little padding (a disk image rounded to a MiB).
    static let declaredSlack: UInt64 = 1 << 20

    /// Where the stream must end, as its first chunk declares.
    enum Bound: Equatable {
        /// An error past this many bytes: a filesystem's declared size.
        case filesystem(UInt64)
        /// Zeros are free up to this many bytes: the end of the furthest partition.
        case disk(UInt64)
    }

    /// What the first chunk of the stream declares, nil when it declares nothing known.
    static func declaredBound(_ head: UnsafeRawBufferPointer) -> Bound? {
        let superblockAt = Int(ExtSuperblockGeometry.superblockOffset)
        if head.count >= superblockAt + ExtSuperblockGeometry.superblockSize {
            let superblock = Array(head[superblockAt..<(superblockAt + ExtSuperblockGeometry.superblockSize)])
            if ExtSuperblockGeometry.hasMagic(superblock), let geometry = try? ExtSuperblockGeometry(superblock: superblock) {
                let size = geometry.byteCount
                return .filesystem(size + declaredSlack)
            }
        }
        if head.count >= 512, head[510] == 0x55, head[511] == 0xAA {
            var end: UInt64 = 0
            for entry in 0..<4 {
                let base = 446 + entry * 16
                let type = head[base + 4]
                let start = UInt64(head.loadUnaligned(fromByteOffset: base + 8, as: UInt32.self).littleEndian)
                let count = UInt64(head.loadUnaligned(fromByteOffset: base + 12, as: UInt32.self).littleEndian)
                if type != 0, count > 0 { end = max(end, (start + count) * 512) }
            }
            if end > 0 { return .disk(end) }
        }
        return nil
    }

    static func expand(_ input: RawFile, displayPath: String, scratchDirectory: String?,
                       limit: ExpansionLimit, compression: StreamCompression = .gzip) throws -> ScratchFile {
        let scratch = try ScratchFile(directory: scratchDirectory, hint: displayPath)
        guard let decompressor = try compression.makeStreamDecoder(name: displayPath) else {
            throw InputError.compressedDisk(path: displayPath, tool: "\(compression.rawValue) -d")
        }
        let what = "the \(compression.rawValue) data inflates to"
        let inputSize = try input.size
        let readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: readSize, alignment: 16)
        defer { readBuffer.deallocate() }
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkSize, alignment: 16)
        defer { chunk.deallocate() }
        var chunkFill = 0
        var chunkStart: UInt64 = 0
        var bound: Bound?
        /// Bytes counted against `limit`: see the type's documentation.
        var produced: UInt64 = 0

        func flush() throws {
            let filled = UnsafeRawBufferPointer(rebasing: chunk[0..<chunkFill])
            if chunkStart == 0 { bound = declaredBound(filled) }
            let zero = ZeroDetection.isAllZero(filled)
            let end = chunkStart + UInt64(chunkFill)
            defer {
                chunkStart = end
                chunkFill = 0
            }
            switch bound {
            case let .filesystem(size)? where end > size:
                throw ExpansionLimitError.pastDeclaredSize(path: displayPath, declared: size,
                                                           by: "that the ext2/3/4 superblock at byte 1024 declares, with a MiB of padding")
            case .filesystem?:
                if !zero { try limit.account(chunkFill, total: &produced, path: displayPath, what: what) }
            case let .disk(diskEnd)? where end <= diskEnd:
                if !zero { try limit.account(chunkFill, total: &produced, path: displayPath, what: what) }
            default:
                try limit.account(chunkFill, total: &produced, path: displayPath, what: what)
            }
            if !zero { try scratch.file.write(filled, at: chunkStart) }
        }

        var inputOffset: UInt64 = 0
        while inputOffset < inputSize {
            let got = try input.read(into: readBuffer, at: inputOffset)
            if got == 0 { break }
            inputOffset += UInt64(got)
            try decompressor.decompress(UnsafeRawBufferPointer(rebasing: readBuffer[0..<got])) { output in
                var used = 0
                while used < output.count {
                    let take = min(chunkSize - chunkFill, output.count - used)
                    UnsafeMutableRawBufferPointer(rebasing: chunk[chunkFill..<chunkFill + take])
                        .copyMemory(from: UnsafeRawBufferPointer(rebasing: output[used..<used + take]))
                    chunkFill += take
                    used += take
                    if chunkFill == chunkSize { try flush() }
                }
            }
        }
        try decompressor.finish()
        try flush()
        // Trailing zero chunks were never written: set the length so they read back as a hole.
        try scratch.file.truncate(to: chunkStart)
        return scratch
    }
}
