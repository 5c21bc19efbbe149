import ImageCore

/// One RPM header structure (the signature and the main header share it), all integers big-endian:
/// ```
/// offset        size        field
///      0           3        magic 8e ad e8
///      3           1        version 01
///      4           4        reserved
///      8           4        il: number of index entries (1...65535 here, as rpm allows)
///     12           4        dl: bytes in the data store (at most 256 MiB, as rpm allows)
///     16      16 * il       index entries: tag, type, offset (into the store), count
/// 16+16*il        dl        the store: values, each aligned to its type's size
/// ```
/// Types: 1 CHAR, 2 INT8, 3 INT16, 4 INT32, 5 INT64 (count values of 1, 1, 2, 4, 8 bytes),
/// 6 STRING (count 1), 7 BIN (count bytes), 8 STRING_ARRAY and 9 I18NSTRING (count
/// NUL-terminated strings one after another). Every entry's type, offset, count and alignment is
/// checked when the header is read; strings are walked, within the store, when a tag is asked for.
struct RPMHeader {
    enum ValueType: UInt32 {
        case char = 1, int8, int16, int32, int64, string, bin, stringArray, i18nString

        /// The size of one value of a fixed-size type.
        var width: Int? {
            switch self {
            case .char, .int8, .bin: return 1
            case .int16: return 2
            case .int32: return 4
            case .int64: return 8
            case .string, .stringArray, .i18nString: return nil
            }
        }
    }

    struct Entry {
        var tag: UInt32
        var type: ValueType
        /// Into the store.
        var offset: Int
        var count: Int
        /// Of the index entry in the file, for messages.
        var entryOffset: UInt64
    }

    static let magic: [UInt8] = [0x8E, 0xAD, 0xE8]
    static let introSize = 16
    static let entrySize = 16
    static let maximumEntries = 0xFFFF
    static let maximumStore = 256 << 20

    let path: String
    /// "signature" or "header", for messages.
    let what: String
    /// The first entry for each tag.
    let entries: [UInt32: Entry]
    /// A copy of the store (bounded by `maximumStore` and by the file).
    let store: [UInt8]
    /// The file offset of the store, and of the byte after it.
    let storeOffset: Int
    let end: Int

    /// Reads the header at `start` in `bytes`.
    init(_ bytes: UnsafeRawBufferPointer, at start: Int, path: String, what: String) throws(KernelPackageError) {
        self.path = path
        self.what = what
        guard bytes.count - start >= Self.introSize else {
            throw .truncated(path: path, offset: UInt64(bytes.count), needed: "the 16-byte intro of the RPM \(what) at byte \(start)")
        }
        let intro = UnsafeRawBufferPointer(rebasing: bytes[start..<start + Self.introSize])
        guard intro.starts(with: Self.magic) else {
            throw .corrupt(path: path, offset: UInt64(start), expected: "the RPM \(what) magic 8e ad e8, found \(hexBytes(intro.prefix(3)))")
        }
        guard intro[3] == 1 else {
            throw .unsupported(path: path, offset: UInt64(start + 3), what: "RPM \(what) structure version \(intro[3]) (only 1 exists)")
        }
        let count = Int(intro.loadBE(UInt32.self, at: 8)), storeSize = Int(intro.loadBE(UInt32.self, at: 12))
        guard (1...Self.maximumEntries).contains(count) else {
            throw .corrupt(path: path, offset: UInt64(start + 8), expected: "1 to \(Self.maximumEntries) index entries in the RPM \(what), found \(count)")
        }
        guard storeSize <= Self.maximumStore else {
            throw .corrupt(path: path, offset: UInt64(start + 12), expected: "an RPM \(what) store of at most \(Self.maximumStore) bytes, found \(storeSize)")
        }
        let indexStart = start + Self.introSize
        storeOffset = indexStart + count * Self.entrySize
        end = storeOffset + storeSize
        guard end <= bytes.count else {
            throw .truncated(path: path, offset: UInt64(bytes.count),
                             needed: "the RPM \(what) at byte \(start) (\(count) index entries and a \(storeSize)-byte store, ending at byte \(end))")
        }
        var entries: [UInt32: Entry] = [:]
        for number in 0..<count {
            let at = indexStart + number * Self.entrySize
            let raw = UnsafeRawBufferPointer(rebasing: bytes[at..<at + Self.entrySize])
            let tag = raw.loadBE(UInt32.self, at: 0), typeCode = raw.loadBE(UInt32.self, at: 4)
            let offset = Int(Int32(bitPattern: raw.loadBE(UInt32.self, at: 8))), valueCount = Int(raw.loadBE(UInt32.self, at: 12))
            func bad(_ expected: String) -> KernelPackageError {
                .corrupt(path: path, offset: UInt64(at), expected: "RPM \(what) index entry \(number) (tag \(tag)) to have \(expected)")
            }
            guard let type = ValueType(rawValue: typeCode) else { throw bad("a type from 1 to 9, found \(typeCode)") }
            guard offset >= 0, offset < storeSize else { throw bad("an offset inside the \(storeSize)-byte store, found \(offset)") }
            guard valueCount >= 1 else { throw bad("a count of at least 1, found 0") }
            if let width = type.width {
                guard offset % width == 0 else { throw bad("an offset aligned to \(width) bytes, found \(offset)") }
                let (size, overflow) = valueCount.multipliedReportingOverflow(by: width)
                guard !overflow, size <= storeSize - offset else {
                    throw bad("\(valueCount) values of \(width) bytes inside the store, from offset \(offset) of \(storeSize)")
                }
            } else if type == .string && valueCount != 1 {
                throw bad("a count of 1 for a STRING, found \(valueCount)")
            } else if valueCount > storeSize - offset {
                throw bad("\(valueCount) strings inside the store, from offset \(offset) of \(storeSize)")
            }
            if entries[tag] == nil {
                entries[tag] = Entry(tag: tag, type: type, offset: offset, count: valueCount, entryOffset: UInt64(at))
            }
        }
        self.entries = entries
        store = Array(UnsafeRawBufferPointer(rebasing: bytes[storeOffset..<end]))
    }

    private func wrongType(_ entry: Entry, _ expected: String) -> KernelPackageError {
        .corrupt(path: path, offset: entry.entryOffset, expected: "RPM \(what) tag \(entry.tag) to be \(expected), found type \(entry.type.rawValue)")
    }

    /// `count` NUL-terminated strings from `offset` in the store.
    private func strings(_ entry: Entry) throws(KernelPackageError) -> [String] {
        var result: [String] = []
        var position = entry.offset
        for _ in 0..<entry.count {
            guard let nul = store[position...].firstIndex(of: 0) else {
                throw .corrupt(path: path, offset: UInt64(storeOffset + position),
                               expected: "a NUL-terminated string for RPM \(what) tag \(entry.tag) inside the store")
            }
            result.append(String(decoding: store[position..<nul], as: UTF8.self))
            position = nul + 1
        }
        return result
    }

    /// A STRING (or the first string of an I18NSTRING or STRING_ARRAY); nil when the tag is absent.
    func string(_ tag: UInt32) throws(KernelPackageError) -> String? {
        guard let entry = entries[tag] else { return nil }
        switch entry.type {
        case .string, .i18nString, .stringArray:
            return try strings(Entry(tag: tag, type: entry.type, offset: entry.offset, count: 1, entryOffset: entry.entryOffset)).first
        default:
            throw wrongType(entry, "a string")
        }
    }

    /// A STRING_ARRAY (a STRING reads as one element); nil when the tag is absent.
    func stringArray(_ tag: UInt32) throws(KernelPackageError) -> [String]? {
        guard let entry = entries[tag] else { return nil }
        switch entry.type {
        case .string, .stringArray, .i18nString: return try strings(entry)
        default: throw wrongType(entry, "a string array")
        }
    }

    /// Values of any integer type, widened; nil when the tag is absent.
    func integers(_ tag: UInt32) throws(KernelPackageError) -> [UInt64]? {
        guard let entry = entries[tag] else { return nil }
        let base = entry.offset
        switch entry.type {
        case .char, .int8: return (0..<entry.count).map { UInt64(store[base + $0]) }
        case .int16: return (0..<entry.count).map { UInt64(store.loadBE(UInt16.self, at: base + 2 * $0)) }
        case .int32: return (0..<entry.count).map { UInt64(store.loadBE(UInt32.self, at: base + 4 * $0)) }
        case .int64: return (0..<entry.count).map { store.loadBE(UInt64.self, at: base + 8 * $0) }
        default: throw wrongType(entry, "an integer")
        }
    }

    /// The file offset of a tag's index entry (or of the header), for messages.
    func offset(of tag: UInt32) -> UInt64 {
        entries[tag]?.entryOffset ?? UInt64(storeOffset)
    }
}

extension UnsafeRawBufferPointer {
    func loadBE<T: FixedWidthInteger>(_ type: T.Type, at offset: Int) -> T {
        var value: T = 0
        for index in 0..<MemoryLayout<T>.size { value = value << 8 | T(self[offset + index]) }
        return value
    }
}
