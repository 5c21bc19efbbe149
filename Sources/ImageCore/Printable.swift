/// Text that came out of an image (file names, labels, descriptor fields, fstab lines, kernel
/// version strings, tar member names) goes to a terminal only escaped: a hostile image must not
/// be able to move the cursor, recolour, retitle or beep the user's terminal, nor forge lines of
/// a report or an error message. Control characters (C0, DEL, C1), and in byte form invalid
/// UTF-8, are shown as `\xNN` per byte; the bidirectional overrides and isolates, which reorder
/// what is shown, as `\u{NNNN}`. Printable UTF-8 is kept as is.
///
/// JSON output needs none of this: its encoder escapes control characters itself.
extension String {
    /// This text, safe inside an XML or HTML element or attribute (an OVF descriptor, a status
    /// page): the five markup characters as entities, and control characters other than tab and
    /// newline, which XML 1.0 cannot carry at all, as U+FFFD.
    public var escapedForMarkup: String {
        var out = ""
        for scalar in unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            case "\t", "\n", "\r": out.unicodeScalars.append(scalar)
            default: out.unicodeScalars.append(scalar.value < 0x20 || scalar.value == 0x7f ? "\u{FFFD}" : scalar)
            }
        }
        return out
    }

    /// This text, escaped for a terminal. Tabs (harmless, and common in fstab lines) and newlines
    /// (which would break a one-line value in two) are escaped unless asked otherwise.
    public func escapedForTerminal(keepingTabs: Bool = false, keepingNewlines: Bool = false) -> String {
        let keep = (tabs: keepingTabs, newlines: keepingNewlines)
        guard unicodeScalars.contains(where: { Printable.needsEscape($0, keep) }) else { return self }
        var out = ""
        out.reserveCapacity(utf8.count + 16)
        for scalar in unicodeScalars {
            if Printable.needsEscape(scalar, keep) {
                out += Printable.escape(scalar)
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}

extension Sequence where Element == UInt8 {
    /// These bytes as text for a terminal: valid printable UTF-8 as is, everything else escaped.
    public var escapedForTerminal: String { Printable.escape(bytes: Array(self)) }
}

public enum Printable {
    static func needsEscape(_ scalar: Unicode.Scalar, _ keep: (tabs: Bool, newlines: Bool)) -> Bool {
        switch scalar.value {
        case 0x09: return !keep.tabs
        case 0x0A: return !keep.newlines
        case 0x00..<0x20, 0x7F..<0xA0: return true
        case 0x202A...0x202E, 0x2066...0x2069: return true
        default: return false
        }
    }

    static func escape(_ scalar: Unicode.Scalar) -> String {
        if scalar.value >= 0x2000 { return "\\u{" + String(scalar.value, radix: 16, uppercase: true) + "}" }
        return String(scalar).utf8.map(hexByte).joined()
    }

    static func hexByte(_ byte: UInt8) -> String {
        let digits = Array("0123456789ABCDEF")
        return "\\x" + String(digits[Int(byte >> 4)]) + String(digits[Int(byte & 0xF)])
    }

    /// Decodes UTF-8 byte by byte: each valid sequence is kept (escaped when it is a control or
    /// reordering character), each byte of an invalid one becomes `\xNN`.
    public static func escape(bytes: [UInt8]) -> String {
        var out = ""
        var index = 0
        while index < bytes.count {
            let lead = bytes[index]
            let length = lead < 0x80 ? 1 : lead >= 0xC2 && lead < 0xE0 ? 2 : lead >= 0xE0 && lead < 0xF0 ? 3 : lead >= 0xF0 && lead < 0xF5 ? 4 : 0
            if length > 0, index + length <= bytes.count,
               let decoded = String(validating: bytes[index..<(index + length)], as: UTF8.self) {
                out += decoded.escapedForTerminal()
                index += length
            } else {
                out += hexByte(lead)
                index += 1
            }
        }
        return out
    }
}
