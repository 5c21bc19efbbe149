import ImageCore

/// The text descriptor embedded after the header:
/// ```
/// # Disk DescriptorFile
/// version=1
/// CID=1a2b3c4d
/// parentCID=ffffffff
/// createType="streamOptimized"
///
/// # Extent description
/// RW 2097152 SPARSE "disk.vmdk"
///
/// # The Disk Data Base
/// #DDB
///
/// ddb.adapterType = "lsilogic"
/// ddb.geometry.cylinders = "130"
/// ...
/// ```
public struct VMDKDescriptor: Equatable, Sendable {
    /// One extent line: `ACCESS SECTORS TYPE ["FILE" [OFFSET]]`, e.g. `RW 4194304 SPARSE "d-s001.vmdk"`,
    /// `RW 4505600 FLAT "d-flat.vmdk" 0`, `RW 2048 ZERO`.
    public struct Extent: Equatable, Sendable {
        /// RW, RDONLY or NOACCESS.
        public var access: String
        public var sectors: UInt64
        /// FLAT, SPARSE, ZERO, VMFS, VMFSSPARSE, SESPARSE, VMFSRDM, VMFSRAW.
        public var type: String
        /// Empty for a ZERO extent.
        public var fileName: String
        /// Where the extent's data starts in its file, in sectors (FLAT extents; 0 otherwise).
        public var offset: UInt64

        public init(access: String, sectors: UInt64, type: String, fileName: String, offset: UInt64 = 0) {
            self.access = access
            self.sectors = sectors
            self.type = type
            self.fileName = fileName
            self.offset = offset
        }
    }

    /// The access words that start an extent line.
    public static let accessModes: Set<String> = ["RW", "RDONLY", "NOACCESS"]

    /// `version`, `CID`, `parentCID`, `createType` (quotes removed).
    public var fields: [String: String] = [:]
    public var extents: [Extent] = []
    /// The 1-based line number of each extent's line, for messages.
    public var extentLines: [Int] = []
    /// `ddb.*` entries (quotes removed).
    public var database: [String: String] = [:]

    public init() {}

    /// The cylinders/heads/sectors VMware records: 63 sectors per track, 16 heads on IDE (whose
    /// CHS addressing stops at 16383 cylinders) and 255 heads on SCSI adapters (capped at 65535,
    /// the most a u16 can say). Cylinders are the whole number that fits, at least 1.
    public static func geometry(sectors: UInt64, adapter: WriterOptions.VMDKAdapter) -> (cylinders: UInt64, heads: UInt64, sectors: UInt64) {
        let heads: UInt64 = adapter == .ide ? 16 : 255
        let cap: UInt64 = adapter == .ide ? 16383 : 65535
        let cylinders = min(cap, max(1, sectors / (heads * 63)))
        return (cylinders, heads, 63)
    }

    /// The descriptor text for one sparse extent.
    public static func text(createType: String, capacitySectors: UInt64, fileName: String, cid: UInt32,
                            longContentID: String, options: WriterOptions) -> String {
        let geometry = geometry(sectors: capacitySectors, adapter: options.vmdkAdapter)
        var lines = [
            "# Disk DescriptorFile",
            "version=1",
            "CID=\(hex8(cid))",
            "parentCID=ffffffff",
            "createType=\"\(createType)\"",
            "",
            "# Extent description",
            "RW \(capacitySectors) SPARSE \"\(fileName)\"",
            "",
            "# The Disk Data Base",
            "#DDB",
            "",
            "ddb.adapterType = \"\(options.vmdkAdapter.rawValue)\"",
            "ddb.geometry.cylinders = \"\(geometry.cylinders)\"",
            "ddb.geometry.heads = \"\(geometry.heads)\"",
            "ddb.geometry.sectors = \"\(geometry.sectors)\"",
            "ddb.longContentID = \"\(longContentID)\"",
            // VMware's "tools not installed / unknown" pair, which AWS VM import accepts.
            "ddb.toolsInstallType = \"4\"",
            "ddb.toolsVersion = \"2147483647\"",
        ]
        if let uuid = options.uuid, uuid.count == 16 {
            lines.append("ddb.uuid = \"\(uuidText(uuid))\"")
        }
        lines.append("ddb.virtualHWVersion = \"\(options.vmdkHardwareVersion)\"")
        return lines.joined(separator: "\n") + "\n"
    }

    /// VMware's ddb.uuid spelling: 16 hex bytes separated by spaces, a dash after the eighth.
    static func uuidText(_ uuid: [UInt8]) -> String {
        let hex = uuid.map { byte in byte < 16 ? "0" + String(byte, radix: 16) : String(byte, radix: 16) }
        return hex[0..<8].joined(separator: " ") + "-" + hex[8..<16].joined(separator: " ")
    }

    static func hex8(_ value: UInt32) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 8 - digits.count) + digits
    }

    /// Parses descriptor text (trailing NUL padding allowed). `path` names the file in errors.
    public init(parsing text: String, path: String) throws {
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.vmdkTrimmed(in: " \t\r\0")
            if line.isEmpty || line.hasPrefix("#") { continue }
            let firstWord = line.prefix { $0 != " " && $0 != "\t" }
            if Self.accessModes.contains(String(firstWord)) {
                extents.append(try Self.parseExtent(line, path: path, line: index + 1))
                extentLines.append(index + 1)
                continue
            }
            if let equals = line.firstIndex(of: "=") {
                let key = String(line[..<equals]).vmdkTrimmed(in: " \t")
                let value = String(line[line.index(after: equals)...]).vmdkTrimmed(in: " \t\"")
                if key.hasPrefix("ddb.") { database[key] = value } else { fields[key] = value }
                continue
            }
            throw VMDKError.badDescriptor(path: path, line: index + 1, reason: "expected `key=value` or `ACCESS SECTORS TYPE \"file\"`, found `\(line)`")
        }
    }

    /// `ACCESS SECTORS TYPE`, then for every type but ZERO a quoted file name (which may hold
    /// spaces), then for FLAT an optional sector offset into that file.
    static func parseExtent(_ line: String, path: String, line number: Int) throws -> Extent {
        func bad(_ reason: String) -> VMDKError {
            .badDescriptor(path: path, line: number, reason: "extent line `\(line)`: \(reason)")
        }
        var rest = Substring(line)
        func word() -> Substring {
            rest = rest.drop { $0 == " " || $0 == "\t" }
            let word = rest.prefix { $0 != " " && $0 != "\t" }
            rest = rest.dropFirst(word.count)
            return word
        }
        let access = String(word())
        let sectorsWord = word()
        guard let sectors = UInt64(sectorsWord) else { throw bad("the size `\(sectorsWord)` is not a number of sectors") }
        let type = String(word())
        guard !type.isEmpty else { throw bad("no extent type") }
        rest = rest.drop { $0 == " " || $0 == "\t" }
        guard !rest.isEmpty else { return Extent(access: access, sectors: sectors, type: type, fileName: "") }
        guard rest.first == "\"", let close = rest.dropFirst().firstIndex(of: "\"") else {
            throw bad("the file name must be in double quotes")
        }
        let fileName = String(rest[rest.index(after: rest.startIndex)..<close])
        rest = rest[rest.index(after: close)...]
        let offsetWord = word()
        guard word().isEmpty else { throw bad("unexpected text after the offset") }
        guard !offsetWord.isEmpty else { return Extent(access: access, sectors: sectors, type: type, fileName: fileName) }
        guard let offset = UInt64(offsetWord) else { throw bad("the offset `\(offsetWord)` is not a number of sectors") }
        return Extent(access: access, sectors: sectors, type: type, fileName: fileName, offset: offset)
    }
}

extension StringProtocol {
    func vmdkTrimmed(in set: String) -> String {
        var slice = Substring(self)
        while let first = slice.first, set.contains(first) { slice.removeFirst() }
        while let last = slice.last, set.contains(last) { slice.removeLast() }
        return String(slice)
    }
}
