import CDeflate
import ImageCore
import Zlib

/// The compressors a Linux kernel unpacks initramfs members with, and that kernel modules are
/// shipped in (.ko.gz, .ko.xz, .ko.zst).
///
/// Each member is decoded on its own, so a caller walking an initramfs learns where the member
/// ends and can continue after it:
/// ```
/// [gzip member][00 00][xz stream][zstd frame][lz4 legacy: 02 21 4c 18 {le32 size, block}...]
///  ^ decompressMember(...) -> (output, consumed) -> next member at consumed (+ zero padding)
/// ```
/// Output is capped by the caller's `limit` and grows only as it is produced: sizes written in
/// headers (zstd content size, lzma-alone size) are never trusted for allocations.
public enum StreamCompression: String, Sendable, CaseIterable, Codable {
    case gzip, bzip2, lzma, xz, lzo
    /// The lz4 legacy frame, as the kernel and `lz4 -l` use.
    case lz4
    case zstd

    /// By the kernel's magic table (lib/decompress.c): 1f 8b / 1f 9e gzip, 42 5a bzip2, 5d 00
    /// lzma, fd 37 xz, 89 4c lzo, 02 21 lz4 legacy, 28 b5 zstd.
    public static func detect(_ prefix: some Collection<UInt8>) -> StreamCompression? {
        var bytes = prefix.makeIterator()
        guard let first = bytes.next(), let second = bytes.next() else { return nil }
        switch (first, second) {
        case (0x1f, 0x8b), (0x1f, 0x9e): return .gzip
        case (0x42, 0x5a): return .bzip2
        case (0x5d, 0x00): return .lzma
        case (0xfd, 0x37): return .xz
        case (0x89, 0x4c): return .lzo
        case (0x02, 0x21): return .lz4
        case (0x28, 0xb5): return .zstd
        default: return nil
        }
    }

    /// Decompresses ONE member (one gzip member, one xz stream, one zstd frame, one bzip2 stream,
    /// one lzma-alone stream, one lz4 legacy stream) starting at input[0]. Returns the output and
    /// how many input bytes the member used, so a caller can continue after it. Output is capped
    /// at `limit` bytes: exceeding it throws `.outputTooLarge`. lzo throws `.unsupported`.
    /// `name` and `baseOffset` (the member's offset in that file) go into error messages.
    public func decompressMember(_ input: UnsafeRawBufferPointer, name: String, baseOffset: UInt64,
                                 limit: Int) throws(StreamCompressionError) -> (output: [UInt8], consumed: Int) {
        let limit = max(0, limit)
        switch self {
        case .gzip:
            do {
                return try GzipMember.inflate(input, limit: limit, name: name)
            } catch {
                throw mapped(error, name: name, baseOffset: baseOffset)
            }
        case .xz, .lzma:
            return try LzmaMember.decode(input, format: self, name: name, baseOffset: baseOffset, limit: limit)
        case .zstd:
            return try ZstdMember.decode(input, name: name, baseOffset: baseOffset, limit: limit)
        case .bzip2:
            return try Bzip2Member.decode(input, name: name, baseOffset: baseOffset, limit: limit)
        case .lz4:
            return try Lz4LegacyMember.decode(input, name: name, baseOffset: baseOffset, limit: limit)
        case .lzo:
            throw .unsupported(name: name, format: .lzo, advice:
                "lzo (lzop) initramfs members are not decoded; unpack the image with `lzop -dc` and "
                + "recompress it with gzip, or rebuild it in the guest with another COMPRESS= setting")
        }
    }

    /// Whole-file form for .ko.gz/.ko.xz/.ko.zst and similar: every member to the end
    /// (concatenated members concatenated; zero padding between and after them allowed, as xz
    /// stream padding and tape blocks have). `limit` bounds the total output.
    public func decompressAll(_ input: UnsafeRawBufferPointer, name: String,
                              limit: Int) throws(StreamCompressionError) -> [UInt8] {
        var output: [UInt8] = []
        var position = 0
        repeat {
            let rest = UnsafeRawBufferPointer(rebasing: input[position...])
            // After the first member, only another member of the same format may follow: say so
            // here rather than let a decoder misread a few stray bytes as a short header.
            if position > 0 && Self.detect(rest) != self {
                throw .corrupt(name: name, offset: UInt64(position), format: self,
                               detail: "unexpected bytes after the last member (no \(rawValue) magic)")
            }
            let member = try decompressMember(rest, name: name, baseOffset: UInt64(position),
                                              limit: limit - output.count)
            output.append(contentsOf: member.output)
            // Every member has a header, so consumed > 0; max() only rules out an endless loop.
            position += max(member.consumed, 1)
            while position < input.count && input[position] == 0 { position += 1 }
        } while position < input.count
        return output
    }

    /// One gzip member (mtime 0, OS byte 3), for writing appended initrd archives.
    /// libdeflate rather than zlib: several times faster at the same level, for the same format.
    public static func gzip(_ data: [UInt8], level: Int32 = 6) -> [UInt8] {
        guard let compressor = libdeflate_alloc_compressor(level) else { return GzipMember.deflate(data, level: level) }
        defer { libdeflate_free_compressor(compressor) }
        var out = [UInt8](repeating: 0, count: libdeflate_gzip_compress_bound(compressor, data.count))
        let size = data.withUnsafeBytes { input in
            out.withUnsafeMutableBytes { libdeflate_gzip_compress(compressor, input.baseAddress, input.count, $0.baseAddress, $0.count) }
        }
        guard size > 0 else { return GzipMember.deflate(data, level: level) }
        out.removeLast(out.count - size)
        // The header's OS byte: Unix, as gzip(1) writes it (libdeflate writes "unknown").
        out[9] = 3
        return out
    }

    private func mapped(_ error: ZlibError, name: String, baseOffset: UInt64) -> StreamCompressionError {
        switch error {
        case let .corrupt(_, offset, reason):
            return .corrupt(name: name, offset: baseOffset + offset, format: self, detail: reason)
        case let .truncated(_, offset):
            return .truncated(name: name, offset: baseOffset + offset, format: self)
        case let .trailingGarbage(_, offset):
            return .corrupt(name: name, offset: baseOffset + offset, format: self, detail: "unexpected data after the member")
        case let .outputTooLarge(_, capacity):
            return .outputTooLarge(name: name, format: self, limit: capacity)
        case let .library(_, operation, code):
            return .library(name: name, format: self, operation: operation, code: code)
        }
    }
}

/// Output that grows as a decoder produces it, refusing to pass `limit`.
struct BoundedOutput {
    let limit: Int
    let format: StreamCompression
    let name: String
    var bytes: [UInt8] = []

    init(limit: Int, format: StreamCompression, name: String) {
        self.limit = limit
        self.format = format
        self.name = name
    }

    var room: Int { limit - bytes.count }

    /// Appends the first `count` bytes of a decoder's scratch buffer.
    mutating func append(_ chunk: [UInt8], count: Int) throws(StreamCompressionError) {
        guard count <= room else { throw .outputTooLarge(name: name, format: format, limit: limit) }
        bytes.append(contentsOf: chunk[0..<count])
    }
}

/// The size of the scratch buffer decoders write into before output is appended.
let streamChunkSize = 256 * 1024
