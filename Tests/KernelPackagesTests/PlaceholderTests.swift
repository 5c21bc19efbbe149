import Testing
@testable import KernelPackages

@Suite struct KernelPackagesPlaceholderTests {
    @Test func moduleLinks() { #expect(String(describing: KernelPackages.self) == "KernelPackages") }
}
