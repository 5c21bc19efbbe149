import CDeflate
import Dispatch
import CZstd
import ImageCore
import Zlib
#if canImport(Glibc)
import Glibc
#endif

/// Per-cluster compressors: pure functions of their input, safe to call from many threads at
/// once (each call owns its compressor state), so writers can compress clusters in parallel while
/// they themselves stay single-threaded.
public enum Compressor: String, Sendable, CaseIterable {
    /// zlib's raw deflate with a 4 KiB window: what qcow2 readers (qemu) inflate with.
    case zlibRawDeflate4K
    /// zlib-wrapped deflate (RFC 1950) by libdeflate: VMDK grains.
    case libdeflateZlib
    /// zlib-wrapped deflate by zlib itself, for comparison.
    case zlibZlib
    /// zstd frames: qcow2's zstd compression type.
    case zstd

    /// Compresses `input`; nil when the result would not be smaller than `limit` bytes (callers
    /// then store the data uncompressed).
    public func compress(_ input: UnsafeRawBufferPointer, level: Int32, limit: Int) -> [UInt8]? {
        switch self {
        case .zlibRawDeflate4K:
            let out = Deflate.compress(input, level: level, raw: true, windowBits: 12)
            return out.count < limit ? out : nil
        case .zlibZlib:
            let out = Deflate.compress(input, level: level, raw: false)
            return out.count < limit ? out : nil
        case .libdeflateZlib:
            guard let compressor = libdeflate_alloc_compressor(level) else { return nil }
            defer { libdeflate_free_compressor(compressor) }
            var out = [UInt8](repeating: 0, count: limit)
            let size = out.withUnsafeMutableBytes {
                libdeflate_zlib_compress(compressor, input.baseAddress, input.count, $0.baseAddress, limit)
            }
            guard size > 0, size < limit else { return nil }
            out.removeLast(out.count - size)
            return out
        case .zstd:
            var out = [UInt8](repeating: 0, count: max(limit, ZSTD_compressBound(input.count)))
            let size = out.withUnsafeMutableBytes {
                ZSTD_compress($0.baseAddress, $0.count, input.baseAddress, input.count, level)
            }
            guard ZSTD_isError(size) == 0, size < limit else { return nil }
            out.removeLast(out.count - size)
            return out
        }
    }
}

/// Runs `body` for 0..<count on all cores and returns the results in order. `body` must be a
/// pure function of its index (compression of one cluster), which is what makes this safe.
public func parallelMap<T>(_ count: Int, _ body: (Int) -> T) -> [T] {
    guard count > 0 else { return [] }
    return [T](unsafeUninitializedCapacity: count) { buffer, initialized in
        nonisolated(unsafe) let base = buffer.baseAddress!
        withoutActuallyEscaping(body) { body in
            nonisolated(unsafe) let body = body
            DispatchQueue.concurrentPerform(iterations: count) { index in
                (base + index).initialize(to: body(index))
            }
        }
        initialized = count
    }
}

/// Recognises data that will not compress (already compressed or encrypted files, random
/// bytes), so writers can skip the compressor, which spends most of a compressed conversion's
/// time failing on such data: qcow2 then stores the cluster as is, and a VMDK grain goes into
/// stored deflate blocks, which is what the compressor would have produced anyway.
///
/// Deflate gains in two ways, and each has a cheap test:
/// - Huffman coding gains when some byte values are more frequent than others: every 4 KiB
///   block must have a near-uniform byte histogram (random blocks measure about 7.955 bits per
///   byte; text about 4.5, machine code about 6).
/// - LZ77 gains when sequences repeat within the window: positions whose next four bytes already
///   occurred in the 4 KiB before are counted, through a small hash table. Random data has
///   practically none; a flat histogram in order (runs, cycles, a repeated block) has thousands.
///   Fewer than one per 256 bytes covers at most 1.6% of the input, so nothing worth having
///   is lost by not compressing.
public enum Incompressibility {
    static let blockSize = 4096
    static let entropyThreshold = 7.9
    static let window = 4096
    static let hashBits = 12

    /// `c * log2(c)` for every count a 4 KiB block can hold.
    private static let weights: [Double] = (0...blockSize).map { $0 == 0 ? 0 : Double($0) * log2(Double($0)) }

    public static func check(_ input: UnsafeRawBufferPointer) -> Bool {
        guard input.count >= blockSize, let base = input.baseAddress else { return false }
        return flatHistograms(input) && repeatedSequences(base, count: input.count, limit: input.count / 256) < input.count / 256
    }

    private static func flatHistograms(_ input: UnsafeRawBufferPointer) -> Bool {
        withUnsafeTemporaryAllocation(of: Int.self, capacity: 256) { counts in
            var start = 0
            while start + blockSize <= input.count {
                counts.initialize(repeating: 0)
                for byte in UnsafeRawBufferPointer(rebasing: input[start..<start + blockSize]) { counts[Int(byte)] += 1 }
                var weighted = 0.0
                for count in counts { weighted += weights[count] }
                if log2(Double(blockSize)) - weighted / Double(blockSize) < entropyThreshold { return false }
                start += blockSize
            }
            return true
        }
    }

    /// Positions whose four bytes occurred within the window before, counted up to `limit`.
    /// Each hash slot keeps the last position and its four bytes, packed in one word.
    private static func repeatedSequences(_ base: UnsafeRawPointer, count: Int, limit: Int) -> Int {
        withUnsafeTemporaryAllocation(of: UInt64.self, capacity: 1 << hashBits) { lastSeen in
            // Position 0 with a window check that cannot pass for the first `window` bytes.
            lastSeen.initialize(repeating: 0)
            var repeats = 0
            for position in 0..<(count - 3) {
                let word = base.loadUnaligned(fromByteOffset: position, as: UInt32.self)
                let slot = Int((word &* 2_654_435_761) >> UInt32(32 - hashBits))
                let entry = lastSeen[slot]
                let previous = Int(entry >> 32)
                if UInt32(truncatingIfNeeded: entry) == word, entry != 0, position - previous <= window {
                    repeats += 1
                    if repeats >= limit { return repeats }
                }
                lastSeen[slot] = UInt64(position) << 32 | UInt64(word)
            }
            return repeats
        }
    }
}
