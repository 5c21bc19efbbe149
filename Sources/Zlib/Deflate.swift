import CZlib
import ImageCore

/// One-shot deflate and inflate of independent blocks (qcow2 clusters, VMDK grains). Each call
/// owns its own z_stream, so these are pure functions that may run on several threads at once.
public enum Deflate {
    /// Compresses `input` as a zlib stream, or as raw deflate when `raw` is true.
    public static func compress(_ input: UnsafeRawBufferPointer, level: Int32, raw: Bool) -> [UInt8] {
        compress(input, level: level, raw: raw, windowBits: 15)
    }

    /// `windowBits` 9...15 bounds match distances: qcow2 readers inflate with a 4 KiB window (12),
    /// so data written for them must be compressed with that window or smaller.
    public static func compress(_ input: UnsafeRawBufferPointer, level: Int32, raw: Bool,
                                windowBits: Int32) -> [UInt8] {
        var stream = z_stream()
        let bits = raw ? -windowBits : windowBits
        // Only invalid parameters or out-of-memory fail here; both are programming errors.
        precondition(rehost_deflateInit2(&stream, level, Z_DEFLATED, bits, 8, Z_DEFAULT_STRATEGY) == Z_OK,
                     "deflateInit2 rejected level \(level), windowBits \(bits)")
        defer { deflateEnd(&stream) }
        let bound = Int(deflateBound(&stream, uLong(input.count)))
        var output = [UInt8](repeating: 0, count: bound)
        let written = output.withUnsafeMutableBytes { out -> Int in
            stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress?.assumingMemoryBound(to: Bytef.self))
            stream.avail_in = uInt(input.count)
            stream.next_out = out.baseAddress!.assumingMemoryBound(to: Bytef.self)
            stream.avail_out = uInt(out.count)
            let code = deflate(&stream, Z_FINISH)
            // deflateBound guarantees room for a single Z_FINISH call.
            precondition(code == Z_STREAM_END, "deflate with a deflateBound buffer returned \(code)")
            return out.count - Int(stream.avail_out)
        }
        output.removeLast(output.count - written)
        return output
    }

    /// Inflates one zlib (or raw deflate) stream holding at most `capacity` bytes. Bytes after the
    /// end of the stream are ignored (qcow2 pads compressed clusters to a sector).
    public static func decompress(_ input: UnsafeRawBufferPointer, raw: Bool, capacity: Int,
                                  windowBits: Int32 = 15, name: String = "deflate data") throws -> [UInt8] {
        var stream = z_stream()
        let bits = raw ? -windowBits : windowBits
        let initCode = rehost_inflateInit2(&stream, bits)
        guard initCode == Z_OK else { throw ZlibError.library(name: name, operation: "inflateInit2", code: initCode) }
        defer { inflateEnd(&stream) }
        // One spare byte tells "exactly capacity" apart from "more than capacity".
        var output = [UInt8](repeating: 0, count: capacity + 1)
        let (code, written, consumed) = output.withUnsafeMutableBytes { out -> (Int32, Int, Int) in
            stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress?.assumingMemoryBound(to: Bytef.self))
            stream.avail_in = uInt(input.count)
            stream.next_out = out.baseAddress!.assumingMemoryBound(to: Bytef.self)
            stream.avail_out = uInt(out.count)
            let code = inflate(&stream, Z_FINISH)
            return (code, out.count - Int(stream.avail_out), input.count - Int(stream.avail_in))
        }
        switch code {
        case Z_STREAM_END:
            break
        case Z_BUF_ERROR where written > capacity:
            throw ZlibError.outputTooLarge(name: name, capacity: capacity)
        case Z_BUF_ERROR:
            throw ZlibError.truncated(name: name, compressedOffset: UInt64(consumed))
        default:
            let reason = stream.msg.map { String(cString: $0) } ?? "zlib error \(code)"
            throw ZlibError.corrupt(name: name, compressedOffset: UInt64(consumed), reason: reason)
        }
        if written > capacity { throw ZlibError.outputTooLarge(name: name, capacity: capacity) }
        output.removeLast(output.count - written)
        return output
    }
}
