import ImageCore
import ImageFormats

extension LVM2 {
    /// A byte range of a PV named by its pv_header (`disk_locn`).
    public struct DiskArea: Sendable, Equatable, Codable {
        public var offset: UInt64
        public var size: UInt64
    }

    /// A PV's label and pv_header.
    public struct PhysicalVolumeLabel: Sendable, Equatable {
        /// The sector (0...3) holding the label.
        public var sector: UInt64
        /// 32 characters, no dashes.
        public var uuid: String
        /// The size lvm2 recorded, in bytes.
        public var deviceSize: UInt64
        public var dataAreas: [DiskArea]
        public var metadataAreas: [DiskArea]

        static let labelID = Array("LABELONE".utf8)
        static let labelType = Array("LVM2 001".utf8)
        static let uuidLength = 32
        /// Bounds the lists of areas: lvm2 writes one data and at most two metadata areas.
        static let maximumAreas = 8

        /// Reads the label in the first four sectors of `disk`: nil when there is none, an error
        /// when there is one that is damaged.
        public static func read(from disk: any RandomAccessDisk) throws -> PhysicalVolumeLabel? {
            let sectors = min(UInt64(labelScanSectors), disk.size / sectorSize)
            guard sectors > 0 else { return nil }
            let head = try disk.read(count: Int(sectors * sectorSize), at: 0)
            for sector in 0..<Int(sectors) {
                let bytes = Array(head[sector * 512 ..< sector * 512 + 512])
                guard Array(bytes[0..<8]) == labelID else { continue }
                return try parse(sector: bytes, number: UInt64(sector), disk: disk)
            }
            return nil
        }

        static func parse(sector bytes: [UInt8], number: UInt64, disk: any RandomAccessDisk) throws -> PhysicalVolumeLabel {
            func bad(_ reason: String) -> LVMError { .badLabel(disk: disk.name, sector: number, reason: reason) }
            let recorded = bytes.loadLE(UInt64.self, at: 8)
            guard recorded == number else { throw bad("it says it is in sector \(recorded)") }
            let stored = bytes.loadLE(UInt32.self, at: 16)
            let computed = crc(bytes[20..<512])
            guard stored == computed else {
                throw LVMError.labelChecksum(disk: disk.name, sector: number, stored: stored, computed: computed)
            }
            guard Array(bytes[24..<32]) == labelType else {
                throw bad("type \"\(String(decoding: bytes[24..<32], as: UTF8.self))\" is not LVM2 001")
            }
            let headerOffset = Int(bytes.loadLE(UInt32.self, at: 20))
            // pv_header: the UUID, the size and at least the two list terminators.
            guard headerOffset >= 32, headerOffset <= 512 - (uuidLength + 8 + 32) else {
                throw bad("pv_header offset \(headerOffset) is outside the sector")
            }
            let uuidBytes = bytes[headerOffset ..< headerOffset + uuidLength]
            guard uuidBytes.allSatisfy({ isUUIDCharacter($0) }) else { throw bad("the PV UUID is not 32 letters and digits") }
            let uuid = String(decoding: uuidBytes, as: UTF8.self)
            let deviceSize = bytes.loadLE(UInt64.self, at: headerOffset + uuidLength)
            var at = headerOffset + uuidLength + 8
            func areas(_ what: String) throws -> [DiskArea] {
                var list: [DiskArea] = []
                while true {
                    guard at + 16 <= 512 else { throw bad("the list of \(what) areas runs past the sector") }
                    let area = DiskArea(offset: bytes.loadLE(UInt64.self, at: at), size: bytes.loadLE(UInt64.self, at: at + 8))
                    at += 16
                    if area.offset == 0 { return list }
                    guard list.count < maximumAreas else { throw bad("more than \(maximumAreas) \(what) areas") }
                    list.append(area)
                }
            }
            let data = try areas("data")
            let metadata = try areas("metadata")
            guard !data.isEmpty else { throw bad("no data area") }
            return PhysicalVolumeLabel(sector: number, uuid: uuid, deviceSize: deviceSize, dataAreas: data, metadataAreas: metadata)
        }
    }

    static func isUUIDCharacter(_ c: UInt8) -> Bool {
        (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c == 0x21 || c == 0x23
    }
}
