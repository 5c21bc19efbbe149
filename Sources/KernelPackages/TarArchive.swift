/// A tar archive held in memory (a DEB's control.tar and data.tar, decompressed), walked entry by
/// entry. Header blocks of 512 bytes, every numeric field octal ASCII (or GNU base-256 for sizes):
/// ```
///   0 name[100]      100 mode[8]     108 uid[8]       116 gid[8]
/// 124 size[12]       136 mtime[12]   148 chksum[8]    156 typeflag
/// 157 linkname[100]  257 magic[6]    263 version[2]   ... 345 prefix[155] (POSIX ustar only)
/// ```
/// then `size` bytes of data padded to 512. Types read: '0'/NUL/'7' regular file, '1' hard link,
/// '2' symlink, '5' directory; 'L' and 'K' (GNU long name and long link name) and 'x' (PAX
/// path, linkpath, size) apply to the next entry; 'g' (global PAX) is skipped. One zero block
/// ends the archive. The checksum (unsigned, or signed as old writers stored it) is verified.
///
/// ImageFormats has a tar reader for OVA members; it lists regular files of a file on disk and
/// reports `ImageReadError`s, and KernelPackages sits below ImageFormats, hence this one.
enum TarArchive {
    static let blockSize = 512
    /// The largest GNU long name or PAX record block read.
    static let maximumExtensionSize = 1 << 20

    struct Entry {
        enum Kind { case regular, hardlink, symlink, directory }
        var name: String
        var kind: Kind
        var mode: UInt32
        var data: [UInt8]
        var linkName: String
        /// Of the entry's header, in the archive.
        var offset: Int
    }

    /// Calls `visit` for each entry in order. `path` names the archive in errors (it says that
    /// offsets count in the decompressed member).
    static func walk(_ bytes: [UInt8], path: String,
                     visit: (Entry) throws(KernelPackageError) -> Void) throws(KernelPackageError) {
        var position = 0
        var longName: String?, longLink: String?, paxPath: String?, paxLink: String?, paxSize: Int?
        while position < bytes.count {
            guard bytes.count - position >= blockSize else {
                // Some writers leave a short tail after the last entry; zeros are harmless.
                if bytes[position...].allSatisfy({ $0 == 0 }) { return }
                throw .truncated(path: path, offset: UInt64(bytes.count), needed: "the 512-byte tar header at byte \(position)")
            }
            let block = bytes[position..<position + blockSize]
            if block.allSatisfy({ $0 == 0 }) { return }
            let at = position
            func bad(_ field: Int, _ expected: String) -> KernelPackageError {
                .corrupt(path: path, offset: UInt64(at + field), expected: expected)
            }
            guard block[(at + 257)..<(at + 262)].elementsEqual("ustar".utf8) else {
                throw bad(257, "the tar magic \"ustar\", found \(quoted(block[(at + 257)..<(at + 265)]))")
            }
            let stored = octal(block[(at + 148)..<(at + 156)])
            let (unsigned, signed) = checksums(block, at: at)
            guard let stored, stored == unsigned || stored == signed else {
                throw bad(148, "the tar header checksum \(unsigned) (octal \(String(unsigned, radix: 8))), found \(quoted(block[(at + 148)..<(at + 156)]))")
            }
            let size: Int
            if block[at + 124] & 0x80 != 0 {
                // GNU base-256: the rest of the field big-endian; negative values refused.
                let field = block[(at + 124)..<(at + 136)]
                guard block[at + 124] == 0x80, field.dropFirst().prefix(3).allSatisfy({ $0 == 0 }),
                      let value = Int(exactly: field.suffix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }) else {
                    throw bad(124, "a tar size below 2^63")
                }
                size = value
            } else if let value = octal(block[(at + 124)..<(at + 136)]) {
                size = value
            } else {
                throw bad(124, "an octal tar size, found \(quoted(block[(at + 124)..<(at + 136)]))")
            }
            guard let mode = octal(block[(at + 100)..<(at + 108)]) else {
                throw bad(100, "an octal tar mode, found \(quoted(block[(at + 100)..<(at + 108)]))")
            }
            let typeflag = block[at + 156]
            let dataStart = at + blockSize
            var dataSize = size
            if typeflag == UInt8(ascii: "1") || typeflag == UInt8(ascii: "2") { dataSize = 0 }
            if [0, UInt8(ascii: "0"), UInt8(ascii: "7")].contains(typeflag), let paxSize { dataSize = paxSize }
            guard dataSize <= bytes.count - dataStart else {
                throw .truncated(path: path, offset: UInt64(bytes.count), needed: "the \(dataSize) data bytes of the tar entry at byte \(at)")
            }
            let data = bytes[dataStart..<dataStart + dataSize]
            position = dataStart + min(dataSize + (blockSize - dataSize % blockSize) % blockSize, bytes.count - dataStart)

            func extensionText() throws(KernelPackageError) -> String {
                guard dataSize <= maximumExtensionSize else {
                    throw bad(124, "a tar extension header ('\(Unicode.Scalar(typeflag))') of at most \(maximumExtensionSize) bytes, found \(dataSize)")
                }
                return String(decoding: data.prefix { $0 != 0 }, as: UTF8.self)
            }
            func text(_ range: Range<Int>) -> String {
                String(decoding: block[(at + range.lowerBound)..<(at + range.upperBound)].prefix { $0 != 0 }, as: UTF8.self)
            }
            let kind: Entry.Kind
            switch typeflag {
            case UInt8(ascii: "L"): longName = try extensionText(); continue
            case UInt8(ascii: "K"): longLink = try extensionText(); continue
            case UInt8(ascii: "g"): continue
            case UInt8(ascii: "x"):
                _ = try extensionText()
                let records = try paxRecords(data, path: path, at: dataStart)
                if let value = records["path"] { paxPath = value }
                if let value = records["linkpath"] { paxLink = value }
                if let text = records["size"] {
                    guard let value = Int(text), value >= 0 else { throw bad(blockSize, "a decimal PAX size, found \(quoted(text.utf8))") }
                    paxSize = value
                }
                continue
            case 0, UInt8(ascii: "0"), UInt8(ascii: "7"): kind = .regular
            case UInt8(ascii: "1"): kind = .hardlink
            case UInt8(ascii: "2"): kind = .symlink
            case UInt8(ascii: "5"): kind = .directory
            default:
                let what: String
                switch typeflag {
                case UInt8(ascii: "3"): what = "a character device"
                case UInt8(ascii: "4"): what = "a block device"
                case UInt8(ascii: "6"): what = "a FIFO"
                case UInt8(ascii: "S"): what = "a GNU sparse file"
                default: what = "tar entry type \(quoted([typeflag]))"
                }
                throw .unsupported(path: path, offset: UInt64(at + 156), what: "\(what) (\(text(0..<100)))")
            }
            var name = text(0..<100)
            if block[(at + 257)..<(at + 263)].elementsEqual("ustar\0".utf8), block[at + 345] != 0 {
                name = text(345..<500) + "/" + name
            }
            let entry = Entry(name: paxPath ?? longName ?? name, kind: kind, mode: UInt32(truncatingIfNeeded: mode),
                              data: kind == .regular ? Array(data) : [], linkName: paxLink ?? longLink ?? text(157..<257),
                              offset: at)
            longName = nil; longLink = nil; paxPath = nil; paxLink = nil; paxSize = nil
            try visit(entry)
        }
    }

    /// Octal digits, optionally led by spaces and ended by NUL or space; nil when there are none
    /// or another byte appears.
    static func octal(_ field: ArraySlice<UInt8>) -> Int? {
        var value = 0
        var digits = 0
        for byte in field {
            if byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "7") {
                guard digits < 21 else { return nil }
                value = value << 3 | Int(byte - UInt8(ascii: "0"))
                digits += 1
            } else if byte == 0 || byte == UInt8(ascii: " ") {
                if digits > 0 { break }
            } else {
                return nil
            }
        }
        return digits > 0 ? value : nil
    }

    /// The header sum with the checksum field counted as spaces: bytes unsigned, and signed.
    static func checksums(_ block: ArraySlice<UInt8>, at start: Int) -> (unsigned: Int, signed: Int) {
        var unsigned = 0, signed = 0
        for (index, byte) in block.enumerated() {
            let value = (148..<156).contains(index) ? UInt8(ascii: " ") : byte
            unsigned += Int(value)
            signed += Int(Int8(bitPattern: value))
        }
        return (unsigned, signed)
    }

    /// PAX records: "<length> <key>=<value>\n", the length counting the whole record.
    static func paxRecords(_ bytes: ArraySlice<UInt8>, path: String, at offset: Int) throws(KernelPackageError) -> [String: String] {
        var fields: [String: String] = [:]
        var start = bytes.startIndex
        while start < bytes.endIndex, bytes[start] != 0 {
            let bad = KernelPackageError.corrupt(path: path, offset: UInt64(offset + start - bytes.startIndex),
                                                 expected: "a PAX record \"<length> <key>=<value>\\n\", found \(quoted(bytes[start...].prefix(40)))")
            guard let space = bytes[start...].prefix(20).firstIndex(of: UInt8(ascii: " ")),
                  let length = Int(String(decoding: bytes[start..<space], as: UTF8.self)),
                  length > space - start + 1, length <= bytes.endIndex - start,
                  bytes[start + length - 1] == UInt8(ascii: "\n") else { throw bad }
            let record = bytes[(space + 1)..<(start + length - 1)]
            guard let equals = record.firstIndex(of: UInt8(ascii: "=")) else { throw bad }
            fields[String(decoding: record[..<equals], as: UTF8.self)] = String(decoding: record[(equals + 1)...], as: UTF8.self)
            start += length
        }
        return fields
    }
}
