import ImageCore

/// UUIDs for image headers (VDI, VHD), as ImageCore's `UUIDBytes`; each format converts to its
/// own on-disk order when it encodes.
enum ImageUUID {
    /// The caller's UUID, or a fresh random (version 4) one (derived from `purpose` when outputs
    /// are to be reproducible).
    static func make(_ given: [UInt8]?, format: ImageFormat, purpose: String) throws -> [UInt8] {
        if let given {
            guard given.count == 16 else {
                throw WriterError.unsupported(format: format, what: "a UUID is 16 bytes, \(given.count) were given")
            }
            return given
        }
        return UUIDBytes.random(for: purpose)
    }

    /// RFC order <-> the Microsoft GUID order VirtualBox's RTUUID keeps in files: the first three
    /// fields (4, 2 and 2 bytes) little-endian, the last 8 bytes as they are. Its own inverse.
    static func swappingGUIDFields(_ uuid: [UInt8]) -> [UInt8] {
        precondition(uuid.count == 16)
        return [uuid[3], uuid[2], uuid[1], uuid[0], uuid[5], uuid[4], uuid[7], uuid[6]] + uuid[8..<16]
    }
}
