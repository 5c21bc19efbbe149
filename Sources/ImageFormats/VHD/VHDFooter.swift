import ImageCore

/// Microsoft Virtual Hard Disk (VHD, "vpc"), per the Virtual Hard Disk Image Format
/// Specification 1.0. All integers big-endian.
///
/// ```
/// fixed:    [ disk data, size bytes ][ footer 512 ]
/// dynamic:  [ footer copy 512 ][ dynamic header 1024 ][ BAT, padded to 512 ]
///           [ bitmap 512 | data 2 MiB ] [ bitmap 512 | data 2 MiB ] ... [ footer 512 ]
///
/// footer (512 bytes)
///   0  char[8] "conectix"        8  u32 features 2       12 u32 version 0x00010000
///   16 u64 data offset: 512 (dynamic header) or 0xFFFFFFFFFFFFFFFF (fixed)
///   24 u32 timestamp, seconds since 2000-01-01 00:00:00 UTC
///   28 char[4] creator application   32 u32 creator version   36 char[4] creator host OS
///   40 u64 original size       48 u64 current size
///   56 u16 cylinders  58 u8 heads  59 u8 sectors per track
///   60 u32 disk type 2 fixed, 3 dynamic
///   64 u32 checksum: one's complement of the byte sum of the footer with this field zero
///   68 u8[16] unique id        84 u8 saved state 0      85..<512 zero
/// ```
///
/// The creator application decides what size readers believe. CHS can only describe multiples
/// of its geometry, so Virtual PC, and qemu for images whose creator is "vpc " or "qemu", take
/// the size from CHS, which is usually smaller than the disk. qemu 7.2's vpc_open takes the
/// current-size field instead for "win " (Hyper-V), "qem2", "d2v ", "CTXS" and "tap\0", and
/// Hyper-V and Azure always use the current size. We write creator "qem2", version 0x00050003,
/// host "Wi2k": the creator fields `qemu-img convert -O vpc -o force_size=on` writes, the recipe
/// Microsoft documents for preparing Azure VHDs, so Azure takes them, and qemu (7.2 checked
/// here; any release with force_size) and VirtualBox read the exact size. Claiming Hyper-V
/// ("win ") would work too, but would say something untrue about where the image came from. Unlike qemu's force_size images, which
/// carry the maximum CHS 65535/16/255 (another signal qemu honours), we write the
/// specification's CHS for the size, so a firmware that takes the IDE geometry from the VHD
/// (Hyper-V generation 1) sees a plausible one; the tests check it against qemu's own.
public struct VHDFooter: Equatable, Sendable {
    public enum DiskType: UInt32, Sendable { case fixed = 2, dynamic = 3 }

    public static let size = 512
    public static let cookie = "conectix"
    public static let features: UInt32 = 2
    public static let formatVersion: UInt32 = 0x0001_0000
    public static let noDataOffset: UInt64 = .max
    public static let creatorApplication = "qem2"
    public static let creatorVersion: UInt32 = 0x0005_0003
    public static let creatorHostOS = "Wi2k"
    /// Seconds from 1970-01-01 to 2000-01-01, both UTC.
    public static let epochOffset: UInt64 = 946_684_800
    /// The largest disk qemu opens (VHD_MAX_SECTORS, 0xff000000 sectors = 2040 GiB); Hyper-V
    /// and Azure stop there too for VHD (their larger limits are VHDX's).
    public static let maximumDiskSize: UInt64 = 0xFF00_0000 * 512

    public var features = VHDFooter.features
    public var formatVersion = VHDFooter.formatVersion
    public var dataOffset: UInt64
    public var timestamp: UInt32
    public var creatorApplication = VHDFooter.creatorApplication
    public var creatorVersion = VHDFooter.creatorVersion
    public var creatorHostOS = VHDFooter.creatorHostOS
    public var originalSize: UInt64
    public var currentSize: UInt64
    public var geometry: Geometry
    public var diskType: DiskType
    /// As stored; `encoded()` computes it afresh.
    public var checksum: UInt32 = 0
    /// Stored in RFC 4122 byte order, as qemu does.
    public var uuid: [UInt8]
    public var savedState: UInt8 = 0

    public struct Geometry: Equatable, Sendable {
        public var cylinders: UInt16
        public var heads: UInt8
        public var sectorsPerTrack: UInt8

        public init(cylinders: UInt16, heads: UInt8, sectorsPerTrack: UInt8) {
            self.cylinders = cylinders
            self.heads = heads
            self.sectorsPerTrack = sectorsPerTrack
        }

        /// The CHS geometry the VHD specification's appendix computes for `size` bytes; sizes
        /// past 65535 x 16 x 255 sectors (about 127 GiB) get that maximum.
        public init(forDiskSize size: UInt64) {
            let totalSectors = min(size / 512, 65535 * 16 * 255)
            var sectorsPerTrack: UInt64, heads: UInt64, cylindersTimesHeads: UInt64
            if totalSectors >= 65535 * 16 * 63 {
                sectorsPerTrack = 255
                heads = 16
                cylindersTimesHeads = totalSectors / sectorsPerTrack
            } else {
                sectorsPerTrack = 17
                cylindersTimesHeads = totalSectors / sectorsPerTrack
                heads = max(4, (cylindersTimesHeads + 1023) / 1024)
                if cylindersTimesHeads >= heads * 1024 || heads > 16 {
                    sectorsPerTrack = 31
                    heads = 16
                    cylindersTimesHeads = totalSectors / sectorsPerTrack
                }
                if cylindersTimesHeads >= heads * 1024 {
                    sectorsPerTrack = 63
                    heads = 16
                    cylindersTimesHeads = totalSectors / sectorsPerTrack
                }
            }
            self.init(cylinders: UInt16(cylindersTimesHeads / heads), heads: UInt8(heads), sectorsPerTrack: UInt8(sectorsPerTrack))
        }

        public var sectors: UInt64 { UInt64(cylinders) * UInt64(heads) * UInt64(sectorsPerTrack) }
    }

    public init(diskType: DiskType, size: UInt64, uuid: [UInt8], timestamp: UInt32) {
        self.diskType = diskType
        dataOffset = diskType == .fixed ? Self.noDataOffset : UInt64(Self.size)
        self.timestamp = timestamp
        originalSize = size
        currentSize = size
        geometry = Geometry(forDiskSize: size)
        self.uuid = uuid
    }

    /// Seconds since 2000-01-01 UTC for a Unix time, clamped to the field.
    public static func timestamp(unixSeconds: Int64) -> UInt32 {
        UInt32(clamping: max(0, unixSeconds - Int64(epochOffset)))
    }

    public func encoded() -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: Self.size)
        bytes.replaceSubrange(0..<8, with: Array(Self.cookie.utf8))
        bytes.storeBE(features, at: 8)
        bytes.storeBE(formatVersion, at: 12)
        bytes.storeBE(dataOffset, at: 16)
        bytes.storeBE(timestamp, at: 24)
        bytes.replaceSubrange(28..<32, with: Self.fourBytes(creatorApplication))
        bytes.storeBE(creatorVersion, at: 32)
        bytes.replaceSubrange(36..<40, with: Self.fourBytes(creatorHostOS))
        bytes.storeBE(originalSize, at: 40)
        bytes.storeBE(currentSize, at: 48)
        bytes.storeBE(geometry.cylinders, at: 56)
        bytes[58] = geometry.heads
        bytes[59] = geometry.sectorsPerTrack
        bytes.storeBE(diskType.rawValue, at: 60)
        bytes.replaceSubrange(68..<84, with: uuid)
        bytes[84] = savedState
        bytes.storeBE(VHDChecksum.compute(bytes, skipping: 64), at: 64)
        return bytes
    }

    /// Parses a footer and checks its cookie, version, type and checksum. `offset` is where it
    /// lies in `path`, for messages.
    public static func decode(_ bytes: [UInt8], path: String, offset: UInt64) throws -> VHDFooter {
        guard bytes.count >= size else { throw VHDError.truncated(path: path, offset: offset, wanted: size, got: bytes.count) }
        func bad(_ at: Int, _ field: String, _ found: UInt64, _ expected: String) -> VHDError {
            .badField(path: path, offset: offset + UInt64(at), field: field, found: found, expected: expected)
        }
        guard bytes[0..<8].elementsEqual(cookie.utf8) else {
            throw VHDError.badCookie(path: path, offset: offset, found: String(decoding: bytes[0..<8], as: UTF8.self), expected: cookie)
        }
        let version = bytes.loadBE(UInt32.self, at: 12)
        guard version >> 16 == 1 else { throw bad(12, "format version", UInt64(version), "0x00010000") }
        let rawType = bytes.loadBE(UInt32.self, at: 60)
        guard let type = DiskType(rawValue: rawType) else { throw bad(60, "disk type", UInt64(rawType), "2 (fixed) or 3 (dynamic)") }
        let stored = bytes.loadBE(UInt32.self, at: 64)
        let computed = VHDChecksum.compute(Array(bytes[0..<size]), skipping: 64)
        guard stored == computed else { throw bad(64, "checksum", UInt64(stored), "0x\(String(computed, radix: 16))") }

        var footer = VHDFooter(diskType: type, size: bytes.loadBE(UInt64.self, at: 48), uuid: Array(bytes[68..<84]),
                               timestamp: bytes.loadBE(UInt32.self, at: 24))
        footer.features = bytes.loadBE(UInt32.self, at: 8)
        footer.formatVersion = version
        footer.dataOffset = bytes.loadBE(UInt64.self, at: 16)
        footer.creatorApplication = String(decoding: bytes[28..<32], as: UTF8.self)
        footer.creatorVersion = bytes.loadBE(UInt32.self, at: 32)
        footer.creatorHostOS = String(decoding: bytes[36..<40], as: UTF8.self)
        footer.originalSize = bytes.loadBE(UInt64.self, at: 40)
        footer.geometry = Geometry(cylinders: bytes.loadBE(UInt16.self, at: 56), heads: bytes[58], sectorsPerTrack: bytes[59])
        footer.checksum = stored
        footer.savedState = bytes[84]
        guard footer.currentSize % 512 == 0, footer.currentSize <= maximumDiskSize else {
            throw bad(48, "current size", footer.currentSize, "whole sectors, at most \(maximumDiskSize)")
        }
        return footer
    }

    private static func fourBytes(_ text: String) -> [UInt8] {
        Array((Array(text.utf8) + [0, 0, 0, 0]).prefix(4))
    }
}

enum VHDChecksum {
    /// One's complement of the sum of every byte except the four at `skipping`.
    static func compute(_ bytes: [UInt8], skipping: Int) -> UInt32 {
        var sum: UInt32 = 0
        for (i, byte) in bytes.enumerated() where !(skipping..<(skipping + 4)).contains(i) { sum &+= UInt32(byte) }
        return ~sum
    }
}

public enum VHDError: RehostError, Equatable {
    case truncated(path: String, offset: UInt64, wanted: Int, got: Int)
    case badCookie(path: String, offset: UInt64, found: String, expected: String)
    case badField(path: String, offset: UInt64, field: String, found: UInt64, expected: String)
    case footerCopyDiffers(path: String)
    case sizeNotWholeSectors(size: UInt64)
    case fixedSizeNotWholeMiB(size: UInt64)
    case tooLarge(size: UInt64, maximum: UInt64)

    public var description: String {
        switch self {
        case let .truncated(path, offset, wanted, got):
            return "\(path): VHD truncated: wanted \(wanted) bytes at byte \(offset), got \(got)"
        case let .badCookie(path, offset, found, expected):
            return "\(path): no VHD structure at byte \(offset): found \"\(found)\", expected \"\(expected)\""
        case let .badField(path, offset, field, found, expected):
            return "\(path): VHD \(field) at byte \(offset) is \(found) (0x\(String(found, radix: 16))), expected \(expected)"
        case let .footerCopyDiffers(path):
            return "\(path): the VHD footer copy at byte 0 differs from the footer at the end of the file"
        case let .sizeNotWholeSectors(size):
            return "vhd: the disk size \(size) is not a whole number of 512-byte sectors"
        case let .fixedSizeNotWholeMiB(size):
            let mib = UInt64(1) << 20
            let up = (size + mib - 1) / mib
            return "vhd: a fixed VHD for Azure must be a whole number of MiB, and \(size) bytes is not; pass --size \(up)M (\(up * mib) bytes)"
        case let .tooLarge(size, maximum):
            return "vhd: the disk size \(size) is more than the VHD maximum of \(maximum) bytes (2040 GiB); use another format"
        }
    }
}
