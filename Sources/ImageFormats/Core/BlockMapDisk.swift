import ImageCore

/// A disk made of fixed-size blocks, each either somewhere in one file or reading as zeros: the
/// shape of VDI and dynamic VHD. `locate` gives a block's host byte offset, nil for zeros; the
/// checks of the block map against the file are the reader's, made when it was opened.
final class BlockMapDisk: RandomAccessDisk {
    let size: UInt64
    let name: String
    private let file: RawFile
    private let format: ImageFormat
    private let blockSize: UInt64
    private let locate: (Int) -> UInt64?

    init(file: RawFile, format: ImageFormat, name: String, size: UInt64, blockSize: UInt64, locate: @escaping (Int) -> UInt64?) {
        self.file = file
        self.format = format
        self.name = name
        self.size = size
        self.blockSize = blockSize
        self.locate = locate
    }

    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws {
        try checkRange(offset: offset, count: buffer.count)
        var done = 0
        while done < buffer.count {
            let virtual = offset + UInt64(done)
            let block = virtual / blockSize
            let within = virtual % blockSize
            var count = Int(min(UInt64(buffer.count - done), blockSize - within))
            guard let host = locate(Int(block)) else {
                UnsafeMutableRawBufferPointer(rebasing: buffer[done..<(done + count)]).initializeMemory(as: UInt8.self, repeating: 0)
                done += count
                continue
            }
            // Blocks stored one after the other in the file are read with one pread.
            var next = block + 1
            while done + count < buffer.count, let following = locate(Int(next)),
                  following == host + (next - block) * blockSize {
                count += Int(min(UInt64(buffer.count - done - count), blockSize))
                next += 1
            }
            let target = UnsafeMutableRawBufferPointer(rebasing: buffer[done..<(done + count)])
            let got = try file.read(into: target, at: host + within)
            guard got == count else {
                throw ImageReadError.truncated(format: format, path: file.path, offset: host + within, needed: UInt64(count),
                                               fileSize: host + within + UInt64(got))
            }
            done += count
        }
    }
}
