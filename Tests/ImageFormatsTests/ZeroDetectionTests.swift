import ImageFormats
import Testing

@Suite struct ZeroDetectionTests {
    @Test func findsAnyNonZeroByteAtAnyAlignment() {
        let size = 65536 + 13
        let zeros = [UInt8](repeating: 0, count: size)
        for start in 0..<9 {
            zeros.withUnsafeBytes { #expect(ZeroDetection.isAllZero(UnsafeRawBufferPointer(rebasing: $0[start...]))) }
        }
        for position in [0, 1, 7, 8, 31, 32, 33, 4095, 40000, size - 9, size - 1] {
            var bytes = zeros
            bytes[position] = 0x01
            for start in [0, 1, 3] where position >= start {
                bytes.withUnsafeBytes { buffer in
                    #expect(!ZeroDetection.isAllZero(UnsafeRawBufferPointer(rebasing: buffer[start...])),
                            "non-zero byte at \(position), slice from \(start)")
                }
            }
        }
        #expect(ZeroDetection.isAllZero(UnsafeRawBufferPointer(start: nil, count: 0)))
    }
}
