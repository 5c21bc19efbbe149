import ImageCore

/// LVM2 as it lies on a physical volume (PV), read without the kernel or the lvm2 tools.
///
/// ```
///  PV (a partition or a whole disk), little-endian, sectors of 512 bytes
///  sector 0..3 ─ one holds the label:
///    0  "LABELONE"   8  sector_xl (its own sector)   16 crc_xl (bytes 20..511)
///   20  offset_xl (to pv_header)   24 "LVM2 001"
///   pv_header: pv_uuid[32] (no dashes), device_size_xl,
///              data areas {offset, size}... {0,0}, metadata areas {offset, size}... {0,0}
///  metadata area (usually at 4096, 1 MiB):
///    0  checksum (bytes 4..511)  4 " LVM2 x[5A%r0N*>"  20 version 1  24 start  32 size
///   40  raw_locn {offset, size, checksum, flags}... {0,...}: the current text metadata,
///       at `start + offset`, a circular buffer over `start + 512 ..< start + size`
///  data area (pe_start): extents of extent_size sectors, mapped to LVs by the text metadata
/// ```
///
/// The text metadata is hostile input: it is parsed by `LVM2.TextParser` with bounded size,
/// depth and numbers, and every extent is checked against its PV before a byte is read.
public enum LVM2 {
    public static let sectorSize: UInt64 = 512
    /// lvm2 looks for the label in the first four sectors.
    public static let labelScanSectors = 4
    /// The seed of lvm2's CRC-32 (the usual reflected polynomial, no final inversion).
    public static let initialCRC: UInt32 = 0xf597_a6cf
    /// Larger text metadata is refused: real metadata is a few KiB (lvm2's default area is 1 MiB).
    public static let maximumMetadataText: UInt64 = 4 << 20

    private static let crcTable: [UInt32] = (0..<256).map { n in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xedb8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    /// lvm2's `calc_crc`.
    public static func crc(_ bytes: some Sequence<UInt8>, initial: UInt32 = initialCRC) -> UInt32 {
        var crc = initial
        for byte in bytes { crc = crcTable[Int((crc ^ UInt32(byte)) & 0xff)] ^ (crc >> 8) }
        return crc
    }

    /// "Xm4Lq0-..." form of a 32-character UUID, as the text metadata writes it (6-4-4-4-4-4-6).
    public static func dashed(_ uuid: String) -> String {
        let chars = Array(uuid)
        guard chars.count == 32 else { return uuid }
        var out = ""
        var at = 0
        for (i, width) in [6, 4, 4, 4, 4, 4, 6].enumerated() {
            if i > 0 { out += "-" }
            out += String(chars[at..<at + width])
            at += width
        }
        return out
    }

    /// The UUID without dashes, as the label stores it.
    public static func undashed(_ uuid: String) -> String { uuid.filter { $0 != "-" } }
}

/// Why an LVM2 physical volume, its metadata or a logical volume cannot be read.
public enum LVMError: RehostError, Equatable {
    case badLabel(disk: String, sector: UInt64, reason: String)
    case labelChecksum(disk: String, sector: UInt64, stored: UInt32, computed: UInt32)
    case badMetadataArea(disk: String, offset: UInt64, reason: String)
    case metadataChecksum(disk: String, offset: UInt64, stored: UInt32, computed: UInt32)
    case syntax(source: String, line: Int, reason: String)
    case badMetadata(volumeGroup: String, reason: String)
    case unsupportedSegment(logicalVolume: String, type: String)
    case missingPhysicalVolume(logicalVolume: String, physicalVolume: String, uuid: String)
    case extentsOutsidePhysicalVolume(logicalVolume: String, physicalVolume: String, lastExtent: UInt64, peCount: UInt64)
    case physicalVolumeTooSmall(physicalVolume: String, disk: String, needed: UInt64, size: UInt64)

    public var description: String {
        switch self {
        case let .badLabel(disk, sector, reason):
            return "\(disk): LVM2 label in sector \(sector): \(reason)"
        case let .labelChecksum(disk, sector, stored, computed):
            return "\(disk): LVM2 label in sector \(sector): checksum 0x\(String(stored, radix: 16)) does not match its bytes (0x\(String(computed, radix: 16)))"
        case let .badMetadataArea(disk, offset, reason):
            return "\(disk): LVM2 metadata area at byte \(offset): \(reason)"
        case let .metadataChecksum(disk, offset, stored, computed):
            return "\(disk): LVM2 metadata at byte \(offset): checksum 0x\(String(stored, radix: 16)) does not match its bytes (0x\(String(computed, radix: 16)))"
        case let .syntax(source, line, reason):
            return "\(source): LVM2 metadata line \(line): \(reason)"
        case let .badMetadata(vg, reason):
            return "volume group \(vg): \(reason)"
        case let .unsupportedSegment(lv, type):
            return "\(lv): a \(type) segment; only linear and striped logical volumes can be read (activate the volume with lvm2 and convert its filesystem instead)"
        case let .missingPhysicalVolume(lv, pv, uuid):
            return "\(lv): its physical volume \(pv) (\(uuid)) is not on the disks read: name the guest's other disks after the input (rehost convert DISK1 DISK2 ...)"
        case let .extentsOutsidePhysicalVolume(lv, pv, last, count):
            return "\(lv): uses extent \(last) of \(pv), which has only \(count)"
        case let .physicalVolumeTooSmall(pv, disk, needed, size):
            return "\(pv) on \(disk): its extents end at byte \(needed) but it holds \(size)"
        }
    }
}
