/// UUIDs for image headers (VDI, VHD). Held as 16 bytes in RFC 4122 order, the order of the
/// canonical text form; each format converts to its own on-disk order when it encodes.
/// (Lives here until another format needs it; it belongs in ImageFormats/Core then.)
enum ImageUUID {
    /// The caller's UUID, or a fresh random (version 4) one.
    static func make(_ given: [UInt8]?, format: ImageFormat) throws -> [UInt8] {
        if let given {
            guard given.count == 16 else {
                throw WriterError.unsupported(format: format, what: "a UUID is 16 bytes, \(given.count) were given")
            }
            return given
        }
        return random()
    }

    /// A random version-4 UUID (RFC 4122 section 4.4).
    static func random() -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        var bytes = (0..<16).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        bytes[6] = (bytes[6] & 0x0F) | 0x40 // version 4
        bytes[8] = (bytes[8] & 0x3F) | 0x80 // variant 10xx
        return bytes
    }

    /// RFC order <-> the Microsoft GUID order VirtualBox's RTUUID keeps in files: the first three
    /// fields (4, 2 and 2 bytes) little-endian, the last 8 bytes as they are. Its own inverse.
    static func swappingGUIDFields(_ uuid: [UInt8]) -> [UInt8] {
        precondition(uuid.count == 16)
        return [uuid[3], uuid[2], uuid[1], uuid[0], uuid[5], uuid[4], uuid[7], uuid[6]] + uuid[8..<16]
    }

    /// "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" for messages and reports.
    static func string(_ uuid: [UInt8]) -> String {
        let hex = uuid.map { byte -> String in
            let digits = String(byte, radix: 16)
            return digits.count == 1 ? "0" + digits : digits
        }
        return [hex[0..<4], hex[4..<6], hex[6..<8], hex[8..<10], hex[10..<16]].map { $0.joined() }.joined(separator: "-")
    }
}
