import ImageCore
import Zlib

/// Decompresses a gzip input once into a sparse scratch file: 64 KiB chunks that are all zero
/// are skipped, so an image of a mostly empty filesystem costs only its data on disk.
enum GzipExpansion {
    static let chunkSize = 64 * 1024
    static let readSize = 1024 * 1024

    static func expand(_ input: RawFile, displayPath: String, scratchDirectory: String?) throws -> ScratchFile {
        let scratch = try ScratchFile(directory: scratchDirectory, hint: displayPath)
        let decompressor = try GzipDecompressor(name: displayPath)
        let inputSize = try input.size
        let readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: readSize, alignment: 16)
        defer { readBuffer.deallocate() }
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkSize, alignment: 16)
        defer { chunk.deallocate() }
        var chunkFill = 0
        var chunkStart: UInt64 = 0

        func flush() throws {
            let filled = UnsafeRawBufferPointer(rebasing: chunk[0..<chunkFill])
            if !ZeroDetection.isAllZero(filled) { try scratch.file.write(filled, at: chunkStart) }
            chunkStart += UInt64(chunkFill)
            chunkFill = 0
        }

        var inputOffset: UInt64 = 0
        while inputOffset < inputSize {
            let got = try input.read(into: readBuffer, at: inputOffset)
            if got == 0 { break }
            inputOffset += UInt64(got)
            try decompressor.decompress(UnsafeRawBufferPointer(rebasing: readBuffer[0..<got])) { output in
                var used = 0
                while used < output.count {
                    let take = min(chunkSize - chunkFill, output.count - used)
                    UnsafeMutableRawBufferPointer(rebasing: chunk[chunkFill..<chunkFill + take])
                        .copyMemory(from: UnsafeRawBufferPointer(rebasing: output[used..<used + take]))
                    chunkFill += take
                    used += take
                    if chunkFill == chunkSize { try flush() }
                }
            }
        }
        try decompressor.finish()
        try flush()
        // Trailing zero chunks were never written: set the length so they read back as a hole.
        try scratch.file.truncate(to: chunkStart)
        return scratch
    }
}
