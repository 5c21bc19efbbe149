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
public enum Incompressibility {
    static let blockSize = 4096
    /// Random 4 KiB blocks measure about 7.955 bits per byte; text about 4.5, code about 6.
    static let entropyThreshold = 7.9
    /// The fast confirmation must not save even 3%.
    static let confirmRatio = 0.97

    /// `c * log2(c)` for every count a 4 KiB block can hold.
    private static let weights: [Double] = (0...blockSize).map { $0 == 0 ? 0 : Double($0) * log2(Double($0)) }

    /// True when every 4 KiB block of `input` has a near-uniform byte histogram and a fast
    /// libdeflate pass (32 KiB window, which finds at least the matches a smaller window would)
    /// cannot shrink the whole by 3%. The histogram alone would miss ordered data such as runs of
    /// each byte value, which the confirmation catches.
    public static func check(_ input: UnsafeRawBufferPointer) -> Bool {
        guard input.count >= blockSize else { return false }
        var counts = [Int](repeating: 0, count: 256)
        var start = 0
        while start + blockSize <= input.count {
            for index in counts.indices { counts[index] = 0 }
            for byte in UnsafeRawBufferPointer(rebasing: input[start..<start + blockSize]) { counts[Int(byte)] += 1 }
            var weighted = 0.0
            for count in counts { weighted += weights[count] }
            let entropy = log2(Double(blockSize)) - weighted / Double(blockSize)
            if entropy < entropyThreshold { return false }
            start += blockSize
        }
        guard let compressor = libdeflate_alloc_compressor(1) else { return false }
        defer { libdeflate_free_compressor(compressor) }
        let limit = Int(Double(input.count) * confirmRatio)
        let output = UnsafeMutableRawBufferPointer.allocate(byteCount: limit, alignment: 16)
        defer { output.deallocate() }
        return libdeflate_deflate_compress(compressor, input.baseAddress, input.count, output.baseAddress, limit) == 0
    }
}
