import ImageCore
import ImageFormats

extension LVM2 {
    /// A metadata area's header (`mda_header`) and the text metadata its first `raw_locn` names.
    public struct MetadataArea: Sendable, Equatable {
        public static let headerSize: UInt64 = 512
        static let magic = Array(" LVM2 x[5A%r0N*>".utf8)
        static let rawLocationIgnored: UInt32 = 1

        public var area: DiskArea
        /// The current metadata: offset from the area's start, size in bytes, CRC, flags.
        public var offset: UInt64
        public var size: UInt64
        public var checksum: UInt32
        public var ignored: Bool

        /// Reads and checks the header at `area` of `disk`.
        public static func read(_ area: DiskArea, from disk: any RandomAccessDisk) throws -> MetadataArea {
            func bad(_ reason: String) -> LVMError { .badMetadataArea(disk: disk.name, offset: area.offset, reason: reason) }
            let (end, overflow) = area.offset.addingReportingOverflow(area.size)
            guard !overflow, end <= disk.size else {
                throw bad("the area of \(area.size) bytes runs past the end of the disk (\(disk.size) bytes)")
            }
            guard area.size > headerSize else { throw bad("the area of \(area.size) bytes is too small for its header") }
            let bytes = try disk.read(count: Int(headerSize), at: area.offset)
            guard Array(bytes[4..<20]) == magic else { throw bad("no LVM2 metadata magic") }
            let stored = bytes.loadLE(UInt32.self, at: 0)
            let computed = crc(bytes[4..<512])
            guard stored == computed else {
                throw LVMError.metadataChecksum(disk: disk.name, offset: area.offset, stored: stored, computed: computed)
            }
            let version = bytes.loadLE(UInt32.self, at: 20)
            guard version == 1 else { throw bad("version \(version), expected 1") }
            let start = bytes.loadLE(UInt64.self, at: 24)
            let size = bytes.loadLE(UInt64.self, at: 32)
            guard start == area.offset, size == area.size else {
                throw bad("the header says it is \(size) bytes at \(start), the label says \(area.size) at \(area.offset)")
            }
            let offset = bytes.loadLE(UInt64.self, at: 40)
            let textSize = bytes.loadLE(UInt64.self, at: 48)
            let checksum = bytes.loadLE(UInt32.self, at: 56)
            let flags = bytes.loadLE(UInt32.self, at: 60)
            if offset != 0 {
                guard offset >= headerSize, offset < area.size else {
                    throw bad("metadata offset \(offset) is outside the area's buffer (\(headerSize) ..< \(area.size))")
                }
                guard textSize > 0, textSize <= area.size - headerSize else {
                    throw bad("metadata size \(textSize) does not fit in the area's buffer of \(area.size - headerSize) bytes")
                }
                guard textSize <= maximumMetadataText else {
                    throw bad("metadata size \(textSize) exceeds the \(maximumMetadataText)-byte limit")
                }
            }
            return MetadataArea(area: area, offset: offset, size: textSize, checksum: checksum,
                                ignored: flags & rawLocationIgnored != 0)
        }

        /// Whether the area holds metadata at all (a PV not yet in a VG has none).
        public var hasMetadata: Bool { offset != 0 && !ignored }

        /// The text metadata, read across the circular buffer's wrap and checked against its CRC;
        /// the text ends at its first NUL.
        public func text(from disk: any RandomAccessDisk) throws -> String {
            let start = area.offset + offset
            let firstLength = min(size, area.size - offset)
            var bytes = try disk.read(count: Int(firstLength), at: start)
            if firstLength < size {
                bytes += try disk.read(count: Int(size - firstLength), at: area.offset + Self.headerSize)
            }
            let computed = crc(bytes)
            guard computed == checksum else {
                throw LVMError.metadataChecksum(disk: disk.name, offset: start, stored: checksum, computed: computed)
            }
            if let nul = bytes.firstIndex(of: 0) { bytes.removeSubrange(nul...) }
            return String(decoding: bytes, as: UTF8.self)
        }
    }
}
