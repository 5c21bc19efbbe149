@testable import Pipeline
import Testing

/// The order `--keep-layout` gives the partitions: /boot first (partition 1, where GRUB's
/// prefix looks), then /, then the others by path, parents before their children.
@Suite struct GuestLayoutTests {
    @Test func bootThenRootThenTheRestByPath() {
        #expect(GuestLayout.partitionOrder(["/var/log", "/", "/var", "/home", "/boot"]) == ["/boot", "/", "/home", "/var", "/var/log"])
        #expect(GuestLayout.partitionOrder(["/usr", "/"]) == ["/", "/usr"])
        #expect(GuestLayout.partitionOrder(["/"]) == ["/"])
    }
}
