import Testing
@testable import Initrd

@Suite struct InitrdFamilyTests {
    @Test func familiesHaveStableNames() { #expect(InitrdFamily.allCases.map(\.rawValue) == ["initramfs-tools", "dracut", "nash", "unknown"]) }
}
