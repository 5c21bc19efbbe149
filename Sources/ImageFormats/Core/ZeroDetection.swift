/// Finds all-zero buffers so writers can leave holes instead of writing zeros.
public enum ZeroDetection {
    /// True when every byte of `buffer` is zero. Compares eight-byte words, 32 bytes per step,
    /// so a 64 KiB chunk costs a few microseconds; stops at the first non-zero step.
    public static func isAllZero(_ buffer: UnsafeRawBufferPointer) -> Bool {
        guard let base = buffer.baseAddress else { return true }
        let count = buffer.count
        var offset = 0
        // Bytes up to the first 8-byte boundary, so the word loads below are aligned.
        while offset < count && (Int(bitPattern: base + offset) & 7) != 0 {
            if buffer[offset] != 0 { return false }
            offset += 1
        }
        while count - offset >= 32 {
            let a = base.load(fromByteOffset: offset, as: UInt64.self)
            let b = base.load(fromByteOffset: offset + 8, as: UInt64.self)
            let c = base.load(fromByteOffset: offset + 16, as: UInt64.self)
            let d = base.load(fromByteOffset: offset + 24, as: UInt64.self)
            if (a | b | c | d) != 0 { return false }
            offset += 32
        }
        while offset < count {
            if buffer[offset] != 0 { return false }
            offset += 1
        }
        return true
    }
}

extension ZeroDetection {
    /// Splits `data`, which sits at byte `offset` of a disk, into runs that hold non-zero bytes:
    /// blocks of `granularity` bytes aligned to the disk (not to `data`) that are all zero are
    /// left out, and neighbouring non-zero blocks are joined into one run.
    public static func forEachNonZeroRun(in data: UnsafeRawBufferPointer, at offset: UInt64, granularity: Int,
                                         _ body: (UInt64, UnsafeRawBufferPointer) throws -> Void) rethrows {
        let granule = UInt64(granularity)
        var runStart: Int? = nil
        var position = 0
        while position < data.count {
            let blockEnd = min(data.count, Int((offset + UInt64(position)) / granule * granule + granule - offset))
            let block = UnsafeRawBufferPointer(rebasing: data[position..<blockEnd])
            if isAllZero(block) {
                if let start = runStart {
                    try body(offset + UInt64(start), UnsafeRawBufferPointer(rebasing: data[start..<position]))
                    runStart = nil
                }
            } else if runStart == nil {
                runStart = position
            }
            position = blockEnd
        }
        if let start = runStart {
            try body(offset + UInt64(start), UnsafeRawBufferPointer(rebasing: data[start..<data.count]))
        }
    }
}
