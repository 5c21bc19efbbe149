import ImageCore

/// One 512-byte tar header of a regular file, as OVA consumers read them.
///
/// POSIX ustar layout (IEEE 1003.1-1988), every numeric field octal ASCII ending in NUL:
/// ```
///   0 name[100]      100 mode[8]     108 uid[8]       116 gid[8]
/// 124 size[12]       136 mtime[12]   148 chksum[8]    156 typeflag ('0' = regular file)
/// 157 linkname[100]  257 magic[6]    263 version[2]   265 uname[32]   297 gname[32]
/// 329 devmajor[8]    337 devminor[8] 345 prefix[155]  500 (zero padding to 512)
/// ```
/// `size` holds at most 11 octal digits, so a ustar member is below 8 GiB (8^11 bytes). A larger
/// member (a VMDK of incompressible data) gets GNU tar's base-256 size instead: byte 124 is 0x80
/// and bytes 125..<136 hold the size big-endian; such a header carries GNU's magic
/// "ustar  \0" in place of "ustar\0" "00". Never PAX: some OVA importers do not read it.
/// The checksum is the sum of all 512 bytes with the checksum field itself counted as spaces,
/// stored as six octal digits, NUL, space.
public struct TarHeader: Equatable, Sendable {
    public static let blockSize = 512
    /// The largest size the 11 octal digits of a ustar header can hold.
    public static let largestOctalSize: UInt64 = (1 << 33) - 1
    static let nameCapacity = 100

    public var name: String
    public var size: UInt64
    public var mode: UInt32 = 0o644
    public var modificationTime: UInt64
    /// True when the header uses GNU's magic and base-256 size (members of 8 GiB or more).
    public var isGNU: Bool { size > TarHeader.largestOctalSize }

    public init(name: String, size: UInt64, modificationTime: UInt64) {
        self.name = name
        self.size = size
        self.modificationTime = modificationTime
    }

    /// The header block. The name must fit the 100-byte name field (OVA member names are short
    /// and flat, so the ustar prefix field is never needed).
    public func encoded() throws -> [UInt8] {
        let nameBytes = Array(name.utf8)
        guard !nameBytes.isEmpty, nameBytes.count <= TarHeader.nameCapacity, !nameBytes.contains(0) else {
            throw OVAError.memberNameTooLong(name: name, limit: TarHeader.nameCapacity)
        }
        var block = [UInt8](repeating: 0, count: TarHeader.blockSize)
        block.replaceSubrange(0..<nameBytes.count, with: nameBytes)
        Self.putOctal(UInt64(mode), into: &block, at: 100, width: 8)
        Self.putOctal(0, into: &block, at: 108, width: 8)
        Self.putOctal(0, into: &block, at: 116, width: 8)
        if isGNU {
            block[124] = 0x80
            for index in 0..<8 { block[135 - index] = UInt8(truncatingIfNeeded: size >> (8 * UInt64(index))) }
        } else {
            Self.putOctal(size, into: &block, at: 124, width: 12)
        }
        Self.putOctal(min(modificationTime, (1 << 33) - 1), into: &block, at: 136, width: 12)
        block[156] = UInt8(ascii: "0")
        let magic: [UInt8] = isGNU ? Array("ustar  \0".utf8) : Array("ustar\000".utf8)
        block.replaceSubrange(257..<265, with: magic)
        if !isGNU {
            Self.putOctal(0, into: &block, at: 329, width: 8)
            Self.putOctal(0, into: &block, at: 337, width: 8)
        }
        Self.putOctal(UInt64(Self.checksum(of: block)), into: &block, at: 148, width: 7)
        block[155] = UInt8(ascii: " ")
        return block
    }

    /// Reads a header block back, checking the checksum, the magic and the type; `offset` names
    /// the block's place in the archive for errors.
    public static func decode(_ block: [UInt8], path: String, offset: UInt64) throws -> TarHeader {
        guard block.count == blockSize else {
            throw OVAError.badTarHeader(path: path, offset: offset, what: "a 512-byte block, got \(block.count) bytes")
        }
        let magic = Array(block[257..<265])
        let ustar = Array(block[257..<263]) == Array("ustar\0".utf8) && Array(block[263..<265]) == Array("00".utf8)
        let gnu = magic == Array("ustar  \0".utf8)
        guard ustar || gnu else {
            throw OVAError.badTarHeader(path: path, offset: offset + 257, what: "magic \"ustar\\0\" \"00\" or GNU \"ustar  \\0\", found \(magic)")
        }
        guard let stored = octal(block, at: 148, width: 8), stored == UInt64(checksum(of: block)) else {
            throw OVAError.badTarHeader(path: path, offset: offset + 148, what: "checksum \(checksum(of: block))")
        }
        guard block[156] == UInt8(ascii: "0") || block[156] == 0 else {
            throw OVAError.badTarHeader(path: path, offset: offset + 156, what: "type '0' (regular file), found \(block[156])")
        }
        let size: UInt64
        if block[124] == 0x80 {
            guard gnu, block[125..<128].allSatisfy({ $0 == 0 }) else {
                throw OVAError.badTarHeader(path: path, offset: offset + 124, what: "a base-256 size only in a GNU header, below 2^64")
            }
            size = block[128..<136].reduce(0) { $0 << 8 | UInt64($1) }
        } else if let octalSize = octal(block, at: 124, width: 12) {
            size = octalSize
        } else {
            throw OVAError.badTarHeader(path: path, offset: offset + 124, what: "an octal size")
        }
        guard let mode = octal(block, at: 100, width: 8), let time = octal(block, at: 136, width: 12) else {
            throw OVAError.badTarHeader(path: path, offset: offset + 100, what: "octal mode and mtime")
        }
        let nameBytes = block[0..<nameCapacity].prefix { $0 != 0 }
        var header = TarHeader(name: String(decoding: nameBytes, as: UTF8.self), size: size, modificationTime: time)
        header.mode = UInt32(mode)
        return header
    }

    /// Field offsets in a header block (see the layout above).
    enum Field {
        static let name = 0..<100
        static let size = 124..<136
        static let checksum = 148..<156
        static let typeflag = 156
        static let magic = 257..<265
        /// POSIX ustar only: the directory part of a long name. GNU headers keep times here.
        static let prefix = 345..<500
    }

    /// What a tar reader needs from any header block, of any type.
    struct Block: Equatable, Sendable {
        /// The member name: the ustar prefix, a slash, then the name field.
        var name: String
        /// The bytes of data that follow the header (before padding).
        var size: UInt64
        /// '0' or NUL regular file, '5' directory, 'x'/'g' PAX records, 'L' GNU long name, ...
        var typeflag: UInt8
    }

    /// Why a block is not a tar header: the offset of the field within the block, and what
    /// was expected there.
    struct BlockProblem: Error, Equatable {
        var fieldOffset: Int
        var expected: String
    }

    /// Decodes any ustar or GNU header block for reading: the magic must start with "ustar"
    /// (POSIX "ustar\0" "00" or GNU "ustar  \0"), the checksum must match (as an unsigned sum, or
    /// as the signed sum some old writers stored), and the size is octal or, when byte 124 has
    /// bit 7 set, GNU base-256 (refused if negative or above 2^64 - 1).
    static func decodeBlock(_ block: [UInt8]) throws(BlockProblem) -> Block {
        guard block.count == blockSize else {
            throw BlockProblem(fieldOffset: 0, expected: "a 512-byte block, got \(block.count) bytes")
        }
        let magic = Array(block[Field.magic])
        guard magic.starts(with: Array("ustar".utf8)) else {
            throw BlockProblem(fieldOffset: Field.magic.lowerBound,
                               expected: "the magic \"ustar\", found \(printable(magic))")
        }
        let stored = octal(block, at: Field.checksum.lowerBound, width: Field.checksum.count)
        let unsigned = checksum(of: block)
        guard let stored, stored == UInt64(unsigned) || Int(stored) == signedChecksum(of: block) else {
            throw BlockProblem(fieldOffset: Field.checksum.lowerBound,
                               expected: "the header checksum \(unsigned) (octal \(String(unsigned, radix: 8))), found \(stored.map { "octal " + String($0, radix: 8) } ?? printable(Array(block[Field.checksum])))")
        }
        let size: UInt64
        if block[Field.size.lowerBound] & 0x80 != 0 {
            // Base-256: bit 6 of the first byte is the sign; the value is big-endian in the rest.
            let first = block[Field.size.lowerBound]
            let rest = block[(Field.size.lowerBound + 1)..<Field.size.upperBound]
            guard first & 0x40 == 0, first == 0x80, rest.prefix(rest.count - 8).allSatisfy({ $0 == 0 }) else {
                throw BlockProblem(fieldOffset: Field.size.lowerBound, expected: "a base-256 size from 0 to 2^64 - 1")
            }
            size = rest.suffix(8).reduce(0) { $0 << 8 | UInt64($1) }
        } else if let octalSize = octal(block, at: Field.size.lowerBound, width: Field.size.count) {
            size = octalSize
        } else {
            throw BlockProblem(fieldOffset: Field.size.lowerBound,
                               expected: "an octal size, found \(printable(Array(block[Field.size])))")
        }
        func text(_ range: Range<Int>) -> String {
            String(decoding: block[range].prefix { $0 != 0 }, as: UTF8.self)
        }
        var name = text(Field.name)
        let posix = magic.starts(with: Array("ustar\0".utf8))
        if posix, block[Field.prefix.lowerBound] != 0 { name = text(Field.prefix) + "/" + name }
        return Block(name: name, size: size, typeflag: block[Field.typeflag])
    }

    /// Bytes of zero padding after a member of `size` bytes, up to the next 512-byte block.
    public static func padding(after size: UInt64) -> Int {
        Int((UInt64(blockSize) - size % UInt64(blockSize)) % UInt64(blockSize))
    }

    /// `size` rounded up to whole blocks.
    public static func blocks(for size: UInt64) -> UInt64 {
        size + UInt64(padding(after: size))
    }

    /// Zero-padded octal digits filling `width - 1` bytes, then a NUL.
    static func putOctal(_ value: UInt64, into block: inout [UInt8], at offset: Int, width: Int) {
        var remaining = value
        for index in stride(from: width - 2, through: 0, by: -1) {
            block[offset + index] = UInt8(ascii: "0") + UInt8(remaining & 7)
            remaining >>= 3
        }
        block[offset + width - 1] = 0
    }

    /// Octal digits, optionally surrounded by spaces and ended by NUL or space (as tar writers vary).
    static func octal(_ block: [UInt8], at offset: Int, width: Int) -> UInt64? {
        var value: UInt64 = 0
        var seenDigit = false
        for byte in block[offset..<(offset + width)] {
            if byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "7") {
                value = value << 3 | UInt64(byte - UInt8(ascii: "0"))
                seenDigit = true
            } else if byte == 0 || byte == UInt8(ascii: " ") {
                if seenDigit { break }
            } else {
                return nil
            }
        }
        return seenDigit ? value : nil
    }

    /// The checksum with every byte taken as a signed char, as some historic tars computed it.
    static func signedChecksum(of block: [UInt8]) -> Int {
        var sum = 0
        for (index, byte) in block.enumerated() {
            sum += Field.checksum.contains(index) ? Int(UInt8(ascii: " ")) : Int(Int8(bitPattern: byte))
        }
        return sum
    }

    /// Header bytes for a message, quoted.
    static func printable(_ bytes: [UInt8]) -> String { "\"" + ReaderText.printable(bytes) + "\"" }

    /// The sum of the block's bytes with the checksum field (148..<156) taken as eight spaces.
    static func checksum(of block: [UInt8]) -> Int {
        var sum = 0
        for (index, byte) in block.enumerated() {
            sum += (148..<156).contains(index) ? Int(UInt8(ascii: " ")) : Int(byte)
        }
        return sum
    }
}
