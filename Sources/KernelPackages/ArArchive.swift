/// The members of a Unix `ar` archive, the container of a DEB:
/// ```
/// 0     "!<arch>\n"
/// 8     member header, 60 bytes of ASCII, space padded:
///         0 name[16]  16 mtime[12]  28 uid[6]  34 gid[6]  40 mode[8]  48 size[10] (decimal)
///         58 "`\n"
/// 68    size bytes of data, then "\n" when size is odd; the next header follows
/// ```
/// Names may end with "/" (GNU ar); dpkg writes short names only, so the GNU and BSD long-name
/// schemes ("//", "#1/") are not resolved here.
enum ArArchive {
    static let magic = Array("!<arch>\n".utf8)
    static let headerSize = 60

    struct Member {
        var name: String
        /// Of the member's header and of its data, in the file.
        var headerOffset: Int
        var dataOffset: Int
        var size: Int
    }

    /// Every member, each header and size checked against the file before it is used.
    static func members(_ bytes: UnsafeRawBufferPointer, path: String, maximum: Int = 64) throws(KernelPackageError) -> [Member] {
        var members: [Member] = []
        var position = magic.count
        while position < bytes.count {
            guard bytes.count - position >= headerSize else {
                throw .truncated(path: path, offset: UInt64(bytes.count), needed: "the 60-byte ar member header at byte \(position)")
            }
            let header = UnsafeRawBufferPointer(rebasing: bytes[position..<position + headerSize])
            guard header[58] == UInt8(ascii: "`"), header[59] == UInt8(ascii: "\n") else {
                throw .corrupt(path: path, offset: UInt64(position + 58), expected: "the ar member header end \"`\\n\", found \(quoted(header[58..<60]))")
            }
            let sizeField = header[48..<58]
            let digits = sizeField.prefix { $0 != UInt8(ascii: " ") }
            guard !digits.isEmpty, digits.count <= 10, digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
                  sizeField.dropFirst(digits.count).allSatisfy({ $0 == UInt8(ascii: " ") }) else {
                throw .corrupt(path: path, offset: UInt64(position + 48), expected: "a decimal ar member size, found \(quoted(sizeField))")
            }
            let size = digits.reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) }
            var nameBytes = header[0..<16].reversed().drop { $0 == UInt8(ascii: " ") }.reversed() as [UInt8]
            if nameBytes.count > 1, nameBytes.last == UInt8(ascii: "/") { nameBytes.removeLast() }
            let name = String(decoding: nameBytes, as: UTF8.self)
            let dataOffset = position + headerSize
            guard size <= bytes.count - dataOffset else {
                throw .truncated(path: path, offset: UInt64(bytes.count),
                                 needed: "ar member \(name) (\(size) bytes of data from byte \(dataOffset))")
            }
            guard members.count < maximum else {
                throw .corrupt(path: path, offset: UInt64(position), expected: "at most \(maximum) ar members (a DEB has 3)")
            }
            members.append(Member(name: name, headerOffset: position, dataOffset: dataOffset, size: size))
            // The padding byte may be missing after the last member.
            position = min(dataOffset + size + size % 2, bytes.count)
        }
        return members
    }
}
