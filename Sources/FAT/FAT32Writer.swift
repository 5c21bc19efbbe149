import Foundation
import ImageCore

/// Formats a FAT32 filesystem (an EFI System Partition) and fills it with a small tree, as bytes
/// written into a range of an image file: no mkfs, no mount, no root.
///
/// ```
///   sector 0          boot sector: BPB (below), 55 AA
///   sector 1          FSInfo: free cluster count and next free cluster
///   sector 6, 7       backup boot sector and backup FSInfo
///   sectors 8-R       reserved, zero (R = 32 reserved sectors, more to align the data area)
///   R ..              FAT 1, then FAT 2: 32-bit entries (28 bits used), 0 and 1 reserved
///   R + 2F ..         data area: cluster 2 first; the root directory starts at cluster 2
/// ```
/// BPB fields (little-endian): 11 bytes/sector, 13 sectors/cluster, 14 reserved sectors,
/// 16 FAT count, 21 media F8, 24 sectors/track, 26 heads, 28 hidden sectors (the partition's
/// LBA), 32 total sectors, 36 sectors per FAT, 44 root cluster, 48 FSInfo sector, 50 backup boot
/// sector, 64 drive 0x80, 66 signature 0x29, 67 volume ID, 71 label, 82 "FAT32   ".
///
/// Sizes follow mkfs.fat and Microsoft's FAT specification: sectors per cluster by volume size
/// (up to 260 MiB: 1; 8 GiB: 8; 16 GiB: 16; 32 GiB: 32; above: 64), sectors per FAT from the
/// specification's formula (slightly generous), reserved sectors raised so the data area starts
/// on a cluster boundary. FAT32 needs at least 65525 clusters, so the smallest volume is
/// 66600 sectors (about 32.5 MiB).
///
/// Files and directories are laid out in one pass, each in contiguous clusters: directories
/// first where they are met, depth first in the order they were added. Names that are not plain
/// upper-case 8.3 get VFAT long-name entries and a generated 8.3 alias (`BOOTX6~1.EFI` style,
/// or just the upper-cased name when that is lossless).
public struct FAT32Writer: Sendable {
    public static let sectorSize = 512
    public static let defaultESPSize: UInt64 = 260 * ByteCount.MiB
    public static let minimumSectors: UInt64 = 66_600
    public static let minimumSize: UInt64 = minimumSectors * 512
    public static let maximumSize: UInt64 = UInt64(UInt32.max) * 512
    public static let minimumClusters: UInt64 = 65_525
    static let baseReservedSectors: UInt64 = 32
    static let fatCount: UInt64 = 2
    static let rootCluster: UInt32 = 2
    static let fsInfoSector = 1
    static let backupBootSector = 6
    static let endOfChain: UInt32 = 0x0FFF_FFFF
    static let entrySize = 32

    /// Sectors per cluster for a volume of `sectors` 512-byte sectors (Microsoft's FAT32 table,
    /// which mkfs.fat follows).
    public static func sectorsPerCluster(forSectors sectors: UInt64) -> UInt64 {
        switch sectors {
        case ...532_480: return 1
        case ...16_777_216: return 8
        case ...33_554_432: return 16
        case ...67_108_864: return 32
        default: return 64
        }
    }

    /// Where things lie, in sectors from the start of the filesystem.
    public struct Geometry: Sendable, Equatable {
        public let totalSectors: UInt64
        public let sectorsPerCluster: UInt64
        public let reservedSectors: UInt64
        public let sectorsPerFAT: UInt64
        public let clusterCount: UInt64

        public var clusterSize: Int { Int(sectorsPerCluster) * FAT32Writer.sectorSize }
        public var dataStartSector: UInt64 { reservedSectors + FAT32Writer.fatCount * sectorsPerFAT }
        /// Byte offset of a cluster (2...) from the start of the filesystem.
        public func offset(ofCluster cluster: UInt32) -> UInt64 {
            (dataStartSector + UInt64(cluster - 2) * sectorsPerCluster) * UInt64(FAT32Writer.sectorSize)
        }

        init(totalSectors: UInt64) {
            let perCluster = FAT32Writer.sectorsPerCluster(forSectors: totalSectors)
            // Microsoft's formula: FATSz = (total - reserved) / ((256 * spc + nFATs) / 2), rounded up.
            let divisor = (256 * perCluster + FAT32Writer.fatCount) / 2
            let fatSectors = (totalSectors - FAT32Writer.baseReservedSectors + divisor - 1) / divisor
            var reserved = FAT32Writer.baseReservedSectors
            let misalignment = (reserved + FAT32Writer.fatCount * fatSectors) % perCluster
            if misalignment != 0 { reserved += perCluster - misalignment }
            self.totalSectors = totalSectors
            sectorsPerCluster = perCluster
            reservedSectors = reserved
            sectorsPerFAT = fatSectors
            // Clusters the FAT can address and the data area holds, whichever is fewer.
            clusterCount = min((totalSectors - reserved - FAT32Writer.fatCount * fatSectors) / perCluster,
                               fatSectors * 128 - 2)
        }
    }

    public let geometry: Geometry
    /// Up to 11 characters, upper case; nil: "NO NAME" in the boot sector and no label entry.
    public let label: String?
    public let volumeID: UInt32
    /// Creation and modification time of every entry.
    public let date: Date
    var nodes: [Node] = [Node(name: "", isDirectory: true, bytes: [], children: [])]

    struct Node: Sendable {
        var name: String
        var isDirectory: Bool
        var bytes: [UInt8]
        var children: [Int]
    }

    /// `size` in bytes (rounded down to whole sectors); `volumeID` and `date` default to random
    /// and now: inject them for a reproducible filesystem.
    public init(size: UInt64 = FAT32Writer.defaultESPSize, label: String? = nil,
                volumeID: UInt32 = UInt32.random(in: .min ... .max), date: Date = Date()) throws {
        let sectors = size / UInt64(FAT32Writer.sectorSize)
        guard size <= FAT32Writer.maximumSize else { throw FATError.sizeTooLarge(size: size, maximum: FAT32Writer.maximumSize) }
        guard sectors >= FAT32Writer.minimumSectors else {
            throw FATError.sizeTooSmall(size: size, minimum: FAT32Writer.minimumSize)
        }
        let geometry = Geometry(totalSectors: sectors)
        guard geometry.clusterCount >= FAT32Writer.minimumClusters else {
            throw FATError.sizeTooSmall(size: size, minimum: FAT32Writer.minimumSize)
        }
        if let label {
            guard !label.isEmpty, label.utf8.count <= 11 else {
                throw FATError.invalidLabel(label: label, reason: "expected 1 to 11 characters")
            }
            guard label.utf8.allSatisfy({ ShortName.allowed($0) || $0 == 0x20 }), label == label.uppercased() else {
                throw FATError.invalidLabel(label: label,
                                            reason: "expected upper-case letters, digits, spaces and ! # $ % & ' ( ) - @ ^ _ ` { } ~")
            }
        }
        self.geometry = geometry
        self.label = label
        self.volumeID = volumeID
        self.date = date
    }

    // MARK: The tree

    /// Creates a directory and any missing parents (`mkdir -p`); an existing directory is fine.
    /// Paths are absolute or relative to the root, separated by "/".
    public mutating func addDirectory(_ path: String) throws {
        _ = try directory(at: components(of: path), path: path)
    }

    /// Adds a file with its bytes, creating missing parent directories.
    public mutating func addFile(_ path: String, bytes: [UInt8]) throws {
        var parts = try components(of: path)
        guard let name = parts.popLast() else { throw FATError.invalidName(path: path, reason: "expected a file name") }
        guard bytes.count <= Int(UInt32.max) else { throw FATError.fileTooLarge(path: path, size: bytes.count) }
        let parent = try directory(at: parts, path: path)
        guard child(of: parent, named: name) == nil else { throw FATError.alreadyExists(path: path) }
        nodes.append(Node(name: name, isDirectory: false, bytes: bytes, children: []))
        nodes[parent].children.append(nodes.count - 1)
    }

    func components(of path: String) throws -> [String] {
        let parts = path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        for part in parts {
            if let reason = LongName.problem(part) { throw FATError.invalidName(path: path, reason: reason) }
        }
        return parts
    }

    func child(of directory: Int, named name: String) -> Int? {
        let key = name.uppercased()
        return nodes[directory].children.first { nodes[$0].name.uppercased() == key }
    }

    mutating func directory(at parts: [String], path: String) throws -> Int {
        var current = 0
        for part in parts {
            if let existing = child(of: current, named: part) {
                guard nodes[existing].isDirectory else { throw FATError.notADirectory(path: path) }
                current = existing
            } else {
                nodes.append(Node(name: part, isDirectory: true, bytes: [], children: []))
                nodes[current].children.append(nodes.count - 1)
                current = nodes.count - 1
            }
        }
        return current
    }

    // MARK: Writing

    /// Writes the whole filesystem at `offset` of `file` (the partition's byte offset in a disk
    /// file, or 0 for a file of its own), extending the file if it ends sooner. The boot sector's
    /// hidden-sector count is `offset / 512`. The reserved sectors, both FATs and every cluster
    /// in use are written; free clusters are left as they are (a fresh sparse file keeps its holes).
    public func write(to file: RawFile, at offset: UInt64) throws {
        let layout = try Layout(writer: self)
        let end = offset + geometry.totalSectors * UInt64(FAT32Writer.sectorSize)
        if try file.size < end { try file.truncate(to: end) }

        var reserved = [UInt8](repeating: 0, count: Int(geometry.reservedSectors) * FAT32Writer.sectorSize)
        let boot = bootSector(hiddenSectors: UInt32(truncatingIfNeeded: offset / UInt64(FAT32Writer.sectorSize)))
        let info = fsInfoSector(usedClusters: layout.usedClusters)
        for (sector, bytes) in [(0, boot), (FAT32Writer.fsInfoSector, info),
                                (FAT32Writer.backupBootSector, boot), (FAT32Writer.backupBootSector + 1, info)] {
            reserved.replaceSubrange(sector * 512..<(sector + 1) * 512, with: bytes)
        }
        try file.write(reserved, at: offset)

        var fat = [UInt8](repeating: 0, count: Int(geometry.sectorsPerFAT) * FAT32Writer.sectorSize)
        for (index, value) in layout.fat.enumerated() { fat.storeLE(value, at: 4 * index) }
        for copy in 0..<FAT32Writer.fatCount {
            try file.write(fat, at: offset + (geometry.reservedSectors + copy * geometry.sectorsPerFAT) * 512)
        }

        let clusterSize = geometry.clusterSize
        for (index, node) in nodes.enumerated() {
            guard let first = layout.firstCluster[index] else { continue }
            var bytes = node.isDirectory ? directoryBytes(index, layout: layout) : node.bytes
            let padding = (clusterSize - bytes.count % clusterSize) % clusterSize
            bytes.append(contentsOf: repeatElement(0, count: padding))
            try file.write(bytes, at: offset + geometry.offset(ofCluster: first))
        }
    }

    func bootSector(hiddenSectors: UInt32) -> [UInt8] {
        var sector = [UInt8](repeating: 0, count: FAT32Writer.sectorSize)
        sector.replaceSubrange(0..<3, with: [0xEB, 0x58, 0x90])
        // The OEM name Microsoft recommends for the widest compatibility.
        sector.replaceSubrange(3..<11, with: Array("MSWIN4.1".utf8))
        sector.storeLE(UInt16(FAT32Writer.sectorSize), at: 11)
        sector[13] = UInt8(geometry.sectorsPerCluster)
        sector.storeLE(UInt16(geometry.reservedSectors), at: 14)
        sector[16] = UInt8(FAT32Writer.fatCount)
        sector[21] = 0xF8
        // mkfs.fat's geometry for image files; whole-MiB volumes are whole tracks of 32 sectors,
        // which mtools checks.
        sector.storeLE(UInt16(32), at: 24)
        sector.storeLE(UInt16(64), at: 26)
        sector.storeLE(hiddenSectors, at: 28)
        sector.storeLE(UInt32(geometry.totalSectors), at: 32)
        sector.storeLE(UInt32(geometry.sectorsPerFAT), at: 36)
        sector.storeLE(FAT32Writer.rootCluster, at: 44)
        sector.storeLE(UInt16(FAT32Writer.fsInfoSector), at: 48)
        sector.storeLE(UInt16(FAT32Writer.backupBootSector), at: 50)
        sector[64] = 0x80
        sector[66] = 0x29
        sector.storeLE(volumeID, at: 67)
        sector.replaceSubrange(71..<82, with: ShortName.padded(label ?? "NO NAME", to: 11))
        sector.replaceSubrange(82..<90, with: Array("FAT32   ".utf8))
        // Boot code at 0x5A for a BIOS that boots the partition: int 0x18 (no bootable disk), then halt.
        sector.replaceSubrange(0x5A..<0x5F, with: [0xCD, 0x18, 0xF4, 0xEB, 0xFD])
        sector[510] = 0x55
        sector[511] = 0xAA
        return sector
    }

    func fsInfoSector(usedClusters: UInt64) -> [UInt8] {
        var sector = [UInt8](repeating: 0, count: FAT32Writer.sectorSize)
        sector.storeLE(UInt32(0x4161_5252), at: 0)
        sector.storeLE(UInt32(0x6141_7272), at: 484)
        sector.storeLE(UInt32(geometry.clusterCount - usedClusters), at: 488)
        let next = 2 + usedClusters
        sector.storeLE(next < geometry.clusterCount + 2 ? UInt32(next) : UInt32.max, at: 492)
        sector.storeLE(UInt32(0xAA55_0000), at: 508)
        return sector
    }

    /// Cluster numbers, the FAT, and each directory's 8.3 aliases.
    struct Layout {
        var firstCluster: [UInt32?]
        var shortNames: [[UInt8]]
        var fat: [UInt32]
        var usedClusters: UInt64
    }

    /// The 32-byte entries of a directory, in order.
    func directoryEntries(_ index: Int, layout: Layout) -> [[UInt8]] {
        let stamp = FATTimestamp(date)
        var entries: [[UInt8]] = []
        if index == 0 {
            if let label {
                entries.append(DirectoryEntry.short(name: ShortName.padded(label, to: 11), attributes: DirectoryEntry.volumeLabel,
                                                    cluster: 0, size: 0, stamp: stamp))
            }
        } else {
            let parent = nodes.firstIndex { $0.children.contains(index) } ?? 0
            entries.append(DirectoryEntry.short(name: ShortName.padded(".", to: 11), attributes: DirectoryEntry.directory,
                                                cluster: layout.firstCluster[index] ?? 0, size: 0, stamp: stamp))
            entries.append(DirectoryEntry.short(name: ShortName.padded("..", to: 11), attributes: DirectoryEntry.directory,
                                                cluster: parent == 0 ? 0 : layout.firstCluster[parent] ?? 0, size: 0, stamp: stamp))
        }
        for child in nodes[index].children {
            let node = nodes[child]
            let short = layout.shortNames[child]
            if ShortName.display(short) != node.name {
                entries.append(contentsOf: LongName.entries(node.name, checksum: ShortName.checksum(short)))
            }
            entries.append(DirectoryEntry.short(name: short,
                                                attributes: node.isDirectory ? DirectoryEntry.directory : DirectoryEntry.archive,
                                                cluster: layout.firstCluster[child] ?? 0,
                                                size: node.isDirectory ? 0 : UInt32(node.bytes.count), stamp: stamp))
        }
        return entries
    }

    func directoryBytes(_ index: Int, layout: Layout) -> [UInt8] {
        Array(directoryEntries(index, layout: layout).joined())
    }

    /// How many 32-byte entries a directory needs (cluster numbers do not change the count).
    func entryCount(_ index: Int, shortNames: [[UInt8]]) -> Int {
        var count = index == 0 ? (label == nil ? 0 : 1) : 2
        for child in nodes[index].children {
            count += 1
            if ShortName.display(shortNames[child]) != nodes[child].name { count += LongName.entryCount(nodes[child].name) }
        }
        return count
    }
}

extension FAT32Writer.Layout {
    init(writer: FAT32Writer) throws {
        let nodes = writer.nodes
        var shortNames = [[UInt8]](repeating: [], count: nodes.count)
        for node in nodes where node.isDirectory {
            var taken = Set<[UInt8]>()
            for child in node.children {
                guard let short = ShortName.make(for: nodes[child].name, taken: taken) else {
                    throw FATError.noShortName(path: nodes[child].name)
                }
                taken.insert(short)
                shortNames[child] = short
            }
        }
        let geometry = writer.geometry
        let clusterSize = UInt64(geometry.clusterSize)
        var firstCluster = [UInt32?](repeating: nil, count: nodes.count)
        var lengths = [UInt64](repeating: 0, count: nodes.count)
        var next: UInt64 = 2
        var overflow = false
        func place(_ index: Int) throws {
            let node = nodes[index]
            let bytes: UInt64
            if node.isDirectory {
                let entries = writer.entryCount(index, shortNames: shortNames)
                guard entries <= 65_536 else { throw FATError.directoryTooLarge(path: node.name, entries: entries) }
                bytes = max(UInt64(entries * FAT32Writer.entrySize), 1)
            } else {
                bytes = UInt64(node.bytes.count)
            }
            let clusters = (bytes + clusterSize - 1) / clusterSize
            if clusters > 0 {
                if next + clusters > geometry.clusterCount + 2 { overflow = true }
                firstCluster[index] = UInt32(truncatingIfNeeded: next)
                lengths[index] = clusters
                next += clusters
            }
            if node.isDirectory { for child in node.children { try place(child) } }
        }
        try place(0)
        let used = next - 2
        guard !overflow else {
            throw FATError.noSpace(neededClusters: used, availableClusters: geometry.clusterCount, clusterSize: geometry.clusterSize)
        }
        var fat = [UInt32](repeating: 0, count: Int(next))
        fat[0] = 0x0FFF_FF00 | 0xF8
        fat[1] = FAT32Writer.endOfChain
        for (index, first) in firstCluster.enumerated() {
            guard let first else { continue }
            let start = Int(first), count = Int(lengths[index])
            for cluster in start..<start + count - 1 { fat[cluster] = UInt32(cluster + 1) }
            fat[start + count - 1] = FAT32Writer.endOfChain
        }
        self.init(firstCluster: firstCluster, shortNames: shortNames, fat: fat, usedClusters: used)
    }
}

/// A FAT date and time (2-second resolution, local time by convention: we store UTC).
struct FATTimestamp {
    var date: UInt16
    var time: UInt16
    /// Hundredths added to `time` in creation stamps (0 or 100 for an odd second).
    var tenths: UInt8

    init(_ value: Date) {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let parts = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: value)
        let year = min(max(parts.year ?? 1980, 1980), 2107)
        let clamped = year != parts.year
        date = UInt16(year - 1980) << 9 | UInt16(clamped ? 1 : parts.month ?? 1) << 5 | UInt16(clamped ? 1 : parts.day ?? 1)
        let second = clamped ? 0 : parts.second ?? 0
        time = clamped ? 0 : UInt16(parts.hour ?? 0) << 11 | UInt16(parts.minute ?? 0) << 5 | UInt16(second / 2)
        tenths = UInt8(second % 2 * 100)
    }
}

enum DirectoryEntry {
    static let readOnly: UInt8 = 0x01
    static let volumeLabel: UInt8 = 0x08
    static let directory: UInt8 = 0x10
    static let archive: UInt8 = 0x20
    static let longName: UInt8 = 0x0F

    /// 0 name (11), 11 attributes, 12 NT case flags, 13 creation hundredths, 14 creation time,
    /// 16 creation date, 18 access date, 20 cluster high, 22 write time, 24 write date,
    /// 26 cluster low, 28 size.
    static func short(name: [UInt8], attributes: UInt8, cluster: UInt32, size: UInt32, stamp: FATTimestamp) -> [UInt8] {
        var entry = [UInt8](repeating: 0, count: FAT32Writer.entrySize)
        entry.replaceSubrange(0..<11, with: name)
        entry[11] = attributes
        if attributes != volumeLabel {
            entry[13] = stamp.tenths
            entry.storeLE(stamp.time, at: 14)
            entry.storeLE(stamp.date, at: 16)
            entry.storeLE(stamp.date, at: 18)
        }
        entry.storeLE(UInt16(cluster >> 16), at: 20)
        entry.storeLE(stamp.time, at: 22)
        entry.storeLE(stamp.date, at: 24)
        entry.storeLE(UInt16(cluster & 0xFFFF), at: 26)
        entry.storeLE(size, at: 28)
        return entry
    }
}

/// 8.3 aliases: 11 bytes, base padded to 8 and extension to 3 with spaces, no dot.
enum ShortName {
    /// Characters allowed in an alias besides A-Z and 0-9 (ASCII only: no code page).
    static func allowed(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): return true
        default: return Array("!#$%&'()-@^_`{}~".utf8).contains(byte)
        }
    }

    static func padded(_ text: String, to length: Int) -> [UInt8] {
        Array(Array(text.utf8).prefix(length)) + [UInt8](repeating: 0x20, count: max(0, length - text.utf8.count))
    }

    /// "BOOTX64.EFI" from its 11 bytes.
    static func display(_ short: [UInt8]) -> String {
        let base = String(decoding: short[0..<8], as: UTF8.self).trimmingCharacters(in: .whitespaces)
        let ext = String(decoding: short[8..<11], as: UTF8.self).trimmingCharacters(in: .whitespaces)
        return ext.isEmpty ? base : base + "." + ext
    }

    /// The VFAT checksum that ties long-name entries to their alias.
    static func checksum(_ short: [UInt8]) -> UInt8 {
        short.reduce(UInt8(0)) { sum, byte in ((sum & 1) << 7) &+ (sum >> 1) &+ byte }
    }

    /// The alias for `name`: the name itself when it is upper-case 8.3; the upper-cased name when
    /// only case differs; else a basis name with a numeric tail (`~1`, `~2`, ...) that is not
    /// `taken`. Nil when every tail is taken.
    static func make(for name: String, taken: Set<[UInt8]>) -> [UInt8]? {
        var lossy = false
        let upper = name.uppercased()
        let dot = upper.lastIndex(of: ".")
        func clean(_ part: Substring) -> [UInt8] {
            var bytes: [UInt8] = []
            for scalar in part.unicodeScalars {
                if scalar == " " || scalar == "." { lossy = true; continue }
                if scalar.isASCII, allowed(UInt8(scalar.value)) { bytes.append(UInt8(scalar.value)) } else {
                    lossy = true
                    bytes.append(UInt8(ascii: "_"))
                }
            }
            return bytes
        }
        var base = clean(dot.map { upper[..<$0] } ?? upper[...])
        var ext = clean(dot.map { upper[upper.index(after: $0)...] } ?? "")
        if name.hasPrefix(".") { lossy = true }
        if base.isEmpty { base = Array("_".utf8); lossy = true }
        if base.count > 8 { base = Array(base.prefix(8)); lossy = true }
        if ext.count > 3 { ext = Array(ext.prefix(3)); lossy = true }
        let padExt = ext + [UInt8](repeating: 0x20, count: 3 - ext.count)
        if !lossy {
            let short = base + [UInt8](repeating: 0x20, count: 8 - base.count) + padExt
            if !taken.contains(short) { return short }
        }
        for number in 1...999_999 {
            let tail = Array("~\(number)".utf8)
            let stem = Array(base.prefix(8 - tail.count)) + tail
            let short = stem + [UInt8](repeating: 0x20, count: 8 - stem.count) + padExt
            if !taken.contains(short) { return short }
        }
        return nil
    }
}

/// VFAT long names: UTF-16LE, 13 code units per 32-byte entry, stored last part first.
enum LongName {
    static let unitsPerEntry = 13
    static let unitOffsets = [1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30]

    /// Why `name` cannot be a FAT long name, or nil.
    static func problem(_ name: String) -> String? {
        if name == "." || name == ".." { return "\".\" and \"..\" are not names" }
        if name.utf16.count > 255 { return "a name is at most 255 UTF-16 code units" }
        if name.hasSuffix(" ") || name.hasSuffix(".") { return "a name may not end in a space or a dot" }
        if name.unicodeScalars.contains(where: { $0.value < 0x20 || "\"*/:<>?\\|".unicodeScalars.contains($0) }) {
            return "a name may not contain control characters or \" * / : < > ? \\ |"
        }
        return nil
    }

    static func entryCount(_ name: String) -> Int { (name.utf16.count + unitsPerEntry - 1) / unitsPerEntry }

    static func entries(_ name: String, checksum: UInt8) -> [[UInt8]] {
        var units = Array(name.utf16)
        let count = entryCount(name)
        if units.count % unitsPerEntry != 0 { units.append(0) }
        while units.count < count * unitsPerEntry { units.append(0xFFFF) }
        return (1...count).reversed().map { sequence in
            var entry = [UInt8](repeating: 0, count: FAT32Writer.entrySize)
            entry[0] = UInt8(sequence) | (sequence == count ? 0x40 : 0)
            entry[11] = DirectoryEntry.longName
            entry[13] = checksum
            for (slot, offset) in unitOffsets.enumerated() {
                entry.storeLE(units[(sequence - 1) * unitsPerEntry + slot], at: offset)
            }
            return entry
        }
    }
}
