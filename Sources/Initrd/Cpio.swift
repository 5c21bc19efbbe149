/// The cpio "new ASCII" (newc) format, the only one the kernel unpacks into its initramfs.
///
/// ```
/// offset  size  field (8 hexadecimal digits each, after the 6-byte magic)
///      0     6  magic "070701" (newc) or "070702" (newc + 32-bit byte-sum checksum of the data)
///      6     8  ino        14  mode       22  uid       30  gid       38  nlink     46  mtime
///     54     8  filesize   62  devmajor   70  devminor  78  rdevmajor 86  rdevminor
///     94     8  namesize (NUL included)   102 check (byte sum for 070702, else 0)
///    110        name, NUL, zeros to a multiple of 4 from the header's start
///               data (file contents or symlink target), zeros to a multiple of 4
/// ```
/// An archive ends with an entry named `TRAILER!!!`, which also resets the hard-link table.
public enum CpioNewc {
    static let headerSize = 110
    static let trailerName = "TRAILER!!!"
    /// GNU cpio writes the fields in upper case.
    static let upperHexDigits = Array("0123456789ABCDEF".utf8)
    static let fieldNames = ["ino", "mode", "uid", "gid", "nlink", "mtime", "filesize", "devmajor", "devminor",
                             "rdevmajor", "rdevminor", "namesize", "check"]

    /// Reads one archive starting at `offset` in `bytes` (magic 070701, or 070702 whose 32-bit
    /// byte-sum checksum of each regular file's data is verified); stops after TRAILER!!! (or at
    /// the end of input if `requireTrailer` is false: the kernel treats a missing trailer as
    /// fine). Returns the entries (the trailer not among them) and the offset just after the
    /// trailer entry's padding. `baseOffset` is added to the offsets in errors.
    public static func read(_ bytes: UnsafeRawBufferPointer, from offset: Int, name: String, baseOffset: UInt64,
                            limits: CpioLimits, requireTrailer: Bool = true) throws(CpioError) -> (entries: [CpioEntry], end: Int) {
        let result = try readEntries(bytes, from: offset, name: name, baseOffset: baseOffset, limits: limits,
                                     requireTrailer: requireTrailer, stopAtOtherBytes: false)
        return (result.entries, result.end)
    }

    /// The reader behind `read`. With `stopAtOtherBytes`, it reads as the kernel's state machine
    /// does: after any entry, a byte other than '0' (zeros, another member) or the end of the
    /// input ends the run without an error; `trailer` says whether TRAILER!!! ended it instead.
    static func readEntries(_ bytes: UnsafeRawBufferPointer, from offset: Int, name: String, baseOffset: UInt64,
                            limits: CpioLimits, requireTrailer: Bool,
                            stopAtOtherBytes: Bool) throws(CpioError) -> (entries: [CpioEntry], end: Int, trailer: Bool) {
        var entries: [CpioEntry] = []
        var position = offset
        func at(_ position: Int) -> UInt64 { baseOffset + UInt64(position) }
        func aligned(_ value: Int) -> Int { offset + (value - offset + 3) & ~3 }
        while true {
            let start = position
            let remaining = bytes.count - start
            if stopAtOtherBytes && start > offset && (remaining == 0 || bytes[start] != UInt8(ascii: "0")) {
                return (entries, start, false)
            }
            if remaining == 0 {
                if requireTrailer { throw .missingTrailer(name: name, offset: at(start)) }
                return (entries, start, false)
            }
            guard remaining >= headerSize else {
                try checkMagic(bytes, start, min(remaining, 6), name: name, at: at(start))
                throw .truncated(name: name, offset: at(start), needed: "a \(headerSize)-byte header")
            }
            let checksummed = try checkMagic(bytes, start, 6, name: name, at: at(start))
            var fields = [UInt32](repeating: 0, count: fieldNames.count)
            for index in fields.indices {
                let fieldStart = start + 6 + 8 * index
                guard let value = parseHex(bytes, fieldStart) else {
                    let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[fieldStart..<fieldStart + 8]), as: UTF8.self)
                    throw .badField(name: name, offset: at(start), field: fieldNames[index], text: text)
                }
                fields[index] = value
            }
            let fileSize = Int(fields[6]), nameSize = Int(fields[11])
            guard nameSize > 0 else { throw .badName(name: name, offset: at(start), detail: "name size 0") }
            guard nameSize <= limits.maxNameLength else {
                throw .nameTooLong(name: name, offset: at(start), length: nameSize, limit: limits.maxNameLength)
            }
            let nameStart = start + headerSize
            guard nameSize <= bytes.count - nameStart else {
                throw .truncated(name: name, offset: at(start), needed: "its \(nameSize)-byte name")
            }
            let nameBytes = UnsafeRawBufferPointer(rebasing: bytes[nameStart..<nameStart + nameSize])
            // The kernel refuses a name whose last byte is not NUL ("malformed archive").
            guard nameBytes[nameSize - 1] == 0 else {
                throw .badName(name: name, offset: at(start), detail: "name is not NUL-terminated")
            }
            // C strings: the name ends at the first NUL, as the kernel reads it.
            let entryName = String(decoding: nameBytes.prefix { $0 != 0 }, as: UTF8.self)
            let dataStart = aligned(nameStart + nameSize)
            if entryName == trailerName {
                // Padding cut off at the very end of the input is harmless.
                return (entries, min(aligned(dataStart + fileSize), bytes.count), true)
            }
            guard entries.count < limits.maxEntries else {
                throw .tooManyEntries(name: name, offset: at(start), limit: limits.maxEntries)
            }
            guard dataStart <= bytes.count, fileSize <= bytes.count - dataStart else {
                throw .truncated(name: name, offset: at(start), needed: "the \(fileSize) data bytes of \(entryName)")
            }
            let data = Array(UnsafeRawBufferPointer(rebasing: bytes[dataStart..<dataStart + fileSize]))
            let entry = CpioEntry(name: entryName, mode: fields[1], uid: fields[2], gid: fields[3], nlink: fields[4],
                                  mtime: fields[5], ino: fields[0], devMajor: fields[7], devMinor: fields[8],
                                  rdevMajor: fields[9], rdevMinor: fields[10], data: data)
            // 070702: the kernel checks the byte sum of regular files only (GNU cpio writes 0 for others).
            if checksummed && entry.kind == .regular {
                let sum = data.reduce(UInt32(0)) { $0 &+ UInt32($1) }
                guard sum == fields[12] else {
                    throw .checksumMismatch(name: name, offset: at(start), path: entryName, stored: fields[12], computed: sum)
                }
            }
            entries.append(entry)
            position = min(aligned(dataStart + fileSize), bytes.count)
        }
    }

    /// Checks the magic in the first `count` bytes at `start`; returns whether it is 070702.
    @discardableResult
    private static func checkMagic(_ bytes: UnsafeRawBufferPointer, _ start: Int, _ count: Int,
                                   name: String, at offset: UInt64) throws(CpioError) -> Bool {
        let magic = Array(UnsafeRawBufferPointer(rebasing: bytes[start..<start + count]))
        let newc = Array("070701".utf8), crc = Array("070702".utf8), odc = Array("070707".utf8)
        if magic == newc { return false }
        if magic == crc { return true }
        if count < 6 && (newc.starts(with: magic) || crc.starts(with: magic)) { return false }
        if magic == odc { throw .oldCharacterFormat(name: name, offset: offset) }
        throw .badMagic(name: name, offset: offset, found: magic.map { hexByte($0) }.joined(separator: " "))
    }

    private static func parseHex(_ bytes: UnsafeRawBufferPointer, _ start: Int) -> UInt32? {
        var value: UInt32 = 0
        for byte in bytes[start..<start + 8] {
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: return nil
            }
            value = value << 4 | UInt32(digit)
        }
        return value
    }

    /// A newc archive of `entries`, ending with TRAILER!!!, padded as GNU `cpio -H newc` does
    /// (header+name and data each to a multiple of 4; no 512-byte block padding at the end).
    /// Hard links are not used: every non-directory is written with nlink 1, so the kernel never
    /// links two entries. Inode numbers of 0 are assigned from 1, skipping numbers in use.
    public static func write(_ entries: [CpioEntry]) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(entries.reduce(0) { $0 + headerSize + $1.name.utf8.count + $1.data.count + 8 } + 128)
        let used = Set(entries.map(\.ino))
        var nextInode: UInt32 = 1
        for var entry in entries {
            if entry.ino == 0 {
                while used.contains(nextInode) { nextInode += 1 }
                entry.ino = nextInode
                nextInode += 1
            }
            if entry.kind != .directory { entry.nlink = 1 }
            append(entry, to: &output)
        }
        append(CpioEntry(name: trailerName, mode: 0, nlink: 1), to: &output)
        return output
    }

    private static func append(_ entry: CpioEntry, to output: inout [UInt8]) {
        let start = output.count
        let name = Array(entry.name.utf8)
        let fields = [entry.ino, entry.mode, entry.uid, entry.gid, entry.nlink, entry.mtime, UInt32(entry.data.count),
                      entry.devMajor, entry.devMinor, entry.rdevMajor, entry.rdevMinor, UInt32(name.count + 1), 0]
        output.append(contentsOf: "070701".utf8)
        for field in fields {
            for shift in stride(from: 28, through: 0, by: -4) {
                output.append(upperHexDigits[Int(field >> UInt32(shift) & 0xF)])
            }
        }
        output.append(contentsOf: name)
        output.append(0)
        output.append(contentsOf: [UInt8](repeating: 0, count: (4 - (output.count - start) % 4) % 4))
        output.append(contentsOf: entry.data)
        output.append(contentsOf: [UInt8](repeating: 0, count: (4 - (output.count - start) % 4) % 4))
    }
}

func hexByte(_ byte: UInt8) -> String {
    let digits = Array("0123456789abcdef")
    return String([digits[Int(byte >> 4)], digits[Int(byte & 0xF)]])
}
