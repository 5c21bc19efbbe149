import ImageCore

extension LVM2 {
    /// A value of the text metadata format: `key = value` with numbers, strings and flat arrays,
    /// and `name { ... }` sections.
    public indirect enum Value: Sendable, Equatable {
        case integer(Int64)
        case real(Double)
        case string(String)
        case array([Value])
        case section(Section)

        public var integer: Int64? { if case let .integer(v) = self { return v } else { return nil } }
        public var string: String? { if case let .string(v) = self { return v } else { return nil } }
        public var array: [Value]? { if case let .array(v) = self { return v } else { return nil } }
        public var section: Section? { if case let .section(v) = self { return v } else { return nil } }
    }

    /// A section's entries in the order written (an LV's segments and a VG's LVs keep it).
    public struct Section: Sendable, Equatable {
        public var entries: [(key: String, value: Value)] = []

        public subscript(key: String) -> Value? { entries.first { $0.key == key }?.value }
        public var sections: [(name: String, section: Section)] {
            entries.compactMap { entry in entry.value.section.map { (entry.key, $0) } }
        }

        public static func == (a: Section, b: Section) -> Bool {
            a.entries.count == b.entries.count && zip(a.entries, b.entries).allSatisfy { $0.key == $1.key && $0.value == $1.value }
        }
    }

    /// The parser of lvm2's text metadata (lib/config's syntax). Everything is bounded: the text
    /// by the caller, nesting to `maximumDepth`, array lengths and entry counts to the text's
    /// size, integers to Int64 (an overflow is an error, never a wrap).
    public struct TextParser {
        public static let maximumDepth = 16
        public static let maximumStringLength = 64 << 10

        let bytes: [UInt8]
        let source: String
        var at = 0
        var line = 1

        public static func parse(_ text: String, source: String) throws -> Section {
            var parser = TextParser(bytes: Array(text.utf8), source: source)
            return try parser.parseEntries(depth: 0, closed: false)
        }

        init(bytes: [UInt8], source: String) {
            self.bytes = bytes
            self.source = source
        }

        func fail(_ reason: String) -> LVMError { .syntax(source: source, line: line, reason: reason) }

        mutating func skipSpace() {
            while at < bytes.count {
                let c = bytes[at]
                if c == 0x0a { line += 1; at += 1 }
                else if c == 0x20 || c == 0x09 || c == 0x0d { at += 1 }
                else if c == 0x23 { while at < bytes.count, bytes[at] != 0x0a { at += 1 } }
                else { return }
            }
        }

        static func isNameCharacter(_ c: UInt8) -> Bool {
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a)
                || c == 0x5f || c == 0x2e || c == 0x2b || c == 0x2d
        }

        mutating func parseEntries(depth: Int, closed: Bool) throws -> Section {
            guard depth <= Self.maximumDepth else { throw fail("sections nested deeper than \(Self.maximumDepth)") }
            var section = Section()
            while true {
                skipSpace()
                guard at < bytes.count else {
                    if closed { throw fail("a section is not closed with '}'") }
                    return section
                }
                if bytes[at] == 0x7d {  // }
                    guard closed else { throw fail("'}' without a section to close") }
                    at += 1
                    return section
                }
                let key = try parseName()
                guard !section.entries.contains(where: { $0.key == key }) else { throw fail("\"\(key)\" appears twice") }
                skipSpace()
                guard at < bytes.count else { throw fail("\"\(key)\" has no value") }
                if bytes[at] == 0x7b {  // {
                    at += 1
                    section.entries.append((key, .section(try parseEntries(depth: depth + 1, closed: true))))
                } else if bytes[at] == 0x3d {  // =
                    at += 1
                    skipSpace()
                    section.entries.append((key, try parseValue(inArray: false)))
                } else {
                    throw fail("expected '=' or '{' after \"\(key)\"")
                }
            }
        }

        mutating func parseName() throws -> String {
            let start = at
            while at < bytes.count, Self.isNameCharacter(bytes[at]) { at += 1 }
            guard at > start else { throw fail("expected a name, found '\(String(decoding: [bytes[at]], as: UTF8.self))'") }
            guard at - start <= 256 else { throw fail("a name longer than 256 characters") }
            return String(decoding: bytes[start..<at], as: UTF8.self)
        }

        mutating func parseValue(inArray: Bool) throws -> Value {
            guard at < bytes.count else { throw fail("a value is missing") }
            switch bytes[at] {
            case 0x22:  // "
                return .string(try parseString())
            case 0x5b:  // [
                guard !inArray else { throw fail("arrays inside arrays") }
                at += 1
                var items: [Value] = []
                skipSpace()
                if at < bytes.count, bytes[at] == 0x5d { at += 1; return .array(items) }
                while true {
                    skipSpace()
                    items.append(try parseValue(inArray: true))
                    skipSpace()
                    guard at < bytes.count else { throw fail("an array is not closed with ']'") }
                    if bytes[at] == 0x5d { at += 1; return .array(items) }
                    guard bytes[at] == 0x2c else { throw fail("expected ',' or ']' in an array") }
                    at += 1
                }
            case 0x2d, 0x30...0x39:
                return try parseNumber()
            default:
                throw fail("expected a number, a string or an array")
            }
        }

        mutating func parseString() throws -> String {
            at += 1
            var out: [UInt8] = []
            while at < bytes.count {
                var c = bytes[at]
                at += 1
                if c == 0x22 { return String(decoding: out, as: UTF8.self) }
                if c == 0x0a { line += 1 }
                if c == 0x5c {  // backslash: the next byte is taken as it is
                    guard at < bytes.count else { break }
                    c = bytes[at]
                    at += 1
                }
                out.append(c)
                guard out.count <= Self.maximumStringLength else { throw fail("a string longer than \(Self.maximumStringLength) bytes") }
            }
            throw fail("a string is not closed")
        }

        mutating func parseNumber() throws -> Value {
            let negative = bytes[at] == 0x2d
            if negative { at += 1 }
            let start = at
            var value: Int64 = 0
            var overflow = false
            while at < bytes.count, bytes[at] >= 0x30, bytes[at] <= 0x39 {
                let (m, o1) = value.multipliedReportingOverflow(by: 10)
                let (s, o2) = m.addingReportingOverflow(Int64(bytes[at] - 0x30))
                overflow = overflow || o1 || o2
                value = s
                at += 1
            }
            guard at > start else { throw fail("'-' without digits") }
            if at < bytes.count, bytes[at] == 0x2e {  // a real number: lvm.conf has them, VG metadata does not
                at += 1
                while at < bytes.count, bytes[at] >= 0x30, bytes[at] <= 0x39 { at += 1 }
                let text = String(decoding: bytes[(negative ? start - 1 : start)..<at], as: UTF8.self)
                guard let real = Double(text) else { throw fail("\(text) is not a number") }
                return .real(real)
            }
            guard !overflow else {
                throw fail("\(negative ? "-" : "")\(String(decoding: bytes[start..<at], as: UTF8.self)) does not fit in 64 bits")
            }
            return .integer(negative ? -value : value)
        }
    }
}
