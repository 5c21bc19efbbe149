import ImageCore

/// The markers of a streamOptimized extent:
/// ```
/// grain marker:    0 u64 LBA (sector of the grain),  8 u32 compressed size (> 0), 12 zlib data...
/// metadata marker: 0 u64 numSectors of what follows, 8 u32 0, 12 u32 type, 16..511 zero
/// ```
public enum VMDKMarker: Equatable, Sendable {
    case grain(lba: UInt64, compressedSize: UInt32)
    case metadata(type: VMDK.MarkerType, numSectors: UInt64)

    /// Bytes before a grain's compressed data.
    public static let grainHeaderSize = 12

    /// A metadata marker, one whole sector.
    public static func metadataSector(_ type: VMDK.MarkerType, numSectors: UInt64) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: VMDK.sectorSize)
        bytes.storeLE(numSectors, at: 0)
        bytes.storeLE(type.rawValue, at: 12)
        return bytes
    }

    /// Decodes the marker at the start of `bytes` (at least 16 bytes; 512 for a metadata marker,
    /// whose padding is checked).
    public init(decoding bytes: [UInt8], path: String, offset: UInt64) throws {
        guard bytes.count >= 16 else {
            throw VMDKError.truncated(path: path, offset: offset, wanted: 16, available: bytes.count)
        }
        let value = bytes.loadLE(UInt64.self, at: 0)
        let size = bytes.loadLE(UInt32.self, at: 8)
        if size > 0 {
            self = .grain(lba: value, compressedSize: size)
            return
        }
        let rawType = bytes.loadLE(UInt32.self, at: 12)
        guard let type = VMDK.MarkerType(rawValue: rawType) else {
            throw VMDKError.badMarker(path: path, offset: offset, reason: "metadata marker type \(rawType), expected 0-3")
        }
        guard bytes.count >= VMDK.sectorSize else {
            throw VMDKError.truncated(path: path, offset: offset, wanted: VMDK.sectorSize, available: bytes.count)
        }
        guard bytes[16..<VMDK.sectorSize].allSatisfy({ $0 == 0 }) else {
            throw VMDKError.badMarker(path: path, offset: offset, reason: "metadata marker padding (bytes 16-511) is not zero")
        }
        self = .metadata(type: type, numSectors: value)
    }
}
