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
    public struct Extent: Equatable, Sendable {
        public var access: String
        public var sectors: UInt64
        public var type: String
        public var fileName: String

        public init(access: String, sectors: UInt64, type: String, fileName: String) {
            self.access = access
            self.sectors = sectors
            self.type = type
            self.fileName = fileName
        }
    }

    /// `version`, `CID`, `parentCID`, `createType` (quotes removed).
    public var fields: [String: String] = [:]
    public var extents: [Extent] = []
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
            if let equals = line.firstIndex(of: "=") {
                let key = String(line[..<equals]).vmdkTrimmed(in: " \t")
                let value = String(line[line.index(after: equals)...]).vmdkTrimmed(in: " \t\"")
                if key.hasPrefix("ddb.") { database[key] = value } else { fields[key] = value }
                continue
            }
            // ACCESS SECTORS TYPE "FILE"
            let parts = line.split(separator: " ", maxSplits: 3)
            guard parts.count == 4, let sectors = UInt64(parts[1]) else {
                throw VMDKError.badDescriptor(path: path, line: index + 1, reason: "expected `key=value` or `ACCESS SECTORS TYPE \"file\"`, found `\(line)`")
            }
            extents.append(Extent(access: String(parts[0]), sectors: sectors, type: String(parts[2]),
                                  fileName: String(parts[3]).vmdkTrimmed(in: "\"")))
        }
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
