/// UUIDs as 16 bytes in RFC 4122 order (the order of the canonical text form): filesystem UUIDs,
/// image UUIDs. Formats that store another byte order convert when they encode.
public enum UUIDBytes {
    /// A random version-4 UUID (RFC 4122 section 4.4) for something Rehost writes: derived from
    /// `purpose` when outputs are to be reproducible (see Reproducibility).
    public static func random(for purpose: String) -> [UInt8] {
        var bytes = Reproducibility.bytes(16, for: purpose)
        bytes[6] = (bytes[6] & 0x0F) | 0x40 // version 4
        bytes[8] = (bytes[8] & 0x3F) | 0x80 // variant 10xx
        return bytes
    }

    /// A random version-4 UUID, always.
    public static func random() -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        var bytes = (0..<16).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        bytes[6] = (bytes[6] & 0x0F) | 0x40 // version 4
        bytes[8] = (bytes[8] & 0x3F) | 0x80 // variant 10xx
        return bytes
    }

    /// "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx".
    public static func format(_ uuid: [UInt8]) -> String {
        let hex = uuid.map { byte -> String in
            let digits = String(byte, radix: 16)
            return digits.count == 1 ? "0" + digits : digits
        }
        return [hex[0..<4], hex[4..<6], hex[6..<8], hex[8..<10], hex[10..<16]].map { $0.joined() }.joined(separator: "-")
    }

    /// The bytes of the canonical text form; nil for anything else.
    public static func parse(_ text: String) -> [UInt8]? {
        let groups = text.split(separator: "-", omittingEmptySubsequences: false)
        guard groups.map(\.count) == [8, 4, 4, 4, 12] else { return nil }
        let hex = Array(groups.joined())
        var bytes: [UInt8] = []
        for i in stride(from: 0, to: hex.count, by: 2) {
            guard let byte = UInt8(String(hex[i...i + 1]), radix: 16) else { return nil }
            bytes.append(byte)
        }
        return bytes
    }
}
