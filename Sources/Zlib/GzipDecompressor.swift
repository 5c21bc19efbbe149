import CZlib
import ImageCore

/// Streaming inflate of gzip (or zlib) data. A concatenation of gzip members decodes to the
/// concatenation of their contents, as `gzip -d` does; zero bytes after the last member (tape
/// padding) are ignored.
///
/// Feed compressed bytes with `decompress(_:output:)` in chunks of any size, then call `finish()`
/// to learn whether the stream was complete.
public final class GzipDecompressor {
    public let name: String
    private let stream: UnsafeMutablePointer<z_stream>
    private let outputBuffer: UnsafeMutableRawBufferPointer
    /// Compressed bytes consumed so far, across all chunks and members.
    public private(set) var compressedOffset: UInt64 = 0
    public private(set) var decompressedCount: UInt64 = 0
    private var insideMember = false
    private var membersDone = 0

    /// `name` is used in error messages (usually the input path).
    public init(name: String, outputChunkSize: Int = 256 * 1024) throws {
        self.name = name
        stream = .allocate(capacity: 1)
        stream.initialize(to: z_stream())
        outputBuffer = .allocate(byteCount: outputChunkSize, alignment: 16)
        // 15 + 32: largest window, and detect a gzip or zlib header automatically.
        let code = rehost_inflateInit2(stream, 15 + 32)
        guard code == Z_OK else {
            stream.deallocate()
            outputBuffer.deallocate()
            throw ZlibError.library(name: name, operation: "inflateInit2", code: code)
        }
    }

    deinit {
        inflateEnd(stream)
        stream.deinitialize(count: 1)
        stream.deallocate()
        outputBuffer.deallocate()
    }

    /// Inflates `input`, handing each run of decompressed bytes to `output` (the buffer is only
    /// valid during the call).
    public func decompress(_ input: UnsafeRawBufferPointer,
                           output: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard let inputBase = input.baseAddress, !input.isEmpty else { return }
        var position = 0
        while position < input.count {
            if !insideMember {
                // Between members: skip zero padding, otherwise a new member starts here.
                if input[position] == 0 && membersDone > 0 {
                    position += 1
                    compressedOffset += 1
                    continue
                }
                if membersDone > 0 {
                    guard input[position] == 0x1f else {
                        throw ZlibError.trailingGarbage(name: name, compressedOffset: compressedOffset)
                    }
                    let code = inflateReset(stream)
                    guard code == Z_OK else { throw ZlibError.library(name: name, operation: "inflateReset", code: code) }
                }
                insideMember = true
            }
            let available = input.count - position
            stream.pointee.next_in = UnsafeMutablePointer(
                mutating: (inputBase + position).assumingMemoryBound(to: Bytef.self))
            stream.pointee.avail_in = uInt(available)
            var code: Int32 = Z_OK
            repeat {
                stream.pointee.next_out = outputBuffer.baseAddress!.assumingMemoryBound(to: Bytef.self)
                stream.pointee.avail_out = uInt(outputBuffer.count)
                let before = Int(stream.pointee.avail_in)
                code = inflate(stream, Z_NO_FLUSH)
                let consumed = before - Int(stream.pointee.avail_in)
                position += consumed
                compressedOffset += UInt64(consumed)
                let produced = outputBuffer.count - Int(stream.pointee.avail_out)
                switch code {
                case Z_OK, Z_STREAM_END, Z_BUF_ERROR:
                    break
                case Z_NEED_DICT:
                    throw ZlibError.corrupt(name: name, compressedOffset: compressedOffset, reason: "needs a preset dictionary")
                case Z_MEM_ERROR:
                    throw ZlibError.library(name: name, operation: "inflate", code: code)
                default:
                    throw ZlibError.corrupt(name: name, compressedOffset: compressedOffset, reason: message(code))
                }
                if produced > 0 {
                    decompressedCount += UInt64(produced)
                    try output(UnsafeRawBufferPointer(start: outputBuffer.baseAddress, count: produced))
                }
                if code == Z_STREAM_END { break }
                // Z_BUF_ERROR with input left and output space means no progress is possible.
                if code == Z_BUF_ERROR && produced == 0 && consumed == 0 {
                    throw ZlibError.library(name: name, operation: "inflate (no progress)", code: code)
                }
            } while stream.pointee.avail_in > 0 || stream.pointee.avail_out == 0
            if code == Z_STREAM_END {
                insideMember = false
                membersDone += 1
            }
        }
        stream.pointee.next_in = nil
        stream.pointee.avail_in = 0
    }

    /// Throws `truncated` unless every member seen so far was complete (and at least one was).
    public func finish() throws {
        if insideMember || membersDone == 0 {
            throw ZlibError.truncated(name: name, compressedOffset: compressedOffset)
        }
    }

    private func message(_ code: Int32) -> String {
        if let text = stream.pointee.msg { return String(cString: text) }
        return "zlib error \(code)"
    }
}
