import ImageCore
import Testing

struct UUIDBytesTests {
    @Test func formatAndParseRoundTrip() {
        let text = "3d1b7c9e-5f2a-4e8b-9c61-0a7d2e4f8b13"
        let bytes = UUIDBytes.parse(text)
        #expect(bytes?.first == 0x3d && bytes?.last == 0x13 && bytes?.count == 16)
        #expect(bytes.map(UUIDBytes.format) == text)
    }

    @Test(arguments: ["", "3d1b7c9e5f2a4e8b9c610a7d2e4f8b13", "3d1b7c9e-5f2a-4e8b-9c61-0a7d2e4f8b1", "zd1b7c9e-5f2a-4e8b-9c61-0a7d2e4f8b13"])
    func parseRejectsAnythingElse(text: String) {
        #expect(UUIDBytes.parse(text) == nil)
    }

    @Test func randomUUIDsAreVersion4AndDiffer() {
        let a = UUIDBytes.random(), b = UUIDBytes.random()
        #expect(a != b)
        #expect(a[6] >> 4 == 4 && a[8] >> 6 == 2)
    }
}
