import Testing
@testable import Initrd

@Suite struct InitrdPlaceholderTests {
    @Test func moduleLinks() { #expect(String(describing: InitrdImage.self) == "InitrdImage") }
}
