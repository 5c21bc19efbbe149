import CZstd

/// One zstd frame, decoded by the streaming API: the frame header's content size may be absent
/// or false, so output is grown chunk by chunk up to the caller's limit.
enum ZstdMember {
    static func decode(_ input: UnsafeRawBufferPointer, name: String, baseOffset: UInt64,
                       limit: Int) throws(StreamCompressionError) -> (output: [UInt8], consumed: Int) {
        guard let source = input.baseAddress, input.count > 0 else {
            throw .truncated(name: name, offset: baseOffset, format: .zstd)
        }
        // The frame's length when the frame is well formed; otherwise decode everything and let
        // the decoder say where it breaks (truncation or corruption).
        let frameSize = ZSTD_findFrameCompressedSize(source, input.count)
        let feed = ZSTD_isError(frameSize) == 0 ? frameSize : input.count
        guard let context = ZSTD_createDCtx() else {
            throw .library(name: name, format: .zstd, operation: "ZSTD_createDCtx", code: 0)
        }
        defer { ZSTD_freeDCtx(context) }
        // 2^27: the library's default window limit, stated so a hostile header cannot raise it.
        _ = ZSTD_DCtx_setParameter(context, ZSTD_d_windowLogMax, 27)
        var output = BoundedOutput(limit: limit, format: .zstd, name: name)
        var chunk = [UInt8](repeating: 0, count: streamChunkSize)
        var inBuffer = ZSTD_inBuffer(src: source, size: feed, pos: 0)
        while true {
            let (result, produced) = chunk.withUnsafeMutableBytes { out -> (Int, Int) in
                var outBuffer = ZSTD_outBuffer(dst: out.baseAddress, size: out.count, pos: 0)
                let result = ZSTD_decompressStream(context, &outBuffer, &inBuffer)
                return (result, outBuffer.pos)
            }
            let offset = baseOffset + UInt64(inBuffer.pos)
            if ZSTD_isError(result) != 0 {
                throw .corrupt(name: name, offset: offset, format: .zstd, detail: String(cString: ZSTD_getErrorName(result)))
            }
            try output.append(chunk, count: produced)
            // 0: the frame is complete and all of its output flushed.
            if result == 0 { return (output.bytes, inBuffer.pos) }
            if inBuffer.pos == inBuffer.size && produced < chunk.count {
                throw .truncated(name: name, offset: offset, format: .zstd)
            }
        }
    }
}
