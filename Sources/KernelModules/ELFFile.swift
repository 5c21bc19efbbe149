import ImageCore

/// A read-only ELF reader for the files Rehost judges: kernel modules (ET_REL) and vmlinux
/// images (ET_EXEC), 32- or 64-bit, either byte order (System V gABI, "ELF header").
///
/// ```
/// offset (32 / 64-bit)    field
/// 0        e_ident[16]     7f 'E' 'L' 'F', class (1 = 32, 2 = 64), data (1 = LE, 2 = BE), version 1
/// 16 / 16  u16 e_type      1 REL (.ko), 2 EXEC (vmlinux), 3 DYN, 4 CORE
/// 18 / 18  u16 e_machine
/// 28 / 32  e_phoff         program header table (word size: u32 / u64)
/// 32 / 40  e_shoff         section header table
/// 40 / 52  u16 e_ehsize    52 / 64
/// 42 / 54  u16 e_phentsize 32 / 56,    44 / 56 u16 e_phnum
/// 46 / 58  u16 e_shentsize 40 / 64,    48 / 60 u16 e_shnum (0: the count is section 0's sh_size)
/// 50 / 62  u16 e_shstrndx  0xffff: the index is section 0's sh_link
/// ```
/// Every offset and size read from the file is checked against the file before use; a hostile
/// file gives an `ELFError`, never a trap.
public struct ELFFile: Sendable {
    public let name: String
    public let bytes: [UInt8]
    public let is64Bit: Bool
    public let isLittleEndian: Bool
    public let type: UInt16
    public let machine: UInt16
    public let sections: [ELFSection]
    public let segments: [ELFSegment]
    /// Notes from SHT_NOTE sections and PT_NOTE segments, each file range read once (a vmlinux's
    /// PT_NOTE segment covers the same bytes as its .note sections).
    public let notes: [ELFNote]

    public static let typeRelocatable: UInt16 = 1
    public static let typeExecutable: UInt16 = 2
    public static let sectionTypeNote: UInt32 = 7
    public static let sectionTypeNoBits: UInt32 = 8
    public static let sectionTypeSymbolTable: UInt32 = 2
    public static let segmentTypeNote: UInt32 = 4

    public init(bytes: [UInt8], name: String) throws(ELFError) {
        self.name = name
        self.bytes = bytes
        guard bytes.count >= 16 else { throw .truncated(file: name, offset: 0, wanted: 16, size: bytes.count) }
        guard bytes[0] == 0x7F, bytes[1] == 0x45, bytes[2] == 0x4C, bytes[3] == 0x46 else {
            throw .badField(file: name, offset: 0, field: "magic", found: UInt64(bytes.loadBE(UInt32.self, at: 0)), expected: "7f 45 4c 46 (\\x7fELF)")
        }
        guard bytes[4] == 1 || bytes[4] == 2 else {
            throw .badField(file: name, offset: 4, field: "EI_CLASS", found: UInt64(bytes[4]), expected: "1 (32-bit) or 2 (64-bit)")
        }
        guard bytes[5] == 1 || bytes[5] == 2 else {
            throw .badField(file: name, offset: 5, field: "EI_DATA", found: UInt64(bytes[5]), expected: "1 (little-endian) or 2 (big-endian)")
        }
        guard bytes[6] == 1 else {
            throw .badField(file: name, offset: 6, field: "EI_VERSION", found: UInt64(bytes[6]), expected: "1")
        }
        is64Bit = bytes[4] == 2
        isLittleEndian = bytes[5] == 1
        let reader = ELFReader(bytes: bytes, littleEndian: isLittleEndian, wide: is64Bit, file: name)
        let headerSize = is64Bit ? 64 : 52
        guard bytes.count >= headerSize else { throw .truncated(file: name, offset: 0, wanted: headerSize, size: bytes.count) }
        type = reader.u16(16)
        machine = reader.u16(18)
        let w = is64Bit ? 8 : 4
        let phoff = reader.word(24 + w)
        let shoff = reader.word(24 + 2 * w)
        let base = 24 + 3 * w + 4   // past e_flags
        let ehsize = reader.u16(base)
        let phentsize = Int(reader.u16(base + 2))
        let phnum = Int(reader.u16(base + 4))
        let shentsize = Int(reader.u16(base + 6))
        var shnum = Int(reader.u16(base + 8))
        var shstrndx = Int(reader.u16(base + 10))
        guard Int(ehsize) == headerSize else {
            throw .badField(file: name, offset: UInt64(base), field: "e_ehsize", found: UInt64(ehsize), expected: "\(headerSize)")
        }

        // Section headers. e_shnum 0 with a table present means "more than 0xff00 sections":
        // the count lives in section 0's sh_size (gABI, "Sections", SHN_LORESERVE).
        let sectionHeaderSize = is64Bit ? 64 : 40
        var rawSections: [RawSection] = []
        if shoff != 0 {
            guard shentsize == sectionHeaderSize else {
                throw .badField(file: name, offset: UInt64(base + 6), field: "e_shentsize", found: UInt64(shentsize), expected: "\(sectionHeaderSize)")
            }
            guard let first = Int(exactly: shoff), first <= bytes.count, bytes.count - first >= sectionHeaderSize else {
                throw .outOfFile(file: name, offset: shoff, size: UInt64(sectionHeaderSize), what: "section header 0", fileSize: bytes.count)
            }
            let zero = reader.section(at: first)
            if shnum == 0 { shnum = Int(clamping: zero.size) }
            if shstrndx == 0xFFFF { shstrndx = Int(zero.link) }
            guard (bytes.count - first) / sectionHeaderSize >= shnum else {
                throw .outOfFile(file: name, offset: shoff, size: UInt64(shnum) &* UInt64(sectionHeaderSize),
                                 what: "section header table (\(shnum) entries)", fileSize: bytes.count)
            }
            for i in 0..<shnum { rawSections.append(reader.section(at: first + i * sectionHeaderSize)) }
        } else if shnum != 0 {
            throw .badField(file: name, offset: UInt64(24 + 2 * w), field: "e_shoff", found: 0, expected: "a table offset for \(shnum) sections")
        }
        for (i, s) in rawSections.enumerated() where s.type != Self.sectionTypeNoBits && s.type != 0 {
            guard s.offset <= UInt64(bytes.count), s.size <= UInt64(bytes.count) - s.offset else {
                throw .outOfFile(file: name, offset: s.offset, size: s.size, what: "section \(i) data", fileSize: bytes.count)
            }
        }

        // Section names.
        var names = [String](repeating: "", count: rawSections.count)
        if !rawSections.isEmpty {
            guard shstrndx < rawSections.count, shstrndx != 0 || rawSections.count == 1 else {
                throw .badField(file: name, offset: UInt64(base + 10), field: "e_shstrndx", found: UInt64(shstrndx), expected: "a section index below \(rawSections.count)")
            }
            let table = rawSections[shstrndx]
            if shstrndx != 0 {
                guard table.type == 3 else {
                    throw .badField(file: name, offset: 0, field: "type of section-name section \(shstrndx)", found: UInt64(table.type), expected: "3 (SHT_STRTAB)")
                }
                let strings = bytes[Int(table.offset)..<Int(table.offset + table.size)]
                for (i, s) in rawSections.enumerated() {
                    guard let text = ELFFile.string(in: strings, at: UInt64(s.nameOffset)) else {
                        throw .badString(file: name, offset: table.offset &+ UInt64(s.nameOffset), what: "name of section \(i)")
                    }
                    names[i] = text
                }
            }
        }
        sections = rawSections.enumerated().map { i, s in
            ELFSection(index: i, name: names[i], type: s.type, flags: s.flags, address: s.address, offset: s.offset,
                       size: s.size, link: s.link, info: s.info, alignment: s.alignment, entrySize: s.entrySize)
        }

        // Program headers.
        let programHeaderSize = is64Bit ? 56 : 32
        var segments: [ELFSegment] = []
        if phoff != 0 && phnum != 0 {
            guard phentsize == programHeaderSize else {
                throw .badField(file: name, offset: UInt64(base + 2), field: "e_phentsize", found: UInt64(phentsize), expected: "\(programHeaderSize)")
            }
            guard let first = Int(exactly: phoff), first <= bytes.count, (bytes.count - first) / programHeaderSize >= phnum else {
                throw .outOfFile(file: name, offset: phoff, size: UInt64(phnum * programHeaderSize), what: "program header table (\(phnum) entries)", fileSize: bytes.count)
            }
            for i in 0..<phnum { segments.append(reader.segment(at: first + i * programHeaderSize)) }
        }
        self.segments = segments

        // Notes, once per file range.
        var seen = Set<ClosedRange<UInt64>>()
        var notes: [ELFNote] = []
        func readNotes(offset: UInt64, size: UInt64, alignment: UInt64, what: String) throws(ELFError) {
            guard size > 0 else { return }
            guard seen.insert(offset...(offset &+ size &- 1)).inserted else { return }
            guard offset <= UInt64(bytes.count), size <= UInt64(bytes.count) - offset else {
                throw .outOfFile(file: name, offset: offset, size: size, what: what, fileSize: bytes.count)
            }
            notes += try ELFFile.parseNotes(reader: reader, from: Int(offset), count: Int(size), alignment: alignment == 8 ? 8 : 4, what: what)
        }
        for s in sections where s.type == Self.sectionTypeNote {
            try readNotes(offset: s.offset, size: s.size, alignment: s.alignment, what: "note section \(s.name)")
        }
        for (i, p) in segments.enumerated() where p.type == Self.segmentTypeNote {
            try readNotes(offset: p.offset, size: p.fileSize, alignment: p.alignment, what: "PT_NOTE segment \(i)")
        }
        self.notes = notes
    }

    public func section(named wanted: String) -> ELFSection? {
        sections.first { $0.name == wanted }
    }

    /// The section's bytes; empty for SHT_NOBITS (.bss takes no room in the file).
    public func data(of section: ELFSection) -> ArraySlice<UInt8> {
        if section.type == Self.sectionTypeNoBits || section.type == 0 { return [] }
        // Ranges were checked in init, so these conversions cannot fail for sections of this file.
        guard let start = Int(exactly: section.offset), let count = Int(exactly: section.size),
              start <= bytes.count, count <= bytes.count - start else { return [] }
        return bytes[start..<(start + count)]
    }

    /// The symbols of `.symtab` (entry 0, the null symbol, left out), names from its linked string
    /// table. Empty when the file has no symbol table.
    public func symbols() throws(ELFError) -> [ELFSymbol] {
        guard let table = sections.first(where: { $0.type == Self.sectionTypeSymbolTable }) else { return [] }
        let entrySize = is64Bit ? 24 : 16
        guard table.size % UInt64(entrySize) == 0 else {
            throw .badField(file: name, offset: table.offset, field: "size of \(table.name)", found: table.size, expected: "a multiple of \(entrySize)")
        }
        guard Int(table.link) < sections.count, sections[Int(table.link)].type == 3 else {
            throw .badField(file: name, offset: table.offset, field: "sh_link of \(table.name)", found: UInt64(table.link), expected: "the index of a string table")
        }
        let strings = data(of: sections[Int(table.link)])
        let reader = ELFReader(bytes: bytes, littleEndian: isLittleEndian, wide: is64Bit, file: name)
        var symbols: [ELFSymbol] = []
        let count = Int(table.size) / entrySize
        symbols.reserveCapacity(max(0, count - 1))
        for i in stride(from: 1, to: count, by: 1) {
            let at = Int(table.offset) + i * entrySize
            let nameOffset = reader.u32(at)
            let info: UInt8, sectionIndex: UInt16, value: UInt64, size: UInt64
            if is64Bit {
                info = bytes[at + 4]; sectionIndex = reader.u16(at + 6); value = reader.u64(at + 8); size = reader.u64(at + 16)
            } else {
                value = UInt64(reader.u32(at + 4)); size = UInt64(reader.u32(at + 8)); info = bytes[at + 12]; sectionIndex = reader.u16(at + 14)
            }
            guard let symbolName = ELFFile.string(in: strings, at: UInt64(nameOffset)) else {
                throw .badString(file: name, offset: UInt64(at), what: "name of symbol \(i)")
            }
            symbols.append(ELFSymbol(name: symbolName, value: value, size: size, info: info, sectionIndex: sectionIndex))
        }
        return symbols
    }

    /// The NUL-terminated string at `offset` of a string table; nil when it runs off the table.
    static func string(in table: ArraySlice<UInt8>, at offset: UInt64) -> String? {
        guard offset < UInt64(table.count) else { return offset == 0 && table.isEmpty ? "" : nil }
        let start = table.startIndex + Int(offset)
        guard let end = table[start...].firstIndex(of: 0) else { return nil }
        return String(decoding: table[start..<end], as: UTF8.self)
    }

    /// Elf_Nhdr entries: namesz, descsz, type (u32 each), the name padded to 4, the descriptor
    /// padded to the note alignment (4 everywhere Linux is concerned; 8 for SHT_NOTE aligned so).
    private static func parseNotes(reader: ELFReader, from start: Int, count: Int, alignment: Int, what: String) throws(ELFError) -> [ELFNote] {
        var notes: [ELFNote] = []
        var at = start
        let end = start + count
        func padded(_ n: Int, _ a: Int) -> Int { (n + a - 1) / a * a }
        while end - at >= 12 {
            let nameSize = Int(reader.u32(at)), descSize = Int(reader.u32(at + 4)), type = reader.u32(at + 8)
            let nameStart = at + 12
            guard nameSize <= end - nameStart else {
                throw .badNote(file: reader.file, offset: UInt64(at), what: what, reason: "name of \(nameSize) bytes runs past the end")
            }
            // The last note may lack the padding after an empty descriptor.
            let descStart = min(nameStart + padded(nameSize, 4), end)
            guard descSize <= end - descStart else {
                throw .badNote(file: reader.file, offset: UInt64(at), what: what, reason: "descriptor of \(descSize) bytes runs past the end")
            }
            let nameBytes = reader.bytes[nameStart..<(nameStart + nameSize)]
            notes.append(ELFNote(name: String(decoding: nameBytes.prefix { $0 != 0 }, as: UTF8.self), type: type,
                                 descriptor: Array(reader.bytes[descStart..<(descStart + descSize)])))
            let next = descStart + padded(descSize, alignment)
            if next >= end { break }
            at = next
        }
        return notes
    }
}

public struct ELFSection: Sendable, Equatable {
    public var index: Int
    public var name: String
    public var type: UInt32
    public var flags: UInt64
    public var address: UInt64
    public var offset: UInt64
    public var size: UInt64
    public var link: UInt32
    public var info: UInt32
    public var alignment: UInt64
    public var entrySize: UInt64
}

public struct ELFSegment: Sendable, Equatable {
    public var type: UInt32
    public var flags: UInt32
    public var offset: UInt64
    public var virtualAddress: UInt64
    public var fileSize: UInt64
    public var memorySize: UInt64
    public var alignment: UInt64
}

public struct ELFNote: Sendable, Equatable {
    /// The owner name without its NUL ("Xen", "GNU", "Linux").
    public var name: String
    public var type: UInt32
    public var descriptor: [UInt8]

    public init(name: String, type: UInt32, descriptor: [UInt8]) {
        self.name = name
        self.type = type
        self.descriptor = descriptor
    }
}

public struct ELFSymbol: Sendable, Equatable {
    public var name: String
    public var value: UInt64
    public var size: UInt64
    public var info: UInt8
    /// st_shndx: 0 (SHN_UNDEF) for a symbol the module needs from elsewhere.
    public var sectionIndex: UInt16

    public var binding: UInt8 { info >> 4 }
    public var isUndefined: Bool { sectionIndex == 0 }
}

public enum ELFError: RehostError, Equatable {
    case truncated(file: String, offset: UInt64, wanted: Int, size: Int)
    case badField(file: String, offset: UInt64, field: String, found: UInt64, expected: String)
    case outOfFile(file: String, offset: UInt64, size: UInt64, what: String, fileSize: Int)
    case badString(file: String, offset: UInt64, what: String)
    case badNote(file: String, offset: UInt64, what: String, reason: String)

    public var description: String {
        switch self {
        case let .truncated(file, offset, wanted, size):
            return "\(file): not an ELF file: wanted \(wanted) bytes at byte \(offset), the file has \(size)"
        case let .badField(file, offset, field, found, expected):
            return "\(file): ELF \(field) at byte \(offset) is \(found), expected \(expected)"
        case let .outOfFile(file, offset, size, what, fileSize):
            return "\(file): ELF \(what) at byte \(offset), \(size) bytes, lies outside the \(fileSize)-byte file"
        case let .badString(file, offset, what):
            return "\(file): ELF \(what) (entry at byte \(offset)) is not a NUL-terminated string inside its string table"
        case let .badNote(file, offset, what, reason):
            return "\(file): ELF \(what): the note at byte \(offset) is malformed: \(reason)"
        }
    }
}

/// Field reads in the file's byte order. Callers check bounds first; these do not.
struct ELFReader {
    let bytes: [UInt8]
    let littleEndian: Bool
    let wide: Bool
    let file: String

    func u16(_ at: Int) -> UInt16 { littleEndian ? bytes.loadLE(UInt16.self, at: at) : bytes.loadBE(UInt16.self, at: at) }
    func u32(_ at: Int) -> UInt32 { littleEndian ? bytes.loadLE(UInt32.self, at: at) : bytes.loadBE(UInt32.self, at: at) }
    func u64(_ at: Int) -> UInt64 { littleEndian ? bytes.loadLE(UInt64.self, at: at) : bytes.loadBE(UInt64.self, at: at) }
    /// An address-sized field: u32 in ELFCLASS32, u64 in ELFCLASS64.
    func word(_ at: Int) -> UInt64 { wide ? u64(at) : UInt64(u32(at)) }

    func section(at a: Int) -> RawSection {
        if wide {
            return RawSection(nameOffset: u32(a), type: u32(a + 4), flags: u64(a + 8), address: u64(a + 16), offset: u64(a + 24),
                              size: u64(a + 32), link: u32(a + 40), info: u32(a + 44), alignment: u64(a + 48), entrySize: u64(a + 56))
        }
        return RawSection(nameOffset: u32(a), type: u32(a + 4), flags: UInt64(u32(a + 8)), address: UInt64(u32(a + 12)),
                          offset: UInt64(u32(a + 16)), size: UInt64(u32(a + 20)), link: u32(a + 24), info: u32(a + 28),
                          alignment: UInt64(u32(a + 32)), entrySize: UInt64(u32(a + 36)))
    }

    func segment(at a: Int) -> ELFSegment {
        if wide {
            return ELFSegment(type: u32(a), flags: u32(a + 4), offset: u64(a + 8), virtualAddress: u64(a + 16),
                              fileSize: u64(a + 32), memorySize: u64(a + 40), alignment: u64(a + 48))
        }
        return ELFSegment(type: u32(a), flags: u32(a + 24), offset: UInt64(u32(a + 4)), virtualAddress: UInt64(u32(a + 8)),
                          fileSize: UInt64(u32(a + 16)), memorySize: UInt64(u32(a + 20)), alignment: UInt64(u32(a + 28)))
    }
}

struct RawSection {
    var nameOffset: UInt32, type: UInt32, flags: UInt64, address: UInt64, offset: UInt64, size: UInt64
    var link: UInt32, info: UInt32, alignment: UInt64, entrySize: UInt64
}
