import CLz4

/// The lz4 legacy frame, as `lz4 -l` and the kernel's unlz4 use it:
/// ```
/// 02 21 4c 18 | le32 size | block (size bytes) | le32 size | block | ...
/// ```
/// Each block decodes on its own to at most 8 MiB. There is no end marker: the stream ends at
/// the end of the input, at a size of 0, or at a size equal to the magic (a new legacy stream
/// starts there). `consumed` stops after the last block, so the terminating zeros or the next
/// stream's magic are left to the caller. liblz4's frame API refuses this format, so the chunks
/// are walked here and each block goes to `LZ4_decompress_safe`.
enum Lz4LegacyMember {
    static let magic: UInt32 = 0x184C_2102
    static let blockOutputSize = 8 << 20

    static func decode(_ input: UnsafeRawBufferPointer, name: String, baseOffset: UInt64,
                       limit: Int) throws(StreamCompressionError) -> (output: [UInt8], consumed: Int) {
        guard let base = input.baseAddress, input.count >= 4 else {
            throw .truncated(name: name, offset: baseOffset + UInt64(input.count), format: .lz4)
        }
        guard input.loadUnaligned(as: UInt32.self).littleEndian == magic else {
            throw .corrupt(name: name, offset: baseOffset, format: .lz4,
                           detail: "no lz4 legacy magic 02 21 4c 18 (the kernel reads only `lz4 -l` streams)")
        }
        // The largest block the compressor can emit for 8 MiB of input (LZ4_compressBound).
        let maxBlock = Int(LZ4_compressBound(Int32(blockOutputSize)))
        var output = BoundedOutput(limit: limit, format: .lz4, name: name)
        var scratch = [UInt8](repeating: 0, count: blockOutputSize)
        var position = 4
        while input.count - position >= 4 {
            let size = input.loadUnaligned(fromByteOffset: position, as: UInt32.self).littleEndian
            if size == 0 || size == magic { break }
            let offset = baseOffset + UInt64(position)
            guard Int(size) <= maxBlock else {
                throw .corrupt(name: name, offset: offset, format: .lz4,
                               detail: "block size \(size) exceeds the largest possible block (\(maxBlock) bytes)")
            }
            let start = position + 4
            guard Int(size) <= input.count - start else {
                throw .truncated(name: name, offset: baseOffset + UInt64(input.count), format: .lz4)
            }
            let decoded = scratch.withUnsafeMutableBytes { out -> Int32 in
                guard let target = out.baseAddress else { return -1 }
                return LZ4_decompress_safe((base + start).assumingMemoryBound(to: CChar.self),
                                           target.assumingMemoryBound(to: CChar.self), Int32(size), Int32(out.count))
            }
            guard decoded >= 0 else {
                throw .corrupt(name: name, offset: offset, format: .lz4, detail: "block of \(size) bytes does not decode")
            }
            try output.append(scratch, count: Int(decoded))
            position = start + Int(size)
        }
        return (output.bytes, position)
    }
}
