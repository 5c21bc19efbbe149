/// Small helpers for the readers' messages.
enum ReaderText {
    /// Text from a file as printable ASCII, anything else as \xNN, so a message stays on one
    /// line; at most the first 200 bytes.
    static func printable<Bytes: Sequence>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        bytes.prefix(200).map { (0x20...0x7E).contains($0) && $0 != 0x5C ? String(UnicodeScalar($0)) : "\\x" + hex2($0) }.joined()
    }

    static func hex2(_ byte: UInt8) -> String {
        let digits = String(byte, radix: 16)
        return digits.count == 1 ? "0" + digits : digits
    }

    static func isPowerOfTwo(_ value: UInt32) -> Bool { value != 0 && value & (value - 1) == 0 }

    static func size(_ bytes: UInt64) -> String {
        if bytes >= 1 << 20, bytes % (1 << 20) == 0 { return "\(bytes >> 20) MiB" }
        if bytes >= 1 << 10, bytes % (1 << 10) == 0 { return "\(bytes >> 10) KiB" }
        return "\(bytes) bytes"
    }
}
