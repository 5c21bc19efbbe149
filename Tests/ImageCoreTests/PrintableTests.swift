import ImageCore
import Testing

struct PrintableTests {
    @Test func controlCharactersAreEscapedAndPrintableTextKept() {
        #expect("label\u{1B}[31mred\u{07}".escapedForTerminal() == "label\\x1B[31mred\\x07")
        #expect("été ✓ 日本".escapedForTerminal() == "été ✓ 日本")
        #expect("a\nb\tc".escapedForTerminal() == "a\\x0Ab\\x09c")
        #expect("a\nb\tc\r".escapedForTerminal(keepingTabs: true) == "a\\x0Ab\tc\\x0D")
        #expect("a\nb\tc".escapedForTerminal(keepingTabs: true, keepingNewlines: true) == "a\nb\tc")
        #expect("\u{7F}\u{9B}".escapedForTerminal() == "\\x7F\\xC2\\x9B")
        #expect("abc\u{202E}fed".escapedForTerminal() == "abc\\u{202E}fed")
    }

    @Test func invalidUTF8IsEscapedByteByByte() {
        #expect([0x61, 0xFF, 0x62].escapedForTerminal == "a\\xFFb")
        #expect([0xC3, 0xA9, 0xC3].escapedForTerminal == "é\\xC3")
        #expect([0xE2, 0x82, 0x41].escapedForTerminal == "\\xE2\\x82A")
        #expect([0xED, 0xA0, 0x80].escapedForTerminal == "\\xED\\xA0\\x80")  // a surrogate, not UTF-8
        #expect(Array("ok/name".utf8).escapedForTerminal == "ok/name")
        #expect([0x1B, 0x5B, 0x33, 0x31, 0x6D].escapedForTerminal == "\\x1B[31m")
    }
}
