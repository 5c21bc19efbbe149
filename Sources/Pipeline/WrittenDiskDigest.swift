import Digests
import Dispatch
import Ext2
import ImageCore
import ImageFormats
import Synchronization

/// The disk digest of the raw disk `convert` builds, hashed while libext2fs writes it.
///
/// The copy keeps one core busy and leaves the other idle; this puts the idle one to work. Every
/// write the new filesystems make is reported (`Ext2WriteObserver`). A 64 KiB block whose every
/// sector has been written directly (its bytes in the file) is read back from the page cache and
/// hashed on another thread. A block written again afterwards, or written through libext2fs's
/// cache (its bytes reach the file later, out of sight), or discarded, is tainted: whatever was
/// hashed for it is dropped, and `finish` hashes it from the finished file, with every block no
/// write reached. File data written once, most of a disk, is thus hashed during the copy; the
/// metadata libext2fs rewrites (inode tables, bitmaps, directories) at the end.
final class WrittenDiskDigest: Ext2WriteObserver {
    private struct State {
        /// Blocks partly written directly: a bit per 512-byte sector.
        var sectors: [Int: (UInt64, UInt64)] = [:]
        /// Blocks whose bytes are only final once the disk is complete.
        var tainted = Set<Int>()
        /// Blocks that have been whole: queued, being hashed, or hashed.
        var whole = Set<Int>()
        /// Whole blocks waiting for the hashing thread.
        var ready: [Int] = []
        var digests: [Int: [UInt8]] = [:]
        /// Set when the bookkeeping passes its bound: `finish` then hashes everything.
        var gaveUp = false
    }

    private static let blockSize = UInt64(DiskDigest.blockSize)
    /// Blocks handed to the hashing thread at a time (1 MiB).
    private static let batch = 16
    /// The most blocks tracked (64 GiB of data): memory stays bounded on any disk.
    private static let maxTrackedBlocks = 1 << 20

    private let size: UInt64
    /// Read only on the hashing thread (pread), never written.
    nonisolated(unsafe) private let file: RawFile
    private let state = Mutex(State())
    private let hashing = DispatchQueue(label: "rehost.written-disk-digest")

    init(path: String, size: UInt64) throws {
        self.size = size
        file = try RawFile(path: path, mode: .readOnly)
    }

    func didWrite(_ range: Range<UInt64>, direct: Bool) {
        guard !range.isEmpty else { return }
        let first = Int(range.lowerBound / Self.blockSize), last = Int((range.upperBound - 1) / Self.blockSize)
        var batch: [Int] = []
        state.withLock { state in
            guard !state.gaveUp else { return }
            for block in first...last {
                let blockStart = UInt64(block) * Self.blockSize
                let start = max(range.lowerBound, blockStart), end = min(range.upperBound, blockStart + Self.blockSize)
                Self.record(block, written: (start - blockStart)..<(end - blockStart), direct: direct, in: &state)
            }
            if state.ready.count >= Self.batch {
                batch = state.ready
                state.ready.removeAll(keepingCapacity: true)
            }
            if state.sectors.count + state.tainted.count + state.whole.count > Self.maxTrackedBlocks {
                state = State(gaveUp: true)
            }
        }
        if !batch.isEmpty { hash(batch) }
    }

    private static func record(_ block: Int, written: Range<UInt64>, direct: Bool, in state: inout State) {
        if state.tainted.contains(block) { return }
        let sectorAligned = written.lowerBound % 512 == 0 && written.upperBound % 512 == 0
        // A block written again once whole (queued, being hashed or hashed), or not written
        // straight to the file.
        guard direct, sectorAligned, !state.whole.contains(block) else {
            state.tainted.insert(block)
            state.sectors[block] = nil
            state.digests[block] = nil
            return
        }
        var bits = state.sectors[block] ?? (0, 0)
        for sector in (written.lowerBound / 512)..<(written.upperBound / 512) {
            if sector < 64 { bits.0 |= 1 << sector } else { bits.1 |= 1 << (sector - 64) }
        }
        if bits == (UInt64.max, UInt64.max) {
            state.sectors[block] = nil
            state.whole.insert(block)
            state.ready.append(block)
        } else {
            state.sectors[block] = bits
        }
    }

    /// Hashes whole blocks on the hashing thread, from the page cache the writes have just filled.
    private func hash(_ blocks: [Int]) {
        hashing.async { [self] in
            var buffer = [UInt8](repeating: 0, count: DiskDigest.blockSize)
            var results: [(Int, [UInt8])] = []
            for block in blocks {
                let offset = UInt64(block) * Self.blockSize
                guard offset + Self.blockSize <= size else { continue }
                let got = try? buffer.withUnsafeMutableBytes { try file.read(into: $0, at: offset) }
                guard got == DiskDigest.blockSize else { continue }
                results.append((block, buffer.withUnsafeBytes { DiskDigest.blockDigest($0) }))
            }
            state.withLock { state in
                for (block, digest) in results where !state.tainted.contains(block) { state.digests[block] = digest }
            }
        }
    }

    /// Waits until every block queued so far is hashed (for tests that need a known order).
    func waitForHashing() {
        let last = state.withLock { state -> [Int] in
            defer { state.ready.removeAll() }
            return state.ready
        }
        if !last.isEmpty { hash(last) }
        hashing.sync {}
    }

    /// The digest of the finished disk, read through `reader` (opened on it once every
    /// filesystem is closed) where no hash from the copy holds.
    func finish(reading reader: RawDiskReader) -> String {
        waitForHashing()
        let known = state.withLock { state in state.gaveUp ? [:] : state.digests.filter { !state.tainted.contains($0.key) } }
        // The mapping is read-only and outlives the digest.
        nonisolated(unsafe) let mapped = reader
        return DiskDigest.digest(size: size, dataRanges: reader.dataRanges, known: { known[$0] }) { mapped.bytes($0) }
    }
}
