import CLzma
import CZstd
import ImageCore
import Zlib

/// Streaming decompression of a whole compressed file (a `.raw.gz`, `.raw.xz`, `.raw.zst`):
/// feed compressed bytes in chunks of any size, take the output as it comes, then `finish`
/// says whether the stream was complete. Output is never held: the caller bounds it.
public protocol StreamDecoder: AnyObject {
    func decompress(_ input: UnsafeRawBufferPointer, output: (UnsafeRawBufferPointer) throws -> Void) throws
    /// Throws `truncated` unless the input ended at the end of a complete stream.
    func finish() throws
}

extension GzipDecompressor: StreamDecoder {}

extension StreamCompression {
    /// The whole-file decoder for gzip, xz (concatenated streams, as `xz -d`) and zstd
    /// (concatenated frames, as `zstd -d`); nil for the others.
    public func makeStreamDecoder(name: String) throws -> (any StreamDecoder)? {
        switch self {
        case .gzip: return try GzipDecompressor(name: name)
        case .xz: return try XzStreamDecoder(name: name)
        case .zstd: return try ZstdStreamDecoder(name: name)
        default: return nil
        }
    }
}

/// xz files by `lzma_stream_decoder` with LZMA_CONCATENATED: every stream to the end, stream
/// padding allowed; checks verified. The decoder's memory is capped as `LzmaMember`'s.
final class XzStreamDecoder: StreamDecoder {
    let name: String
    private var stream = lzma_stream()
    private let chunk: UnsafeMutableRawBufferPointer
    private var consumed: UInt64 = 0
    private var ended = false

    init(name: String) throws(StreamCompressionError) {
        self.name = name
        // 0x08: LZMA_CONCATENATED (a UINT32_C macro, not imported).
        let code = lzma_stream_decoder(&stream, LzmaMember.memoryLimit, 0x08)
        guard code == LZMA_OK else { throw .library(name: name, format: .xz, operation: "lzma_stream_decoder", code: Int32(code.rawValue)) }
        chunk = .allocate(byteCount: streamChunkSize, alignment: 16)
    }

    deinit {
        lzma_end(&stream)
        chunk.deallocate()
    }

    func decompress(_ input: UnsafeRawBufferPointer, output: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard let base = input.baseAddress, !input.isEmpty else { return }
        stream.next_in = base.assumingMemoryBound(to: UInt8.self)
        stream.avail_in = input.count
        while stream.avail_in > 0 && !ended { try run(LZMA_RUN, output: output) }
        if ended && stream.avail_in > 0 {
            throw StreamCompressionError.corrupt(name: name, offset: consumed, format: .xz, detail: "unexpected data after the end")
        }
    }

    func finish() throws {
        stream.next_in = nil
        stream.avail_in = 0
        while !ended { try run(LZMA_FINISH, output: { _ in }) }
    }

    private func run(_ action: lzma_action, output: (UnsafeRawBufferPointer) throws -> Void) throws {
        let before = stream.avail_in
        stream.next_out = chunk.baseAddress!.assumingMemoryBound(to: UInt8.self)
        stream.avail_out = chunk.count
        let code = lzma_code(&stream, action)
        consumed += UInt64(before - stream.avail_in)
        let produced = chunk.count - stream.avail_out
        if produced > 0 { try output(UnsafeRawBufferPointer(rebasing: chunk[0..<produced])) }
        switch code {
        case LZMA_OK:
            // Finishing with nothing more produced: the input stopped inside a stream.
            if action == LZMA_FINISH && produced == 0 { throw StreamCompressionError.truncated(name: name, offset: consumed, format: .xz) }
        case LZMA_STREAM_END:
            ended = true
        case LZMA_BUF_ERROR:
            throw StreamCompressionError.truncated(name: name, offset: consumed, format: .xz)
        case LZMA_FORMAT_ERROR:
            throw StreamCompressionError.corrupt(name: name, offset: consumed, format: .xz, detail: "no xz stream header")
        case LZMA_DATA_ERROR:
            throw StreamCompressionError.corrupt(name: name, offset: consumed, format: .xz, detail: "invalid compressed data")
        case LZMA_OPTIONS_ERROR:
            throw StreamCompressionError.corrupt(name: name, offset: consumed, format: .xz, detail: "unsupported or invalid compression options")
        case LZMA_MEMLIMIT_ERROR:
            throw StreamCompressionError.unsupported(name: name, format: .xz, advice:
                "the stream needs more than \(LzmaMember.memoryLimit >> 20) MiB to decode (dictionary size in its header)")
        default:
            throw StreamCompressionError.library(name: name, format: .xz, operation: "lzma_code", code: Int32(code.rawValue))
        }
    }
}

/// zstd files by `ZSTD_decompressStream`: every frame to the end (skippable frames too), the
/// window capped at 2^27 as `ZstdMember` does, so a hostile header cannot claim more memory.
final class ZstdStreamDecoder: StreamDecoder {
    let name: String
    private let context: OpaquePointer
    private let chunk: UnsafeMutableRawBufferPointer
    private var consumed: UInt64 = 0
    /// ZSTD_decompressStream's last hint: 0 when a frame has just ended.
    private var pending = 0
    private var sawInput = false

    init(name: String) throws(StreamCompressionError) {
        self.name = name
        guard let context = ZSTD_createDCtx() else { throw .library(name: name, format: .zstd, operation: "ZSTD_createDCtx", code: 0) }
        self.context = context
        _ = ZSTD_DCtx_setParameter(context, ZSTD_d_windowLogMax, 27)
        chunk = .allocate(byteCount: ZSTD_DStreamOutSize(), alignment: 16)
    }

    deinit {
        ZSTD_freeDCtx(context)
        chunk.deallocate()
    }

    func decompress(_ input: UnsafeRawBufferPointer, output: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard !input.isEmpty else { return }
        sawInput = true
        var inBuffer = ZSTD_inBuffer(src: input.baseAddress, size: input.count, pos: 0)
        while true {
            var outBuffer = ZSTD_outBuffer(dst: chunk.baseAddress, size: chunk.count, pos: 0)
            let before = inBuffer.pos
            let result = ZSTD_decompressStream(context, &outBuffer, &inBuffer)
            consumed += UInt64(inBuffer.pos - before)
            if ZSTD_isError(result) != 0 {
                throw StreamCompressionError.corrupt(name: name, offset: consumed, format: .zstd,
                                                     detail: String(cString: ZSTD_getErrorName(result)))
            }
            // A call that neither took nor gave a byte (the output filled exactly before) only
            // says how much the next frame's header needs: not a truncation.
            if inBuffer.pos > before || outBuffer.pos > 0 { pending = result } else { return }
            if outBuffer.pos > 0 { try output(UnsafeRawBufferPointer(rebasing: chunk[0..<outBuffer.pos])) }
            // Done with this input once it is consumed and the output buffer was not filled.
            if inBuffer.pos == inBuffer.size && outBuffer.pos < outBuffer.size { return }
        }
    }

    func finish() throws {
        guard sawInput, pending == 0 else { throw StreamCompressionError.truncated(name: name, offset: consumed, format: .zstd) }
    }
}
