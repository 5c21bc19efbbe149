import Foundation
import KernelPackages
import Testing
import TestSupport

/// Debian's real linux-image .deb, read by KernelPackages and compared with what dpkg-deb says.
@Suite struct DebianKernelDebTests {
    @Test func readsTheDebianKernelPackageAsDpkgDebDoes() async throws {
        let kernel = try DebianKernel.current()
        let deb = try kernel.package()
        // dpkg-deb lists the package while KernelPackages reads it (each decompresses 400 MB).
        let listing = Task { try ListedEntry.dpkgListing(of: deb) }
        let package = try KernelPackage.read(path: deb)

        #expect(package.format == .deb)
        #expect(package.name == "linux-image-\(kernel.version)")
        #expect(package.architecture == "amd64")
        let control = try Command.run("dpkg-deb", ["-f", deb, "Version"]).requireSuccess()
        #expect(package.version == control.stdout.trimmingCharacters(in: .whitespacesAndNewlines))

        #expect(package.kernels.map(\.release) == [kernel.version])
        let found = try #require(package.kernels.first)
        #expect(found.vmlinuzPath == "/boot/vmlinuz-\(kernel.version)")
        #expect(found.systemMapPath == "/boot/System.map-\(kernel.version)")
        #expect(found.configPath == "/boot/config-\(kernel.version)")
        #expect(found.modulesDirectory == "/lib/modules/\(kernel.version)")
        #expect(found.image.format == .bzImage)
        #expect(found.image.release == kernel.version)

        // Every entry, with its type, permissions, size and link target, as `dpkg-deb -c` lists it.
        let listed = try await listing.value
        let mine = package.files.map(ListedEntry.init)
        #expect(mine.count == listed.count)
        let difference = Set(mine.map(\.description)).symmetricDifference(listed.map(\.description))
        #expect(difference.isEmpty, "differs from dpkg-deb -c: \(difference.sorted().prefix(10))")
        #expect(mine.map(\.path) == listed.map(\.path), "archive order")

        // Every byte, against the tree `dpkg-deb -x` unpacked from this very .deb.
        var root = kernel.root
        var scratch: TemporaryDirectory?
        if kernel.unpackedPackageName != (deb as NSString).lastPathComponent {
            let directory = try TemporaryDirectory(prefix: "rehost-deb")
            try Command.run("dpkg-deb", ["-x", deb, directory.path], timeout: .seconds(600)).requireSuccess()
            root = directory.path
            scratch = directory
        }
        UnpackedTree.expectMatches(package.files, root: root)
        #expect(UnpackedTree.paths(under: root) == Set(package.files.map(\.path)))
        withExtendedLifetime(scratch) {}
    }
}
