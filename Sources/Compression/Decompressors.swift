import CDeflate
import CZstd

/// Per-cluster decompressors, the inverse of `Compressor`: pure functions that fill a caller's
/// buffer, safe to run on many threads at once, so readers can inflate clusters in parallel.
public enum Decompressor: String, Sendable, CaseIterable {
    /// Raw deflate (RFC 1951), any window: qcow2's zlib compression type.
    case rawDeflate
    /// zlib-wrapped deflate (RFC 1950): VMDK grains.
    case zlib
    /// One zstd frame: qcow2's zstd compression type.
    case zstd

    /// Decompresses the one stream at the start of `input` into `output`. Bytes after the end of
    /// the stream are ignored (formats pad compressed data to a sector). Returns the number of
    /// bytes produced, or nil when the data is corrupt or would not fit in `output`.
    public func decompress(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) -> Int? {
        guard let source = input.baseAddress, let target = output.baseAddress else { return nil }
        switch self {
        case .rawDeflate, .zlib:
            guard let decompressor = libdeflate_alloc_decompressor() else { return nil }
            defer { libdeflate_free_decompressor(decompressor) }
            var consumed = 0
            var produced = 0
            let result = self == .zlib
                ? libdeflate_zlib_decompress_ex(decompressor, source, input.count, target, output.count, &consumed, &produced)
                : libdeflate_deflate_decompress_ex(decompressor, source, input.count, target, output.count, &consumed, &produced)
            return result == LIBDEFLATE_SUCCESS ? produced : nil
        case .zstd:
            let frame = ZSTD_findFrameCompressedSize(source, input.count)
            guard ZSTD_isError(frame) == 0 else { return nil }
            let produced = ZSTD_decompress(target, output.count, source, frame)
            return ZSTD_isError(produced) == 0 ? produced : nil
        }
    }
}
