import ImageCore

/// Which partition table a disk gets: `mbr` for `--firmware bios` (what `convert` writes today),
/// `gpt` for `uefi` and `both`.
public enum PartitionTableKind: String, Sendable, Codable, CaseIterable {
    case mbr, gpt
}

/// A GUID partition table (UEFI 2.10, chapter 5) for a disk of 512-byte sectors, 128 entries of
/// 128 bytes, as every partitioning tool writes it:
///
/// ```
///   LBA 0          protective MBR: boot code area (440 bytes, GRUB's boot.img for `both`),
///                  one partition of type 0xEE from LBA 1 over the disk (capped at 2^32 - 1)
///   LBA 1          primary header (92 bytes, rest of the sector zero)
///   LBA 2-33       primary entry array (128 × 128 bytes)
///   LBA 34         first usable sector (partitions here start at 2048, 1 MiB)
///   ...
///   LBA N-34       last usable sector
///   LBA N-33..N-2  backup entry array
///   LBA N-1        backup header
/// ```
///
/// Header (little-endian):
/// ```
///   0  "EFI PART"      8  revision 0x00010000   12 header size 92     16 header CRC32
///   20 reserved 0      24 my LBA               32 alternate LBA      40 first usable LBA
///   48 last usable LBA 56 disk GUID            72 entry array LBA    80 entry count
///   84 entry size      88 entry array CRC32
/// ```
/// Entry: 0 type GUID, 16 unique GUID, 32 first LBA, 40 last LBA (inclusive), 48 attributes,
/// 56 name (36 UTF-16LE code units, zero-padded).
///
/// GUIDs are kept as 16 bytes in the order of their text form (`UUIDBytes`); on disk the first
/// three fields are little-endian, so `encodeGUID` swaps them.
public struct GPT: Sendable, Equatable {
    public static let sectorSize = 512
    public static let headerSize = 92
    public static let entryCount = 128
    public static let entrySize = 128
    public static let nameUnits = 36
    /// Sectors of one entry array: 128 × 128 / 512.
    public static let entryArraySectors: UInt64 = UInt64(entryCount * entrySize / sectorSize)
    /// MBR, header, entry array.
    public static let firstUsableLBA: UInt64 = 2 + entryArraySectors
    /// 1 MiB: where partitions start and how they are sized.
    public static let alignmentSectors: UInt64 = 2048
    public static let protectiveMBRType: UInt8 = 0xEE
    static let signature: [UInt8] = Array("EFI PART".utf8)
    static let revision: UInt32 = 0x0001_0000

    /// Partition type GUIDs, in text order.
    public enum PartitionType {
        /// EFI System Partition (sgdisk EF00).
        public static let efiSystem = UUIDBytes.parse("C12A7328-F81F-11D2-BA4B-00A0C93EC93B")!
        /// BIOS boot partition: GRUB i386-pc embeds core.img here on GPT disks (sgdisk EF02).
        public static let biosBoot = UUIDBytes.parse("21686148-6449-6E6F-744E-656564454649")!
        /// Linux filesystem data (sgdisk 8300).
        public static let linuxFilesystem = UUIDBytes.parse("0FC63DAF-8483-4772-8E79-3D69D8477DE4")!
        /// Linux swap (sgdisk 8200).
        public static let linuxSwap = UUIDBytes.parse("0657FD6D-A4AB-43C4-84E5-0933C84B4F4F")!
    }

    /// Attribute bits.
    public enum Attribute {
        public static let requiredPartition: UInt64 = 1 << 0
        /// Bit 2, "legacy BIOS bootable": what some BIOSes and syslinux's gptmbr look for; GRUB's
        /// boot.img ignores it.
        public static let legacyBIOSBootable: UInt64 = 1 << 2
    }

    public let diskSectors: UInt64
    /// 16 bytes, text order.
    public let diskGUID: [UInt8]
    /// In table order (entry 0 is Linux's partition 1); at most 128.
    public let partitions: [GPTPartition]
    /// The protective MBR's boot code area, bytes 0..<440: zeros, or GRUB's boot.img code for a
    /// disk that boots both ways (`BiosBootInstaller` keeps bytes 440..<512).
    public var bootCode: [UInt8]

    public var lastUsableLBA: UInt64 { diskSectors - GPT.firstUsableLBA }
    public var backupEntryArrayLBA: UInt64 { diskSectors - 1 - GPT.entryArraySectors }
    public var backupHeaderLBA: UInt64 { diskSectors - 1 }
    /// Where `backupBytes()` goes.
    public var backupOffset: UInt64 { backupEntryArrayLBA * UInt64(GPT.sectorSize) }

    /// Checks the table: partitions inside the usable range, in any order but without overlap,
    /// non-empty, names that fit 36 UTF-16 code units, GUIDs of 16 bytes.
    public init(diskSectors: UInt64, diskGUID: [UInt8] = UUIDBytes.random(), partitions: [GPTPartition],
                bootCode: [UInt8] = [UInt8](repeating: 0, count: MBR.bootCodeSize)) throws {
        precondition(diskGUID.count == 16, "a GUID is 16 bytes")
        precondition(bootCode.count == MBR.bootCodeSize, "MBR boot code must be \(MBR.bootCodeSize) bytes")
        // Room for both tables and one aligned MiB.
        guard diskSectors >= 2 * GPT.firstUsableLBA + 1 else { throw DiskLayoutError.gptDiskTooSmall(diskSectors: diskSectors) }
        guard partitions.count <= GPT.entryCount else {
            throw DiskLayoutError.gptTooManyPartitions(count: partitions.count)
        }
        let lastUsable = diskSectors - GPT.firstUsableLBA
        for (index, partition) in partitions.enumerated() {
            precondition(partition.type.count == 16 && partition.uniqueGUID.count == 16, "a GUID is 16 bytes")
            guard partition.firstLBA >= GPT.firstUsableLBA, partition.firstLBA <= partition.lastLBA,
                  partition.lastLBA <= lastUsable else {
                throw DiskLayoutError.gptPartitionOutOfRange(number: index + 1, firstLBA: partition.firstLBA,
                                                             lastLBA: partition.lastLBA, firstUsable: GPT.firstUsableLBA,
                                                             lastUsable: lastUsable)
            }
            guard partition.name.utf16.count <= GPT.nameUnits else {
                throw DiskLayoutError.gptNameTooLong(name: partition.name, units: partition.name.utf16.count)
            }
            for (earlierIndex, earlier) in partitions[..<index].enumerated()
            where partition.firstLBA <= earlier.lastLBA && earlier.firstLBA <= partition.lastLBA {
                throw DiskLayoutError.gptOverlappingPartitions(first: earlierIndex + 1, second: index + 1)
            }
        }
        self.diskSectors = diskSectors
        self.diskGUID = diskGUID
        self.partitions = partitions
        self.bootCode = bootCode
    }

    /// What a caller asks for: a type, a name, a size in bytes (nil: the rest of the disk), and
    /// attributes.
    public struct Request: Sendable, Equatable {
        public var type: [UInt8]
        public var name: String
        public var size: UInt64?
        public var attributes: UInt64

        public init(type: [UInt8], name: String, size: UInt64?, attributes: UInt64 = 0) {
            self.type = type
            self.name = name
            self.size = size
            self.attributes = attributes
        }
    }

    /// Lays partitions out one after the other from sector 2048, each starting on a MiB boundary
    /// and a whole number of MiB long (sizes are rounded up). One request may have a nil size: it
    /// gets what the others leave, up to the last MiB boundary before the backup table. `makeGUID`
    /// draws the disk GUID first, then one unique GUID per partition in order: inject it to make a
    /// reproducible disk.
    public static func make(diskSize: UInt64, requests: [Request],
                            makeGUID: () -> [UInt8] = UUIDBytes.random) throws -> GPT {
        let diskSectors = diskSize / UInt64(sectorSize)
        guard diskSectors >= 2 * alignmentSectors else { throw DiskLayoutError.gptDiskTooSmall(diskSectors: diskSectors) }
        guard requests.filter({ $0.size == nil }).count <= 1 else {
            throw DiskLayoutError.inconsistentPlan("more than one GPT partition asks for the rest of the disk")
        }
        let usableEnd = (diskSectors - firstUsableLBA + 1) / alignmentSectors * alignmentSectors
        let fixed = requests.reduce(UInt64(0)) { saturatingAdd($0, roundUp($1.size ?? 0, to: alignmentSectors * 512) / 512) }
        let available = usableEnd - alignmentSectors
        guard fixed < available || (fixed == available && !requests.contains { $0.size == nil }) else {
            throw DiskLayoutError.gptPartitionsDoNotFit(diskSize: diskSize, neededSectors: saturatingAdd(fixed, alignmentSectors),
                                                        availableSectors: available)
        }
        let diskGUID = makeGUID()
        var start = alignmentSectors
        var partitions: [GPTPartition] = []
        for request in requests {
            let sectors = request.size.map { roundUp($0, to: alignmentSectors * 512) / 512 } ?? (available - fixed)
            guard sectors > 0 else { throw DiskLayoutError.emptyPartition(firstLBA: start) }
            partitions.append(GPTPartition(type: request.type, firstLBA: start, lastLBA: start + sectors - 1,
                                           name: request.name, attributes: request.attributes, uniqueGUID: makeGUID()))
            start += sectors
        }
        return try GPT(diskSectors: diskSectors, diskGUID: diskGUID, partitions: partitions)
    }

    // MARK: Encoding

    /// Sector 0: the boot code area, disk signature 0, one 0xEE entry from LBA 1 to the end of the
    /// disk (or 2^32 - 1 sectors), 55 AA.
    public func protectiveMBR() -> [UInt8] {
        let count = min(diskSectors - 1, UInt64(UInt32.max))
        // count > 0 and both fields fit 32 bits by construction.
        let entry = try! MBRPartition(bootable: false, type: GPT.protectiveMBRType, firstLBA: 1, sectorCount: count)
        return MBR(bootCode: bootCode, diskSignature: 0, partitions: [entry]).encode()
    }

    /// The 128 × 128-byte entry array (unused entries zero).
    public func entryArray() -> [UInt8] {
        var array = [UInt8](repeating: 0, count: GPT.entryCount * GPT.entrySize)
        for (index, partition) in partitions.enumerated() {
            array.replaceSubrange(index * GPT.entrySize..<(index + 1) * GPT.entrySize, with: partition.encodeEntry())
        }
        return array
    }

    /// One header sector; `primary` at LBA 1 pointing at the entries at LBA 2, else the backup
    /// at the last LBA pointing at the backup entries.
    public func header(primary: Bool, entryArrayCRC: UInt32? = nil) -> [UInt8] {
        var sector = [UInt8](repeating: 0, count: GPT.sectorSize)
        sector.replaceSubrange(0..<8, with: GPT.signature)
        sector.storeLE(GPT.revision, at: 8)
        sector.storeLE(UInt32(GPT.headerSize), at: 12)
        sector.storeLE(primary ? UInt64(1) : backupHeaderLBA, at: 24)
        sector.storeLE(primary ? backupHeaderLBA : UInt64(1), at: 32)
        sector.storeLE(GPT.firstUsableLBA, at: 40)
        sector.storeLE(lastUsableLBA, at: 48)
        sector.replaceSubrange(56..<72, with: GPT.encodeGUID(diskGUID))
        sector.storeLE(primary ? UInt64(2) : backupEntryArrayLBA, at: 72)
        sector.storeLE(UInt32(GPT.entryCount), at: 80)
        sector.storeLE(UInt32(GPT.entrySize), at: 84)
        sector.storeLE(entryArrayCRC ?? CRC32.checksum(entryArray()), at: 88)
        sector.storeLE(CRC32.checksum(sector[0..<GPT.headerSize]), at: 16)
        return sector
    }

    /// LBA 0-33: protective MBR, primary header, entry array.
    public func primaryBytes() -> [UInt8] {
        let entries = entryArray()
        return protectiveMBR() + header(primary: true, entryArrayCRC: CRC32.checksum(entries)) + entries
    }

    /// LBA N-33 .. N-1: backup entry array, backup header; goes at `backupOffset`.
    public func backupBytes() -> [UInt8] {
        let entries = entryArray()
        return entries + header(primary: false, entryArrayCRC: CRC32.checksum(entries))
    }

    /// Writes both tables into a disk file of at least `diskSectors` sectors (a smaller file is
    /// extended, sparsely). Partition contents are not touched.
    public func write(to file: RawFile) throws {
        let size = diskSectors * UInt64(GPT.sectorSize)
        if try file.size < size { try file.truncate(to: size) }
        try file.write(primaryBytes(), at: 0)
        try file.write(backupBytes(), at: backupOffset)
    }

    static func encodeGUID(_ guid: [UInt8]) -> [UInt8] {
        [guid[3], guid[2], guid[1], guid[0], guid[5], guid[4], guid[7], guid[6]] + guid[8..<16]
    }

    static func decodeGUID<C: Collection>(_ bytes: C) -> [UInt8] where C.Element == UInt8 {
        encodeGUID(Array(bytes)) // the swap is its own inverse
    }
}

/// One GPT entry. LBAs are inclusive, as on disk.
public struct GPTPartition: Sendable, Equatable {
    /// 16 bytes, text order; see `GPT.PartitionType`.
    public var type: [UInt8]
    /// 16 bytes, text order.
    public var uniqueGUID: [UInt8]
    public var firstLBA: UInt64
    public var lastLBA: UInt64
    public var attributes: UInt64
    /// At most 36 UTF-16 code units.
    public var name: String

    public init(type: [UInt8], firstLBA: UInt64, lastLBA: UInt64, name: String = "", attributes: UInt64 = 0,
                uniqueGUID: [UInt8] = UUIDBytes.random()) {
        self.type = type
        self.uniqueGUID = uniqueGUID
        self.firstLBA = firstLBA
        self.lastLBA = lastLBA
        self.attributes = attributes
        self.name = name
    }

    public var sectorCount: UInt64 { lastLBA - firstLBA + 1 }
    public var offset: UInt64 { firstLBA * UInt64(GPT.sectorSize) }
    public var size: UInt64 { sectorCount * UInt64(GPT.sectorSize) }

    func encodeEntry() -> [UInt8] {
        var entry = [UInt8](repeating: 0, count: GPT.entrySize)
        entry.replaceSubrange(0..<16, with: GPT.encodeGUID(type))
        entry.replaceSubrange(16..<32, with: GPT.encodeGUID(uniqueGUID))
        entry.storeLE(firstLBA, at: 32)
        entry.storeLE(lastLBA, at: 40)
        entry.storeLE(attributes, at: 48)
        for (index, unit) in name.utf16.prefix(GPT.nameUnits).enumerated() { entry.storeLE(unit, at: 56 + 2 * index) }
        return entry
    }
}
