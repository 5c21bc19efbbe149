import Testing
@testable import KernelModules

@Suite struct KernelModulesPlaceholderTests {
    @Test func moduleLinks() { #expect(String(describing: KernelModules.self) == "KernelModules") }
}
