import CZlib
import ImageCore

/// One gzip member at a time, for formats that put other data after it (initramfs images append
/// members; a kernel reads each to its end and continues after it).
public enum GzipMember {
    /// Inflates the single gzip member that starts at `input[0]`. Returns the contents and the
    /// member's length in bytes (zlib's `total_in` at `Z_STREAM_END`), so a caller can continue
    /// after it. More than `limit` bytes of output throw `outputTooLarge`: the output grows as it
    /// is produced, never by a size the member claims.
    public static func inflate(_ input: UnsafeRawBufferPointer, limit: Int,
                               name: String) throws(ZlibError) -> (output: [UInt8], consumed: Int) {
        var stream = z_stream()
        // 16 + 15: a gzip wrapper only (no zlib header), the largest window.
        let initCode = rehost_inflateInit2(&stream, 16 + 15)
        guard initCode == Z_OK else { throw .library(name: name, operation: "inflateInit2", code: initCode) }
        defer { inflateEnd(&stream) }
        let chunkSize = 256 * 1024
        var chunk = [UInt8](repeating: 0, count: chunkSize)
        var output: [UInt8] = []
        var consumed = 0
        // avail_in is 32 bits wide: feed inputs above 4 GiB in slices.
        let slice = Int(UInt32.max / 2)
        while true {
            let feed = min(input.count - consumed, slice)
            stream.next_in = feed == 0 ? nil : UnsafeMutablePointer(
                mutating: input.baseAddress.map { ($0 + consumed).assumingMemoryBound(to: Bytef.self) })
            stream.avail_in = uInt(feed)
            let (code, produced, used) = chunk.withUnsafeMutableBytes { out -> (Int32, Int, Int) in
                stream.next_out = out.baseAddress?.assumingMemoryBound(to: Bytef.self)
                stream.avail_out = uInt(out.count)
                let code = CZlib.inflate(&stream, Z_NO_FLUSH)
                return (code, out.count - Int(stream.avail_out), feed - Int(stream.avail_in))
            }
            consumed += used
            if produced > 0 {
                guard produced <= limit - output.count else { throw .outputTooLarge(name: name, capacity: limit) }
                output.append(contentsOf: chunk[0..<produced])
            }
            switch code {
            case Z_STREAM_END:
                return (output, consumed)
            case Z_OK:
                continue
            case Z_BUF_ERROR:
                // No progress possible: all input is gone and the member has not ended.
                if consumed == input.count { throw .truncated(name: name, compressedOffset: UInt64(consumed)) }
                if produced == 0 && used == 0 {
                    throw .library(name: name, operation: "inflate (no progress)", code: code)
                }
            case Z_MEM_ERROR:
                throw .library(name: name, operation: "inflate", code: code)
            case Z_NEED_DICT:
                throw .corrupt(name: name, compressedOffset: UInt64(consumed), reason: "needs a preset dictionary")
            default:
                let reason = stream.msg.map { String(cString: $0) } ?? "zlib error \(code)"
                throw .corrupt(name: name, compressedOffset: UInt64(consumed), reason: reason)
            }
            if consumed == input.count && produced < chunkSize {
                // inflate produced less than it could with no input left: it needs more.
                throw .truncated(name: name, compressedOffset: UInt64(consumed))
            }
        }
    }

    /// One gzip member of `data`: header with mtime 0 and no name, OS byte 3 (Unix), as
    /// `gzip -n` writes; zlib's own deflate, so every kernel's inflate reads it.
    public static func deflate(_ data: [UInt8], level: Int32 = 9) -> [UInt8] {
        // windowBits 16 + 15 asks zlib for the gzip wrapper; it leaves mtime 0 and writes
        // OS_CODE 3 on Unix when no gz_header is set.
        data.withUnsafeBytes { Deflate.compress($0, level: level, raw: false, windowBits: 16 + 15) }
    }
}
