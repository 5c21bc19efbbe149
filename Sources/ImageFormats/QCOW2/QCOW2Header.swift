import ImageCore

/// The qcow2 header (qemu docs/interop/qcow2.txt), big-endian, encoded field by field:
///
/// ```
///  offset  size  field                      version
///       0     4  magic "QFI\xfb"            2, 3
///       4     4  version                    2, 3
///       8     8  backing_file_offset (0)    2, 3
///      16     4  backing_file_size (0)      2, 3
///      20     4  cluster_bits (9...21)      2, 3
///      24     8  size (virtual, bytes)      2, 3
///      32     4  crypt_method (0)           2, 3
///      36     4  l1_size (entries)          2, 3
///      40     8  l1_table_offset            2, 3
///      48     8  refcount_table_offset      2, 3
///      56     4  refcount_table_clusters    2, 3
///      60     4  nb_snapshots (0)           2, 3
///      64     8  snapshots_offset (0)       2, 3      <- a v2 header ends here: 72 bytes
///      72     8  incompatible_features      3         bit 3: compression type field is in use
///      80     8  compatible_features        3
///      88     8  autoclear_features         3
///      96     4  refcount_order (4)         3         refcount width = 1 << order bits
///     100     4  header_length              3         104, or 112 with the compression type
///     104     1  compression_type           3         0 zlib, 1 zstd; 7 bytes of padding follow
/// ```
/// Header extensions follow the header (type u32, length u32, data padded to 8); a zero type ends
/// them. This writer emits none, so the zeros after the header are the end marker.
public struct QCOW2Header: Sendable, Equatable {
    public static let magic: UInt32 = 0x5146_49FB
    public static let version2Length = 72
    /// Header length this writer uses for v3: with the compression type byte, rounded to 8.
    public static let version3Length = 112
    /// Incompatible feature bit 3: `compression_type` holds a non-zlib method.
    public static let compressionTypeFeature: UInt64 = 1 << 3
    public static let minClusterBits: UInt32 = 9
    public static let maxClusterBits: UInt32 = 21

    public enum CompressionType: UInt8, Sendable { case zlib = 0, zstd = 1 }

    public var version: UInt32
    public var backingFileOffset: UInt64 = 0
    public var backingFileSize: UInt32 = 0
    public var clusterBits: UInt32
    public var size: UInt64
    public var cryptMethod: UInt32 = 0
    public var l1Size: UInt32
    public var l1TableOffset: UInt64
    public var refcountTableOffset: UInt64
    public var refcountTableClusters: UInt32
    public var snapshotCount: UInt32 = 0
    public var snapshotsOffset: UInt64 = 0
    // Version 3 only; zero for version 2.
    public var incompatibleFeatures: UInt64 = 0
    public var compatibleFeatures: UInt64 = 0
    public var autoclearFeatures: UInt64 = 0
    public var refcountOrder: UInt32 = 4
    public var headerLength: UInt32
    public var compressionType: UInt8 = 0

    public init(version: UInt32, clusterBits: UInt32, size: UInt64, l1Size: UInt32, l1TableOffset: UInt64,
                refcountTableOffset: UInt64, refcountTableClusters: UInt32, compressionType: CompressionType) {
        self.version = version
        self.clusterBits = clusterBits
        self.size = size
        self.l1Size = l1Size
        self.l1TableOffset = l1TableOffset
        self.refcountTableOffset = refcountTableOffset
        self.refcountTableClusters = refcountTableClusters
        if version >= 3 {
            headerLength = UInt32(Self.version3Length)
            self.compressionType = compressionType.rawValue
            if compressionType != .zlib { incompatibleFeatures |= Self.compressionTypeFeature }
        } else {
            headerLength = UInt32(Self.version2Length)
        }
    }

    public var clusterSize: UInt64 { 1 << UInt64(clusterBits) }

    /// The header bytes (72 for v2, `headerLength` for v3).
    public func encoded() -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: version >= 3 ? Int(headerLength) : Self.version2Length)
        bytes.storeBE(Self.magic, at: 0)
        bytes.storeBE(version, at: 4)
        bytes.storeBE(backingFileOffset, at: 8)
        bytes.storeBE(backingFileSize, at: 16)
        bytes.storeBE(clusterBits, at: 20)
        bytes.storeBE(size, at: 24)
        bytes.storeBE(cryptMethod, at: 32)
        bytes.storeBE(l1Size, at: 36)
        bytes.storeBE(l1TableOffset, at: 40)
        bytes.storeBE(refcountTableOffset, at: 48)
        bytes.storeBE(refcountTableClusters, at: 56)
        bytes.storeBE(snapshotCount, at: 60)
        bytes.storeBE(snapshotsOffset, at: 64)
        guard version >= 3 else { return bytes }
        bytes.storeBE(incompatibleFeatures, at: 72)
        bytes.storeBE(compatibleFeatures, at: 80)
        bytes.storeBE(autoclearFeatures, at: 88)
        bytes.storeBE(refcountOrder, at: 96)
        bytes.storeBE(headerLength, at: 100)
        if headerLength > 104 { bytes[104] = compressionType }
        return bytes
    }

    /// Decodes and checks a header; `bytes` is at least the first 112 bytes of the file (or all of
    /// a shorter one). Refuses what this project never writes and qemu would not open.
    public static func decode(_ bytes: [UInt8], path: String) throws -> QCOW2Header {
        let header = try parse(bytes, path: path)
        guard header.refcountOrder == 4 else {
            throw QCOW2Error.badField(path: path, offset: 96, field: "refcount_order", found: UInt64(header.refcountOrder), expected: "4")
        }
        return header
    }

    /// Decodes and checks a header as the specification and qemu allow it, whoever wrote it: any
    /// refcount width from 1 to 64 bits (`qemu-img create -o refcount_bits=N`). Checks each field
    /// on its own; what the fields point to is the reader's business.
    public static func parse(_ bytes: [UInt8], path: String) throws -> QCOW2Header {
        func need(_ count: Int) throws {
            guard bytes.count >= count else {
                throw QCOW2Error.truncated(path: path, offset: UInt64(bytes.count), what: "header of \(count) bytes")
            }
        }
        try need(version2Length)
        let magic = bytes.loadBE(UInt32.self, at: 0)
        guard magic == Self.magic else {
            throw QCOW2Error.badField(path: path, offset: 0, field: "magic", found: UInt64(magic), expected: "0x514649fb (\"QFI\\xfb\")")
        }
        let version = bytes.loadBE(UInt32.self, at: 4)
        guard version == 2 || version == 3 else {
            throw QCOW2Error.badField(path: path, offset: 4, field: "version", found: UInt64(version), expected: "2 or 3")
        }
        let clusterBits = bytes.loadBE(UInt32.self, at: 20)
        guard (minClusterBits...maxClusterBits).contains(clusterBits) else {
            throw QCOW2Error.badField(path: path, offset: 20, field: "cluster_bits", found: UInt64(clusterBits), expected: "9...21")
        }
        var header = QCOW2Header(version: version, clusterBits: clusterBits, size: bytes.loadBE(UInt64.self, at: 24),
                                 l1Size: bytes.loadBE(UInt32.self, at: 36),
                                 l1TableOffset: bytes.loadBE(UInt64.self, at: 40),
                                 refcountTableOffset: bytes.loadBE(UInt64.self, at: 48),
                                 refcountTableClusters: bytes.loadBE(UInt32.self, at: 56), compressionType: .zlib)
        header.backingFileOffset = bytes.loadBE(UInt64.self, at: 8)
        header.backingFileSize = bytes.loadBE(UInt32.self, at: 16)
        header.cryptMethod = bytes.loadBE(UInt32.self, at: 32)
        header.snapshotCount = bytes.loadBE(UInt32.self, at: 60)
        header.snapshotsOffset = bytes.loadBE(UInt64.self, at: 64)
        if version >= 3 {
            try need(104)
            header.incompatibleFeatures = bytes.loadBE(UInt64.self, at: 72)
            header.compatibleFeatures = bytes.loadBE(UInt64.self, at: 80)
            header.autoclearFeatures = bytes.loadBE(UInt64.self, at: 88)
            header.refcountOrder = bytes.loadBE(UInt32.self, at: 96)
            header.headerLength = bytes.loadBE(UInt32.self, at: 100)
            guard header.headerLength >= 104, header.headerLength % 8 == 0 else {
                throw QCOW2Error.badField(path: path, offset: 100, field: "header_length",
                                          found: UInt64(header.headerLength), expected: "a multiple of 8, at least 104")
            }
            header.compressionType = 0
            if header.headerLength > 104 {
                try need(105)
                header.compressionType = bytes[104]
            }
            let usesType = header.incompatibleFeatures & compressionTypeFeature != 0
            guard usesType == (header.compressionType != 0) else {
                throw QCOW2Error.badField(path: path, offset: 104, field: "compression_type", found: UInt64(header.compressionType),
                                          expected: usesType ? "non-zero with incompatible bit 3" : "0 without incompatible bit 3")
            }
        }
        // qemu's limit: a refcount is at most 64 bits wide.
        guard header.refcountOrder <= 6 else {
            throw QCOW2Error.badField(path: path, offset: 96, field: "refcount_order", found: UInt64(header.refcountOrder), expected: "0...6")
        }
        // The header and its extensions live in the first cluster (qemu refuses longer ones).
        guard UInt64(header.headerLength) <= header.clusterSize else {
            throw QCOW2Error.badField(path: path, offset: 100, field: "header_length", found: UInt64(header.headerLength),
                                      expected: "at most the cluster size \(header.clusterSize)")
        }
        return header
    }
}

/// The header extensions between the header and the end of the first cluster (or the backing file
/// name, when there is one), as qcow2.txt lays them out:
///
/// ```
///   u32 type | u32 length | data, padded with zeros to a multiple of 8 | next extension ...
///   type 0 ends the list (and a zero-filled cluster is an empty list)
/// ```
public struct QCOW2HeaderExtension: Sendable, Equatable {
    public static let end: UInt32 = 0
    public static let backingFormat: UInt32 = 0xE279_2ACA
    public static let featureNameTable: UInt32 = 0x6803_F857
    public static let bitmaps: UInt32 = 0x2385_2875
    public static let encryptionHeader: UInt32 = 0x0537_BE77
    public static let externalDataFile: UInt32 = 0x4441_5441

    public var type: UInt32
    /// The byte of the file where the extension's type field is.
    public var offset: UInt64
    public var data: [UInt8]

    /// Walks the extension list in `area`, the bytes from `areaOffset` up to where extensions
    /// must end. An extension that claims more bytes than remain is corrupt, as in qemu; the
    /// bytes after an end marker are not looked at.
    public static func parse(_ area: [UInt8], areaOffset: UInt64, path: String) throws -> [QCOW2HeaderExtension] {
        var extensions: [QCOW2HeaderExtension] = []
        var position = 0
        while position < area.count {
            guard area.count - position >= 8 else {
                throw QCOW2Error.badField(path: path, offset: areaOffset + UInt64(position), field: "header extension",
                                          found: UInt64(area.count - position), expected: "8 bytes of type and length before the end of the header area")
            }
            let type = area.loadBE(UInt32.self, at: position)
            let length = Int(area.loadBE(UInt32.self, at: position + 4))
            if type == end { break }
            guard length <= area.count - position - 8 else {
                throw QCOW2Error.badField(path: path, offset: areaOffset + UInt64(position) + 4,
                                          field: "length of header extension 0x\(String(type, radix: 16))", found: UInt64(length),
                                          expected: "at most the \(area.count - position - 8) bytes left in the header area")
            }
            extensions.append(QCOW2HeaderExtension(type: type, offset: areaOffset + UInt64(position),
                                                   data: Array(area[(position + 8)..<(position + 8 + length)])))
            position += 8 + (length + 7) / 8 * 8
        }
        return extensions
    }

    /// The name a feature name table gives a feature bit (kind 0 incompatible, 1 compatible,
    /// 2 autoclear): 48-byte entries of u8 kind, u8 bit, 46 bytes of name padded with zeros.
    public static func featureName(in extensions: [QCOW2HeaderExtension], kind: UInt8, bit: Int) -> String? {
        for table in extensions where table.type == featureNameTable {
            for start in stride(from: 0, to: table.data.count - 47, by: 48)
            where table.data[start] == kind && Int(table.data[start + 1]) == bit {
                let name = table.data[(start + 2)..<(start + 48)].prefix { $0 != 0 }
                return String(decoding: name, as: UTF8.self)
            }
        }
        return nil
    }
}

/// L1 and L2 entry encodings (qcow2.txt, "Cluster mapping").
///
/// ```
/// L1 entry:  bit 63 copied (refcount is 1) | bits 9-55 host offset of the L2 table
/// L2 entry:  bit 63 copied | bit 62 compressed | bits 0-61 cluster descriptor
///   standard:   bits 9-55 host offset of the data cluster; bit 0 (version 3) reads as zeros
///               whatever the offset says (0, or a preallocated cluster)
///   compressed: x = 62 - (cluster_bits - 8)
///               bits 0..x-1   host BYTE offset of the compressed data
///               bits x..61    number of 512-byte sectors it touches, minus one
/// ```
/// The sector-count field has cluster_bits - 8 bits, so it counts up to 2 * cluster_size / 512
/// sectors: compressed data is always smaller than a cluster, and starts at most 511 bytes into its
/// first sector, so it always fits. Versions 2 and 3 encode compressed entries identically; the
/// compression method (zlib or zstd) is the header's, not the entry's.
public enum QCOW2Entry {
    public static let copied: UInt64 = 1 << 63
    public static let compressed: UInt64 = 1 << 62
    public static let offsetMask: UInt64 = 0x00FF_FFFF_FFFF_FE00
    /// Bit 0 of a standard L2 entry (version 3): the cluster reads as zeros.
    public static let zero: UInt64 = 1

    /// What an L2 entry maps its guest cluster to; the copied flag does not matter for reading.
    public enum Cluster: Equatable, Sendable {
        /// No cluster: reads as zeros (there is never a backing file here).
        case unallocated
        /// The zero flag: reads as zeros; `hostOffset` is a preallocated cluster, or 0.
        case zero(hostOffset: UInt64)
        /// An uncompressed cluster at a host offset.
        case data(hostOffset: UInt64)
        /// Compressed data at a host byte offset, within `sectors` 512-byte sectors.
        case compressed(hostOffset: UInt64, sectors: UInt64)
    }

    /// Decodes an L2 entry (alignment and bounds are the caller's to check).
    public static func cluster(of entry: UInt64, clusterBits: Int) -> Cluster {
        if entry & compressed != 0 {
            let (offset, sectors) = decodeCompressed(entry, clusterBits: clusterBits)
            return .compressed(hostOffset: offset, sectors: sectors)
        }
        let host = entry & offsetMask
        if entry & zero != 0 { return .zero(hostOffset: host) }
        return host == 0 ? .unallocated : .data(hostOffset: host)
    }

    public static func compressedShift(clusterBits: Int) -> UInt64 { UInt64(62 - (clusterBits - 8)) }

    /// The L2 entry of compressed data of `length` bytes at host byte `offset`.
    public static func compressedEntry(offset: UInt64, length: Int, clusterBits: Int) -> UInt64 {
        let sectors = sectorsTouched(offset: offset, length: UInt64(length))
        return compressed | ((sectors - 1) << compressedShift(clusterBits: clusterBits)) | offset
    }

    /// The 512-byte sectors a byte range touches.
    public static func sectorsTouched(offset: UInt64, length: UInt64) -> UInt64 {
        ((offset + length - 1) >> 9) - (offset >> 9) + 1
    }

    /// The host byte offset and sector count of a compressed L2 entry.
    public static func decodeCompressed(_ entry: UInt64, clusterBits: Int) -> (offset: UInt64, sectors: UInt64) {
        let shift = compressedShift(clusterBits: clusterBits)
        let offset = entry & ((1 << shift) - 1)
        let sectors = ((entry & ~(copied | compressed)) >> shift) + 1
        return (offset, sectors)
    }
}
