import CBzip2

/// One bzip2 stream through the streaming `BZ2_bzDecompress` API, which (unlike the one-shot
/// `BZ2_bzBuffToBuffDecompress`) tells how many input bytes the stream used.
enum Bzip2Member {
    static func decode(_ input: UnsafeRawBufferPointer, name: String, baseOffset: UInt64,
                       limit: Int) throws(StreamCompressionError) -> (output: [UInt8], consumed: Int) {
        var stream = bz_stream()
        let initCode = BZ2_bzDecompressInit(&stream, 0, 0)
        guard initCode == BZ_OK else {
            throw .library(name: name, format: .bzip2, operation: "BZ2_bzDecompressInit", code: initCode)
        }
        defer { BZ2_bzDecompressEnd(&stream) }
        var output = BoundedOutput(limit: limit, format: .bzip2, name: name)
        var chunk = [UInt8](repeating: 0, count: streamChunkSize)
        var consumed = 0
        // avail_in is 32 bits wide: feed large inputs in slices.
        let slice = Int(UInt32.max / 2)
        while true {
            let feed = min(input.count - consumed, slice)
            stream.next_in = feed == 0 ? nil : UnsafeMutablePointer(
                mutating: input.baseAddress.map { ($0 + consumed).assumingMemoryBound(to: CChar.self) })
            stream.avail_in = UInt32(feed)
            let (code, produced) = chunk.withUnsafeMutableBytes { out -> (Int32, Int) in
                stream.next_out = out.baseAddress?.assumingMemoryBound(to: CChar.self)
                stream.avail_out = UInt32(out.count)
                let code = BZ2_bzDecompress(&stream)
                return (code, out.count - Int(stream.avail_out))
            }
            consumed += feed - Int(stream.avail_in)
            try output.append(chunk, count: produced)
            let offset = baseOffset + UInt64(consumed)
            switch code {
            case BZ_STREAM_END:
                return (output.bytes, consumed)
            case BZ_OK:
                // libbz2 fills the output before it asks for input.
                if consumed == input.count && produced < chunk.count {
                    throw .truncated(name: name, offset: offset, format: .bzip2)
                }
            case BZ_DATA_ERROR_MAGIC:
                throw .corrupt(name: name, offset: offset, format: .bzip2, detail: "no bzip2 stream header (magic \"BZh\")")
            case BZ_DATA_ERROR:
                throw .corrupt(name: name, offset: offset, format: .bzip2, detail: "invalid compressed data or block CRC mismatch")
            default:
                throw .library(name: name, format: .bzip2, operation: "BZ2_bzDecompress", code: code)
            }
        }
    }
}
