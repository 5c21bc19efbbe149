/// A text file as lines of bytes, so that every line a repair does not touch is written back byte
/// for byte (tabs, trailing spaces, non-UTF-8 comments, a stray "\r") and the file keeps its
/// final-newline state.
struct TextLines: Equatable {
    var lines: [[UInt8]]
    var endsWithNewline: Bool

    init(bytes: [UInt8]) {
        var lines = bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).map(Array.init)
        endsWithNewline = bytes.last == UInt8(ascii: "\n")
        // split leaves one empty piece after a final newline (or for an empty file).
        if lines.last?.isEmpty == true { lines.removeLast() }
        self.lines = lines
    }

    init(lines: [String], endsWithNewline: Bool = true) {
        self.lines = lines.map { Array($0.utf8) }
        self.endsWithNewline = endsWithNewline
    }

    var bytes: [UInt8] {
        var out: [UInt8] = []
        for (index, line) in lines.enumerated() {
            out += line
            if index < lines.count - 1 || endsWithNewline { out.append(UInt8(ascii: "\n")) }
        }
        return out
    }

    /// Line `index` as text, without a trailing "\r" (CRLF files are not expected, but are read).
    func text(_ index: Int) -> String {
        var line = lines[index]
        if line.last == UInt8(ascii: "\r") { line.removeLast() }
        return String(decoding: line, as: UTF8.self)
    }

    var texts: [String] { lines.indices.map(text) }

    /// Replaces line `index` with `text`, keeping a trailing "\r" if the line had one.
    mutating func replace(_ index: Int, with text: String) {
        let hadCarriageReturn = lines[index].last == UInt8(ascii: "\r")
        lines[index] = Array(text.utf8) + (hadCarriageReturn ? [UInt8(ascii: "\r")] : [])
    }

    /// Adds a line at the end; a file that lacked a final newline gets one between the old last
    /// line and the new one, and keeps lacking one after the new line.
    mutating func append(_ text: String) {
        lines.append(Array(text.utf8))
    }
}

/// Whitespace as config files use it: spaces and tabs.
extension Character {
    var isBlankSpace: Bool { self == " " || self == "\t" }
}

extension StringProtocol {
    /// The line without leading spaces and tabs.
    var withoutLeadingBlanks: SubSequence { drop(while: { $0.isBlankSpace }) }

    /// True for blank lines and lines whose first non-blank character is "#".
    var isCommentOrBlank: Bool {
        let rest = withoutLeadingBlanks
        return rest.isEmpty || rest.first == "#"
    }

    /// Fields split on runs of spaces and tabs.
    var blankSeparatedFields: [SubSequence] {
        split(whereSeparator: { $0.isBlankSpace })
    }
}
