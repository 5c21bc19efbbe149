import CCrypto
import Dispatch

/// A digest of a disk's contents (what the guest reads), not of a file: the same for a raw, qcow2,
/// VMDK, VDI or VHD image of the same disk, and cheap on sparse disks.
///
/// The construction (README "Digests"), after blkhash's block-based hash:
///
///     block digest   = SHA-256(64 KiB block)          the last block may be shorter
///     segment digest = SHA-256(block digest 1 ‖ block digest 2 ‖ …)    2048 blocks: 128 MiB
///     disk digest    = SHA-256(segment digest 1 ‖ segment digest 2 ‖ …)
///
/// Each block is hashed on its own, so blocks hash in parallel on every core, and a zero block
/// (a hole, an unallocated cluster) costs nothing: its digest is computed once, as is that of a
/// whole zero segment. A 1 TiB hole costs 8192 copies of one 32-byte value.
public final class DiskDigest {
    public static let blockSize = 64 << 10
    public static let blocksPerSegment = 2048
    public static var segmentSize: UInt64 { UInt64(blockSize * blocksPerSegment) }
    /// The name reports give the construction.
    public static let algorithm = "blk-sha256"

    public let size: UInt64
    /// Bytes of the disk accounted for so far; everything before it is hashed or staged.
    private var position: UInt64 = 0
    /// The block `position` is in, when `position` is not on a block boundary.
    private var partial: [UInt8] = []
    private var segmentBlocks: [UInt8] = []
    private let disk = Digest(.sha256)

    private static let digestSize = 32
    private static let zeroBlockDigest = sha256(zeros: blockSize)
    private static let zeroSegmentDigest: [UInt8] = {
        let blocks = [[UInt8]](repeating: zeroBlockDigest, count: blocksPerSegment).flatMap { $0 }
        return blocks.withUnsafeBytes { sha256($0) }
    }()

    public init(size: UInt64) {
        self.size = size
        segmentBlocks.reserveCapacity(Self.blocksPerSegment * Self.digestSize)
    }

    /// Adds `data`, which sits at `offset` on the disk. Pieces come in increasing order without
    /// overlap; the bytes between them are zeros.
    public func update(_ data: UnsafeRawBufferPointer, at offset: UInt64) {
        precondition(offset >= position && offset + UInt64(data.count) <= size, "disk digest pieces out of order")
        zeros(upTo: offset)
        var rest = data
        if !partial.isEmpty {
            rest = fillPartial(rest)
            guard !rest.isEmpty else { return }
        }
        // Whole blocks straight from the caller's buffer, hashed in parallel.
        let whole = rest.count / Self.blockSize
        if whole > 0 {
            appendBlockDigests(of: UnsafeRawBufferPointer(rebasing: rest[0..<(whole * Self.blockSize)]))
            rest = UnsafeRawBufferPointer(rebasing: rest[(whole * Self.blockSize)...])
        }
        if !rest.isEmpty {
            // The start of a block: staged until its end arrives (or the disk ends).
            partial = [UInt8](repeating: 0, count: blockLength(at: position))
            rest = fillPartial(rest)
            precondition(rest.isEmpty)
        }
    }

    /// The digest as lowercase hex; the rest of the disk reads as zeros.
    public func finish() -> String {
        zeros(upTo: size)
        if !segmentBlocks.isEmpty { closeSegment() }
        return disk.finish()
    }

    // MARK: - Blocks and segments

    private func blockLength(at offset: UInt64) -> Int {
        Int(min(UInt64(Self.blockSize), size - offset / UInt64(Self.blockSize) * UInt64(Self.blockSize)))
    }

    /// Copies the start of `data` into the staged block; hashes the block once it is full.
    private func fillPartial(_ data: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        let filled = Int(position % UInt64(Self.blockSize))
        let count = min(partial.count - filled, data.count)
        partial.withUnsafeMutableBytes { $0.baseAddress!.advanced(by: filled).copyMemory(from: data.baseAddress!, byteCount: count) }
        position += UInt64(count)
        if filled + count == partial.count {
            let digest = partial.withUnsafeBytes { Self.sha256($0) }
            partial = []
            appendBlockDigest(digest, blocks: 1)
        }
        return UnsafeRawBufferPointer(rebasing: data[count...])
    }

    /// Accounts for zeros from `position` to `end`: the rest of a staged block, then whole zero
    /// blocks and segments from their precomputed digests.
    private func zeros(upTo end: UInt64) {
        if !partial.isEmpty, position < end {
            // The staged block's remaining bytes are already zero: only the position moves.
            let blockEnd = (position / UInt64(Self.blockSize)) * UInt64(Self.blockSize) + UInt64(partial.count)
            let skip = min(blockEnd, end) - position
            position += skip
            if position == blockEnd {
                let digest = partial.withUnsafeBytes { Self.sha256($0) }
                partial = []
                appendBlockDigest(digest, blocks: 1)
            }
        }
        let block = UInt64(Self.blockSize)
        while position < end {
            if segmentBlocks.isEmpty, position % Self.segmentSize == 0, end - position >= Self.segmentSize {
                let count = (end - position) / Self.segmentSize
                Self.updateWithZeroSegments(disk, count: count)
                position += count * Self.segmentSize
            } else if end - position >= block || end == size {
                let length = blockLength(at: position)
                if length == Self.blockSize {
                    // As many whole zero blocks as fit before the segment's end.
                    let segmentLeft = Self.blocksPerSegment - segmentBlocks.count / Self.digestSize
                    let count = Int(min(UInt64(segmentLeft), (end - position) / block))
                    appendBlockDigest(Self.zeroBlockDigest, blocks: count)
                    position += UInt64(count) * block
                } else {
                    // The disk's last, short block.
                    appendBlockDigest(Self.sha256(zeros: length), blocks: 1)
                    position += UInt64(length)
                }
            } else {
                // Zeros that end inside a block: data follows in the same block.
                partial = [UInt8](repeating: 0, count: blockLength(at: position))
                position = end
            }
        }
    }

    private func appendBlockDigests(of blocks: UnsafeRawBufferPointer) {
        let count = blocks.count / Self.blockSize
        var digests = [UInt8](repeating: 0, count: count * Self.digestSize)
        digests.withUnsafeMutableBytes { output in
            // Each iteration reads its own block and writes its own 32 bytes of `output`.
            nonisolated(unsafe) let output = output, blocks = blocks
            DispatchQueue.concurrentPerform(iterations: count) { index in
                let block = UnsafeRawBufferPointer(rebasing: blocks[(index * Self.blockSize)..<((index + 1) * Self.blockSize)])
                let target = UnsafeMutableRawBufferPointer(rebasing: output[(index * Self.digestSize)..<((index + 1) * Self.digestSize)])
                Self.sha256(block, into: target)
            }
        }
        position += UInt64(blocks.count)
        for index in 0..<count {
            appendBlockDigest(Array(digests[(index * Self.digestSize)..<((index + 1) * Self.digestSize)]), blocks: 1)
        }
    }

    /// Appends `blocks` copies of one block digest, closing each segment as it fills.
    private func appendBlockDigest(_ digest: [UInt8], blocks: Int) {
        for _ in 0..<blocks {
            segmentBlocks += digest
            if segmentBlocks.count == Self.blocksPerSegment * Self.digestSize { closeSegment() }
        }
    }

    private func closeSegment() {
        disk.update(segmentBlocks.withUnsafeBytes { Self.sha256($0) })
        segmentBlocks.removeAll(keepingCapacity: true)
    }

    /// `count` zero segments' digests, hashed from a buffer of many copies: a huge hole costs
    /// SHA-256 over 32 bytes per 128 MiB and little else (2.3 s for 16 PiB).
    private static func updateWithZeroSegments(_ disk: Digest, count: UInt64) {
        zeroSegmentRun.withUnsafeBytes { run in
            var left = count
            while left > 0 {
                let n = Int(min(left, UInt64(run.count / digestSize)))
                disk.update(UnsafeRawBufferPointer(rebasing: run[0..<(n * digestSize)]))
                left -= UInt64(n)
            }
        }
    }

    private static let zeroSegmentRun: [UInt8] = [[UInt8]](repeating: zeroSegmentDigest, count: 4096).flatMap { $0 }

    // MARK: - One-shot SHA-256

    private static func sha256(_ bytes: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) {
        var length: UInt32 = 0
        let ok = EVP_Digest(bytes.baseAddress, bytes.count, output.baseAddress!.assumingMemoryBound(to: UInt8.self), &length, EVP_sha256(), nil)
        precondition(ok == 1 && length == 32, "EVP_Digest(SHA-256) failed")
    }

    private static func sha256(_ bytes: UnsafeRawBufferPointer) -> [UInt8] {
        var digest = [UInt8](repeating: 0, count: digestSize)
        digest.withUnsafeMutableBytes { sha256(bytes, into: $0) }
        return digest
    }

    private static func sha256(zeros count: Int) -> [UInt8] {
        [UInt8](repeating: 0, count: count).withUnsafeBytes { sha256($0) }
    }
}

extension DiskDigest {
    /// The digest of a disk that can be read at any offset from any thread, such as a mapped raw
    /// file: the segments that hold data are hashed in parallel, one task each, so the zero checks
    /// and the hashing use every core even when the data is in many small runs; the others are zero
    /// segments. `dataRanges` are sorted and disjoint, and the disk reads as zeros outside them;
    /// `read` gives the bytes of a range of the disk.
    /// `known` may give the digest of a block (by index) hashed earlier, which is then not read.
    public static func digest(size: UInt64, dataRanges: [Range<UInt64>], known: @Sendable (Int) -> [UInt8]? = { _ in nil },
                              read: @Sendable (Range<UInt64>) -> UnsafeRawBufferPointer) -> String {
        let segmentCount = Int((size + segmentSize - 1) / segmentSize)
        // The segments that hold data, each with the data ranges that touch it.
        var work: [(segment: Int, ranges: [Range<UInt64>])] = []
        for range in dataRanges where !range.isEmpty {
            let first = Int(range.lowerBound / segmentSize), last = Int((min(range.upperBound, size) - 1) / segmentSize)
            guard first <= last else { continue }
            for segment in first...last {
                if work.last?.segment == segment { work[work.count - 1].ranges.append(range) } else { work.append((segment, [range])) }
            }
        }
        var digests = [UInt8](repeating: 0, count: work.count * digestSize)
        digests.withUnsafeMutableBytes { output in
            // Each task writes its own 32 bytes of `output`.
            nonisolated(unsafe) let output = output
            let work = work
            DispatchQueue.concurrentPerform(iterations: work.count) { index in
                let digest = segmentDigest(work[index].segment, of: size, dataRanges: work[index].ranges, known: known, read: read)
                UnsafeMutableRawBufferPointer(rebasing: output[(index * digestSize)..<((index + 1) * digestSize)]).copyBytes(from: digest)
            }
        }
        let disk = Digest(.sha256)
        var segment = 0
        for (index, item) in work.enumerated() {
            updateWithZeroSegments(disk, count: UInt64(item.segment - segment))
            disk.update(Array(digests[(index * digestSize)..<((index + 1) * digestSize)]))
            segment = item.segment + 1
        }
        let wholeSegments = Int(size / segmentSize)
        if segment < wholeSegments {
            updateWithZeroSegments(disk, count: UInt64(wholeSegments - segment))
            segment = wholeSegments
        }
        if segment < segmentCount {
            // The last, shorter segment, all zeros.
            disk.update(segmentDigest(segment, of: size, dataRanges: [], known: { _ in nil }, read: read))
        }
        return disk.finish()
    }

    /// One segment's digest: each block that meets no data range, or holds only zeros, gets the
    /// precomputed digest.
    private static func segmentDigest(_ segment: Int, of size: UInt64, dataRanges: [Range<UInt64>],
                                      known: (Int) -> [UInt8]?, read: (Range<UInt64>) -> UnsafeRawBufferPointer) -> [UInt8] {
        let start = UInt64(segment) * segmentSize, end = min(size, start + segmentSize)
        var blocks: [UInt8] = []
        blocks.reserveCapacity(blocksPerSegment * digestSize)
        var rangeIndex = 0
        var offset = start
        while offset < end {
            let blockEnd = min(end, offset + UInt64(blockSize))
            while rangeIndex < dataRanges.count, dataRanges[rangeIndex].upperBound <= offset { rangeIndex += 1 }
            let touched = rangeIndex < dataRanges.count && dataRanges[rangeIndex].lowerBound < blockEnd
            if !touched {
                blocks += blockEnd - offset == UInt64(blockSize) ? zeroBlockDigest : sha256(zeros: Int(blockEnd - offset))
            } else if let digest = known(Int(offset / UInt64(blockSize))) {
                blocks += digest
            } else {
                blocks += blockDigest(read(offset..<blockEnd))
            }
            offset = blockEnd
        }
        return blocks.withUnsafeBytes { sha256($0) }
    }

    /// The digest of one block's bytes; an all-zero block's is precomputed.
    public static func blockDigest(_ bytes: UnsafeRawBufferPointer) -> [UInt8] {
        guard isAllZero(bytes) else { return sha256(bytes) }
        return bytes.count == blockSize ? zeroBlockDigest : sha256(zeros: bytes.count)
    }

    private static func isAllZero(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var index = 0
        // Eight bytes at a time where the buffer allows it; the loads are unaligned-safe.
        while index + 8 <= bytes.count {
            if bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self) != 0 { return false }
            index += 8
        }
        while index < bytes.count {
            if bytes[index] != 0 { return false }
            index += 1
        }
        return true
    }
}
