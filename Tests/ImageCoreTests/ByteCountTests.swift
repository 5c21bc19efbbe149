import ImageCore
import Testing

@Suite struct ByteCountTests {
    @Test(arguments: [
        ("4096", UInt64(4096)), ("1k", 1024), ("1K", 1024), ("2KiB", 2048), ("3MB", 3 << 20), ("512M", 512 << 20),
        ("10G", 10 << 30), (" 5G ", 5 << 30), ("1T", 1 << 40), ("0", 0), ("7B", 7),
    ])
    func parsesSizes(text: String, expected: UInt64) {
        #expect(ByteCount.parse(text) == expected)
    }

    @Test(arguments: ["", "G", "1.5G", "10X", "-1", "K1", "1 G", "99999999999T", "iB"])
    func rejectsNonsense(text: String) {
        #expect(ByteCount.parse(text) == nil)
    }

    @Test func formatsSizes() {
        #expect(ByteCount.format(0) == "0 B")
        #expect(ByteCount.format(700) == "700 B")
        #expect(ByteCount.format(1024) == "1 KiB")
        #expect(ByteCount.format(1536) == "1.5 KiB")
        #expect(ByteCount.format(512 * ByteCount.MiB) == "512 MiB")
        #expect(ByteCount.format(3 * ByteCount.GiB / 2) == "1.5 GiB")
        #expect(ByteCount.format(2 * ByteCount.TiB) == "2 TiB")
    }

    @Test(arguments: [UInt64(1) << 20, 10 << 30, 4096, 3 << 40])
    func formatThenParseRoundTripsWholeUnits(bytes: UInt64) {
        let text = ByteCount.format(bytes).replacingSpaces()
        #expect(ByteCount.parse(text) == bytes)
    }
}

extension String {
    fileprivate func replacingSpaces() -> String { String(filter { $0 != " " }) }
}
