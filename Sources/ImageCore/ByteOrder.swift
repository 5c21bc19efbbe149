/// Field-by-field encoding at explicit offsets: on-disk structures are never Swift struct layouts.
extension Array where Element == UInt8 {
    public mutating func storeLE<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        var v = value.littleEndian
        Swift.withUnsafeBytes(of: &v) { bytes in
            for (i, b) in bytes.enumerated() { self[offset + i] = b }
        }
    }

    public mutating func storeBE<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        var v = value.bigEndian
        Swift.withUnsafeBytes(of: &v) { bytes in
            for (i, b) in bytes.enumerated() { self[offset + i] = b }
        }
    }

    public func loadLE<T: FixedWidthInteger>(_ type: T.Type, at offset: Int) -> T {
        var v: T = 0
        for i in 0..<MemoryLayout<T>.size { v |= T(self[offset + i]) << (8 * i) }
        return v
    }

    public func loadBE<T: FixedWidthInteger>(_ type: T.Type, at offset: Int) -> T {
        var v: T = 0
        for i in 0..<MemoryLayout<T>.size { v = (v << 8) | T(self[offset + i]) }
        return v
    }
}
