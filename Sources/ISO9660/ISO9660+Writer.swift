/// A small ISO 9660 writer for contextualization CDs (a NoCloud `cidata` seed, an OpenNebula
/// `CONTEXT` disk): one flat root directory of regular files, written in memory, byte for byte the
/// same for the same inputs.
///
/// ```
/// sector  0-15   system area (zeros)
/// sector  16     primary volume descriptor   (ECMA-119 8.4; ISO level 2 names, "USER_DATA.;1")
/// sector  17     supplementary descriptor    (Joliet, escape sequence "%/E": UCS-2 names, "user-data")
/// sector  18     volume descriptor set terminator
/// sector  19-22  path tables: primary L (little-endian), M (big-endian), Joliet L, M
/// sector  23..   primary root directory, then Joliet root directory (each a whole number of sectors)
/// then           file data, each file from a sector boundary, zero-padded to the next
/// ```
///
/// Why Joliet: Linux's iso9660 driver (what cloud-init's NoCloud and OpenNebula's context scripts
/// mount) shows a disc's Joliet names when it has no Rock Ridge, so `user-data`, `meta-data`,
/// `network-config` and `context.sh` appear exactly, dashes and lower case kept; readers that
/// know only ISO 9660 see the upper-case level-2 names. Files are listed in both directories and
/// share their data extents.
///
/// Every timestamp is the one given (the caller takes `SOURCE_DATE_EPOCH` when it is set), so the
/// image does not depend on when it was made.
public enum ISO9660 {
    public static let sectorSize = 2048

    public struct File: Sendable, Equatable {
        /// The name as the guest should see it (Joliet): at most 64 UCS-2 characters, no `/`.
        public var name: String
        public var contents: [UInt8]

        public init(name: String, contents: [UInt8]) {
            self.name = name
            self.contents = contents
        }
    }

    public enum Error: Swift.Error, CustomStringConvertible, Equatable, Sendable {
        case badLabel(String, because: String)
        case badName(String, because: String)
        case duplicateName(String)
        case tooLarge(name: String, size: Int)

        public var description: String {
            switch self {
            case let .badLabel(label, because): return "volume label '\(label)': \(because)"
            case let .badName(name, because): return "file name '\(name)': \(because)"
            case let .duplicateName(name): return "file name '\(name)' is given twice"
            case let .tooLarge(name, size): return "\(name): \(size) bytes is more than one ISO 9660 extent holds (4 GiB - 1)"
            }
        }
    }

    /// The image holding `files` in its root directory, with `label` as the volume identifier of
    /// both descriptors (as genisoimage writes it: the given case is kept, so `cidata` stays lower
    /// case) and every date `time` (seconds since 1970, UTC).
    public static func image(label: String, files: [File], time: Int64) throws -> [UInt8] {
        try check(label: label)
        var seen = Set<String>()
        for file in files {
            try check(name: file.name)
            guard seen.insert(file.name).inserted else { throw Error.duplicateName(file.name) }
            guard file.contents.count <= Int(UInt32.max) else { throw Error.tooLarge(name: file.name, size: file.contents.count) }
        }
        let primaryNames = primaryIdentifiers(for: files.map(\.name))
        let date = DirectoryDate(epoch: time)

        // Directory contents are laid out once the extents are known; their sizes are known first.
        let primaryOrder = files.indices.sorted { primaryNames[$0].lexicographicallyPrecedes(primaryNames[$1]) }
        let jolietNames = files.map { jolietIdentifier($0.name) }
        let jolietOrder = files.indices.sorted { jolietNames[$0].lexicographicallyPrecedes(jolietNames[$1]) }
        let primaryDirectorySectors = directorySectors(identifiers: primaryOrder.map { primaryNames[$0] })
        let jolietDirectorySectors = directorySectors(identifiers: jolietOrder.map { jolietNames[$0] })

        let pathTableSectors = (primaryL: 19, primaryM: 20, jolietL: 21, jolietM: 22)
        let primaryRoot = 23
        let jolietRoot = primaryRoot + primaryDirectorySectors
        var next = jolietRoot + jolietDirectorySectors
        var extents: [Int] = []
        for file in files {
            extents.append(file.contents.isEmpty ? 0 : next)
            next += sectors(file.contents.count)
        }
        let totalSectors = next

        var image = [UInt8](repeating: 0, count: totalSectors * sectorSize)
        func put(_ bytes: [UInt8], at offset: Int) { image.replaceSubrange(offset..<offset + bytes.count, with: bytes) }

        let primaryRootRecord = directoryRecord(identifier: [0], extent: primaryRoot,
                                                size: primaryDirectorySectors * sectorSize, directory: true, date: date)
        let jolietRootRecord = directoryRecord(identifier: [0], extent: jolietRoot,
                                               size: jolietDirectorySectors * sectorSize, directory: true, date: date)
        put(volumeDescriptor(joliet: false, label: label, totalSectors: totalSectors, rootRecord: primaryRootRecord,
                             pathTable: (pathTableSectors.primaryL, pathTableSectors.primaryM), time: time),
            at: 16 * sectorSize)
        put(volumeDescriptor(joliet: true, label: label, totalSectors: totalSectors, rootRecord: jolietRootRecord,
                             pathTable: (pathTableSectors.jolietL, pathTableSectors.jolietM), time: time),
            at: 17 * sectorSize)
        put([255] + Array("CD001".utf8) + [1], at: 18 * sectorSize)
        put(pathTable(root: primaryRoot, bigEndian: false), at: pathTableSectors.primaryL * sectorSize)
        put(pathTable(root: primaryRoot, bigEndian: true), at: pathTableSectors.primaryM * sectorSize)
        put(pathTable(root: jolietRoot, bigEndian: false), at: pathTableSectors.jolietL * sectorSize)
        put(pathTable(root: jolietRoot, bigEndian: true), at: pathTableSectors.jolietM * sectorSize)

        func writeDirectory(at sector: Int, root: Int, sectorCount: Int, order: [Int], names: [[UInt8]]) {
            var records = [directoryRecord(identifier: [0], extent: root, size: sectorCount * sectorSize, directory: true, date: date),
                           directoryRecord(identifier: [1], extent: root, size: sectorCount * sectorSize, directory: true, date: date)]
            records += order.map { directoryRecord(identifier: names[$0], extent: extents[$0], size: files[$0].contents.count,
                                                   directory: false, date: date) }
            var offset = sector * sectorSize
            for record in records {
                // A record never crosses a sector boundary (ECMA-119 6.8.1.1).
                if offset % sectorSize + record.count > sectorSize { offset += sectorSize - offset % sectorSize }
                put(record, at: offset)
                offset += record.count
            }
        }
        writeDirectory(at: primaryRoot, root: primaryRoot, sectorCount: primaryDirectorySectors, order: primaryOrder, names: primaryNames)
        writeDirectory(at: jolietRoot, root: jolietRoot, sectorCount: jolietDirectorySectors, order: jolietOrder, names: jolietNames)
        for (index, file) in files.enumerated() where !file.contents.isEmpty {
            put(file.contents, at: extents[index] * sectorSize)
        }
        return image
    }

    // MARK: names

    /// A volume label fits both descriptors: at most 16 characters (Joliet's 32 bytes of UCS-2),
    /// printable ASCII.
    static func check(label: String) throws {
        guard !label.isEmpty else { throw Error.badLabel(label, because: "it is empty") }
        guard label.unicodeScalars.count <= 16 else { throw Error.badLabel(label, because: "more than 16 characters (Joliet's limit)") }
        guard label.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value < 0x7f }) else {
            throw Error.badLabel(label, because: "only printable ASCII characters can be used")
        }
    }

    static func check(name: String) throws {
        guard !name.isEmpty, name != ".", name != ".." else { throw Error.badName(name, because: "not a file name") }
        guard name.utf16.count <= 64 else { throw Error.badName(name, because: "more than 64 characters (Joliet's limit)") }
        // Joliet forbids * / : ; ? \ and control characters (Joliet specification, section 3.3).
        for scalar in name.unicodeScalars {
            guard scalar.value >= 0x20, scalar.value <= 0xffff, !"*/:;?\\".unicodeScalars.contains(scalar) else {
                throw Error.badName(name, because: "the character \(scalar.escaped(asASCII: true)) cannot appear in a Joliet name")
            }
        }
    }

    /// ISO 9660 level-2 identifiers, `NAME.EXT;1` in d-characters (A-Z, 0-9, _), at most 30
    /// characters before the version; names that collide get a numbered stem.
    static func primaryIdentifiers(for names: [String]) -> [[UInt8]] {
        var used = Set<String>()
        return names.map { name in
            let dot = name.lastIndex(of: ".")
            var stem = dot.map { String(name[..<$0]) } ?? name
            var ext = dot.map { String(name[name.index(after: $0)...]) } ?? ""
            stem = dCharacters(stem)
            ext = String(dCharacters(ext).prefix(8))
            stem = String(stem.prefix(30 - ext.count - 1))
            var candidate = stem + "." + ext
            var counter = 1
            while used.contains(candidate) {
                let suffix = "_\(counter)"
                candidate = String(stem.prefix(30 - ext.count - 1 - suffix.count)) + suffix + "." + ext
                counter += 1
            }
            used.insert(candidate)
            return Array((candidate + ";1").utf8)
        }
    }

    static func dCharacters(_ text: String) -> String {
        String(text.uppercased().unicodeScalars.map { scalar -> Character in
            switch scalar {
            case "A"..."Z", "0"..."9", "_": return Character(scalar)
            default: return "_"
            }
        })
    }

    /// The Joliet identifier: UCS-2 big-endian, without a version (Linux strips a `;1`, and
    /// xorriso and isoinfo read both).
    static func jolietIdentifier(_ name: String) -> [UInt8] {
        name.utf16.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xff)] }
    }

    // MARK: structures

    static func sectors(_ bytes: Int) -> Int { (bytes + sectorSize - 1) / sectorSize }

    static func directorySectors(identifiers: [[UInt8]]) -> Int {
        var offset = 2 * 34
        for identifier in identifiers {
            let length = recordLength(identifierLength: identifier.count)
            if offset % sectorSize + length > sectorSize { offset += sectorSize - offset % sectorSize }
            offset += length
        }
        return max(1, sectors(offset))
    }

    static func recordLength(identifierLength: Int) -> Int {
        33 + identifierLength + (identifierLength % 2 == 0 ? 1 : 0)
    }

    /// A directory record (ECMA-119 9.1).
    static func directoryRecord(identifier: [UInt8], extent: Int, size: Int, directory: Bool, date: DirectoryDate) -> [UInt8] {
        let length = recordLength(identifierLength: identifier.count)
        var record = [UInt8](repeating: 0, count: length)
        record[0] = UInt8(length)
        record.replaceSubrange(2..<10, with: bothEndian32(UInt32(extent)))
        record.replaceSubrange(10..<18, with: bothEndian32(UInt32(size)))
        record.replaceSubrange(18..<25, with: date.bytes)
        record[25] = directory ? 2 : 0
        record.replaceSubrange(28..<32, with: bothEndian16(1))
        record[32] = UInt8(identifier.count)
        record.replaceSubrange(33..<33 + identifier.count, with: identifier)
        return record
    }

    /// The path table of a disc whose only directory is the root (ECMA-119 9.4).
    static func pathTable(root: Int, bigEndian: Bool) -> [UInt8] {
        let location = UInt32(root)
        let locationBytes = bigEndian ? bigEndian32(location) : littleEndian32(location)
        return [1, 0] + locationBytes + (bigEndian ? [0, 1] : [1, 0]) + [0, 0]
    }

    static let pathTableSize = 10

    /// The primary (type 1) or Joliet supplementary (type 2) volume descriptor (ECMA-119 8.4, 8.5).
    static func volumeDescriptor(joliet: Bool, label: String, totalSectors: Int, rootRecord: [UInt8],
                                 pathTable: (l: Int, m: Int), time: Int64) -> [UInt8] {
        var sector = [UInt8](repeating: 0, count: sectorSize)
        func put(_ bytes: [UInt8], at offset: Int) { sector.replaceSubrange(offset..<offset + bytes.count, with: bytes) }
        func text(_ value: String, length: Int) -> [UInt8] {
            if joliet {
                let units = value.utf16.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xff)] }.prefix(length)
                var padded = Array(units)
                while padded.count + 2 <= length { padded += [0x00, 0x20] }
                while padded.count < length { padded.append(0) }
                return padded
            }
            return Array((Array(value.utf8) + [UInt8](repeating: 0x20, count: length)).prefix(length))
        }
        sector[0] = joliet ? 2 : 1
        put(Array("CD001".utf8), at: 1)
        sector[6] = 1
        put(text("LINUX", length: 32), at: 8)
        put(text(label, length: 32), at: 40)
        put(bothEndian32(UInt32(totalSectors)), at: 80)
        if joliet { put([0x25, 0x2f, 0x45], at: 88) }  // "%/E": UCS-2 level 3
        put(bothEndian16(1), at: 120)
        put(bothEndian16(1), at: 124)
        put(bothEndian16(UInt16(sectorSize)), at: 128)
        put(bothEndian32(UInt32(pathTableSize)), at: 132)
        put(littleEndian32(UInt32(pathTable.l)), at: 140)
        put(bigEndian32(UInt32(pathTable.m)), at: 148)
        put(rootRecord, at: 156)
        for (offset, length) in [(190, 128), (318, 128), (446, 128)] { put(text("", length: length), at: offset) }
        put(text("REHOST", length: 128), at: 574)
        for offset in [702, 739, 776] { put(text("", length: 37), at: offset) }
        let date = VolumeDate(epoch: time).bytes
        put(date, at: 813)
        put(date, at: 830)
        put(Array("0000000000000000".utf8) + [0], at: 847)
        put(date, at: 864)
        sector[881] = 1
        // Application use (883-1394) and the reserved tail stay zero; the primary descriptor's
        // application use is spaces in genisoimage's output, zero in xorriso's: both are accepted.
        return sector
    }

    // MARK: numbers and dates

    static func littleEndian32(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) } }
    static func bigEndian32(_ value: UInt32) -> [UInt8] { littleEndian32(value).reversed() }
    static func bothEndian32(_ value: UInt32) -> [UInt8] { littleEndian32(value) + bigEndian32(value) }
    static func bothEndian16(_ value: UInt16) -> [UInt8] {
        [UInt8(value & 0xff), UInt8(value >> 8), UInt8(value >> 8), UInt8(value & 0xff)]
    }

    /// A civil UTC date from seconds since 1970 (Howard Hinnant's days_from_civil, inverted).
    struct Civil {
        var year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int

        init(epoch: Int64) {
            let seconds = Int(epoch)
            var days = seconds / 86400
            var rest = seconds % 86400
            if rest < 0 { rest += 86400; days -= 1 }
            hour = rest / 3600
            minute = rest % 3600 / 60
            second = rest % 60
            let z = days + 719468
            let era = (z >= 0 ? z : z - 146096) / 146097
            let doe = z - era * 146097
            let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365
            let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
            let mp = (5 * doy + 2) / 153
            day = doy - (153 * mp + 2) / 5 + 1
            month = mp < 10 ? mp + 3 : mp - 9
            year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        }
    }

    /// The 7-byte date of a directory record (ECMA-119 9.1.5): years since 1900, then month, day,
    /// hour, minute, second, and the offset from UTC in 15-minute units (0).
    struct DirectoryDate {
        let bytes: [UInt8]

        init(epoch: Int64) {
            let civil = Civil(epoch: min(max(epoch, 0), 8_000_000_000))
            bytes = [UInt8(clamping: civil.year - 1900), UInt8(civil.month), UInt8(civil.day),
                     UInt8(civil.hour), UInt8(civil.minute), UInt8(civil.second), 0]
        }
    }

    /// The 17-byte date of a volume descriptor (ECMA-119 8.4.26.1): "YYYYMMDDHHMMSScc" in digits
    /// and the offset from UTC (0).
    struct VolumeDate {
        let bytes: [UInt8]

        init(epoch: Int64) {
            let civil = Civil(epoch: min(max(epoch, 0), 253_402_300_799))
            func digits(_ value: Int, _ count: Int) -> String {
                let text = String(value)
                return String(repeating: "0", count: max(0, count - text.count)) + text
            }
            let text = digits(civil.year, 4) + digits(civil.month, 2) + digits(civil.day, 2)
                + digits(civil.hour, 2) + digits(civil.minute, 2) + digits(civil.second, 2) + "00"
            bytes = Array(text.utf8) + [0]
        }
    }
}
