import ImageCore

/// The members of a tar archive (an OVA), listed by walking its headers; no data is read.
///
/// ```
/// 0        header (512)   ustar or GNU, see `TarHeader`
/// 512      data           `size` bytes, zero padded to a multiple of 512
/// ...      header, data, header, data ...
/// end      two zero blocks (one is enough to stop; a file that simply ends is accepted too)
/// ```
/// Regular files ('0', NUL, '7') are listed. PAX extended headers ('x') and GNU long names ('L')
/// rename the member after them ('x' may also give its size); global PAX headers ('g'), GNU
/// long link names ('K'), directories and links are skipped. Every header's checksum is
/// verified and every size checked against the file before it is used.
struct TarMember: Equatable, Sendable {
    var name: String
    /// The byte offset of the member's header, for messages.
    var headerOffset: UInt64
    /// The byte offset of the member's data, and its size.
    var dataOffset: UInt64
    var size: UInt64
}

enum TarReader {
    /// The most members listed; an OVA holds a handful.
    static let maximumMembers = 10_000
    /// The largest PAX record block or GNU long name read.
    static let maximumExtensionSize: UInt64 = 1 << 20
    /// The longest member name kept (Linux's PATH_MAX): with `maximumMembers`, the listing holds
    /// at most 40 MiB of names whatever the headers say.
    static let maximumNameLength = 4096

    /// The regular-file members of the archive at `path`, in archive order.
    static func members(of file: RawFile, path: String) throws -> [TarMember] {
        let fileSize = try file.size
        let block = UInt64(TarHeader.blockSize)
        var members: [TarMember] = []
        var offset: UInt64 = 0
        var pendingName: String?
        var pendingSize: UInt64?
        var headers = 0
        while offset < fileSize {
            guard fileSize >= block, offset <= fileSize - block else {
                throw ImageReadError.truncated(format: .ova, path: path, offset: offset, needed: block, fileSize: fileSize)
            }
            let bytes = try file.read(count: TarHeader.blockSize, at: offset)
            if bytes.allSatisfy({ $0 == 0 }) { break }
            headers += 1
            guard headers <= maximumMembers else {
                throw ImageReadError.corrupt(format: .ova, path: path, offset: offset,
                                             reason: "more than \(maximumMembers) tar headers; an OVA holds a handful of members")
            }
            let header: TarHeader.Block
            do {
                header = try TarHeader.decodeBlock(bytes)
            } catch {
                throw ImageReadError.corrupt(format: .ova, path: path, offset: offset + UInt64(error.fieldOffset),
                                             reason: "not a tar header: expected \(error.expected)")
            }
            let dataOffset = offset + block
            var size = header.size
            switch header.typeflag {
            case UInt8(ascii: "1"), UInt8(ascii: "2"), UInt8(ascii: "3"), UInt8(ascii: "4"), UInt8(ascii: "6"):
                size = 0  // links and devices carry no data whatever the size field says
            case UInt8(ascii: "0"), 0, UInt8(ascii: "7"):
                size = pendingSize ?? size
            default:
                break
            }
            guard size <= fileSize - dataOffset else {
                throw ImageReadError.truncated(format: .ova, path: path, offset: dataOffset, needed: size, fileSize: fileSize)
            }
            switch header.typeflag {
            case UInt8(ascii: "0"), 0, UInt8(ascii: "7"):
                members.append(TarMember(name: pendingName ?? header.name, headerOffset: offset, dataOffset: dataOffset, size: size))
                pendingName = nil
                pendingSize = nil
            case UInt8(ascii: "x"):
                let records = try extensionData(file, path: path, at: dataOffset, size: size, what: "PAX extended header")
                let fields = try paxRecords(records, path: path, at: dataOffset)
                if let name = fields["path"] {
                    try checkName(name, path: path, at: dataOffset)
                    pendingName = name
                }
                if let text = fields["size"] {
                    guard let value = UInt64(text) else {
                        throw ImageReadError.corrupt(format: .ova, path: path, offset: dataOffset,
                                                     reason: "PAX size \"\(ReaderText.printable(text.utf8))\" is not a decimal number")
                    }
                    pendingSize = value
                }
            case UInt8(ascii: "L"):
                let name = try extensionData(file, path: path, at: dataOffset, size: size, what: "GNU long name")
                let text = String(decoding: name.prefix { $0 != 0 }, as: UTF8.self)
                try checkName(text, path: path, at: dataOffset)
                pendingName = text
            default:
                break  // 'g' global PAX records, 'K' long link names, directories, links
            }
            // Padding past the end of the file is tolerated: the next header would be missing anyway.
            let next = dataOffset + TarHeader.blocks(for: size)
            offset = next < dataOffset ? fileSize : next
        }
        return members
    }

    private static func checkName(_ name: String, path: String, at offset: UInt64) throws {
        guard name.utf8.count <= maximumNameLength else {
            throw ImageReadError.corrupt(format: .ova, path: path, offset: offset,
                                         reason: "a member name of \(name.utf8.count) bytes; expected at most \(maximumNameLength)")
        }
    }

    private static func extensionData(_ file: RawFile, path: String, at offset: UInt64, size: UInt64,
                                      what: String) throws -> [UInt8] {
        guard size <= maximumExtensionSize else {
            throw ImageReadError.corrupt(format: .ova, path: path, offset: offset,
                                         reason: "a \(what) of \(size) bytes; at most \(maximumExtensionSize) are read")
        }
        return try file.read(count: Int(size), at: offset)
    }

    /// PAX records: "<length> <key>=<value>\n", the length counting the whole record.
    static func paxRecords(_ bytes: [UInt8], path: String, at offset: UInt64) throws -> [String: String] {
        var fields: [String: String] = [:]
        var start = 0
        while start < bytes.count {
            if bytes[start] == 0 { break }
            func bad() -> ImageReadError {
                .corrupt(format: .ova, path: path, offset: offset + UInt64(start),
                         reason: "a PAX record \"<length> <key>=<value>\\n\", found \"\(ReaderText.printable(bytes[start...].prefix(40)))\"")
            }
            guard let space = bytes[start...].firstIndex(of: UInt8(ascii: " ")),
                  let length = Int(String(decoding: bytes[start..<space], as: UTF8.self)),
                  length > space - start, length <= bytes.count - start,
                  bytes[start + length - 1] == UInt8(ascii: "\n") else { throw bad() }
            let record = bytes[(space + 1)..<(start + length - 1)]
            guard let equals = record.firstIndex(of: UInt8(ascii: "=")) else { throw bad() }
            fields[String(decoding: record[..<equals], as: UTF8.self)] = String(decoding: record[(equals + 1)...], as: UTF8.self)
            start += length
        }
        return fields
    }
}
