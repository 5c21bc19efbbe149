import CLzma

/// xz streams (`lzma_stream_decoder`) and lzma-alone streams (`lzma_alone_decoder`), one at a
/// time: no LZMA_CONCATENATED, so the decoder stops at the end of the first stream and
/// `total_in` is the member's length. xz stream padding (zeros) after it is left to the caller.
enum LzmaMember {
    /// The most memory a hostile header can make liblzma allocate (dictionary plus state).
    /// `xz -9` and `lzma -9` need 65 MiB to decode; 512 MiB leaves room for unusual settings.
    static let memoryLimit: UInt64 = 512 << 20

    static func decode(_ input: UnsafeRawBufferPointer, format: StreamCompression, name: String,
                       baseOffset: UInt64, limit: Int) throws(StreamCompressionError) -> (output: [UInt8], consumed: Int) {
        var stream = lzma_stream()
        // Flags 0: checks of unknown types are skipped, known ones (CRC32, CRC64, SHA-256) verified.
        let initCode = format == .xz
            ? lzma_stream_decoder(&stream, memoryLimit, 0)
            : lzma_alone_decoder(&stream, memoryLimit)
        guard initCode == LZMA_OK else {
            throw .library(name: name, format: format, operation: format == .xz ? "lzma_stream_decoder" : "lzma_alone_decoder",
                           code: Int32(initCode.rawValue))
        }
        defer { lzma_end(&stream) }
        var output = BoundedOutput(limit: limit, format: format, name: name)
        var chunk = [UInt8](repeating: 0, count: streamChunkSize)
        stream.next_in = input.baseAddress?.assumingMemoryBound(to: UInt8.self)
        stream.avail_in = input.count
        while true {
            let before = stream.avail_in
            let (code, produced) = chunk.withUnsafeMutableBytes { out -> (lzma_ret, Int) in
                stream.next_out = out.baseAddress?.assumingMemoryBound(to: UInt8.self)
                stream.avail_out = out.count
                let code = lzma_code(&stream, LZMA_RUN)
                return (code, out.count - stream.avail_out)
            }
            try output.append(chunk, count: produced)
            let consumed = input.count - stream.avail_in
            let offset = baseOffset + UInt64(consumed)
            switch code {
            case LZMA_STREAM_END:
                return (output.bytes, consumed)
            case LZMA_OK:
                // liblzma fills the output before it asks for input: a chunk left unfilled with
                // no input left means the stream needs bytes that are not there.
                if stream.avail_in == 0 && produced < chunk.count { throw .truncated(name: name, offset: offset, format: format) }
            case LZMA_BUF_ERROR:
                if stream.avail_in == 0 || before == stream.avail_in && produced == 0 {
                    throw .truncated(name: name, offset: offset, format: format)
                }
            case LZMA_FORMAT_ERROR:
                throw .corrupt(name: name, offset: offset, format: format, detail: format == .xz
                               ? "no xz stream header (magic fd 37 7a 58 5a 00)" : "not an lzma-alone header")
            case LZMA_OPTIONS_ERROR:
                throw .corrupt(name: name, offset: offset, format: format, detail: "unsupported or invalid compression options")
            case LZMA_DATA_ERROR:
                throw .corrupt(name: name, offset: offset, format: format, detail: "invalid compressed data")
            case LZMA_MEMLIMIT_ERROR:
                throw .unsupported(name: name, format: format, advice:
                    "the stream needs more than \(memoryLimit >> 20) MiB to decode (dictionary size in its header)")
            default:
                throw .library(name: name, format: format, operation: "lzma_code", code: Int32(code.rawValue))
            }
        }
    }
}
