import Foundation
import KernelPackages
import Testing
import TestSupport

/// Small DEBs built with dpkg-deb: every tar feature a package uses, each compression, and the
/// kernel layouts (and non-kernels) the analysis must tell apart.
@Suite struct SmallDebTests {
    /// A package with a GNU long name (> 100 bytes), a symlink, a hard link, a setuid file and an
    /// empty file; dpkg-deb writes GNU tar.
    static func featureDeb(compression: String) throws -> String {
        try BuiltPackages.deb("features-\(compression)", package: "hello-rehost", compression: compression) { root in
            let long = "/usr/share/hello-rehost/" + String(repeating: "a-long-directory-name/", count: 6) + "file-with-a-long-name.txt"
            try BuiltPackages.write("long\n", long, under: root)
            try BuiltPackages.write("#!/bin/sh\necho hello\n", "/usr/bin/hello-rehost", under: root, mode: 0o4755)
            try BuiltPackages.write("", "/usr/share/hello-rehost/empty", under: root)
            try FileManager.default.createSymbolicLink(atPath: "\(root)/usr/bin/hi", withDestinationPath: "hello-rehost")
            try FileManager.default.linkItem(atPath: "\(root)/usr/bin/hello-rehost", toPath: "\(root)/usr/bin/hello-again")
        }
    }

    @Test(arguments: ["gzip", "xz", "zstd", "none"])
    func readsEveryEntryAsDpkgDebLists(compression: String) throws {
        let deb = try Self.featureDeb(compression: compression)
        let contents = try PackageContents.read(path: deb)
        #expect(contents.format == .deb)
        #expect(contents.name == "hello-rehost" && contents.version == "1.0-1" && contents.architecture == "amd64")
        let listed = try ListedEntry.dpkgListing(of: deb)
        #expect(contents.files.map(ListedEntry.init) == listed)
        #expect(contents.files.contains { $0.path.utf8.count > 150 })
        #expect(contents.files.first { $0.path == "/usr/bin/hello-rehost" }?.mode == 0o4755)

        let unpacked = try TemporaryDirectory(prefix: "rehost-deb")
        try Command.run("dpkg-deb", ["-x", deb, unpacked.path]).requireSuccess()
        UnpackedTree.expectMatches(contents.files, root: unpacked.path)
        #expect(UnpackedTree.paths(under: unpacked.path) == Set(contents.files.map(\.path)))
        let hardlink = contents.files.first { $0.kind == .hardlink }
        #expect(hardlink?.data == Array("#!/bin/sh\necho hello\n".utf8))
    }

    @Test func refusesADebThatIsNotAKernel() throws {
        let deb = try Self.featureDeb(compression: "xz")
        let error = expectPackageError { () throws(KernelPackageError) in _ = try KernelPackage.read(path: deb) }
        #expect(error?.description == "\(deb): package 'hello-rehost' 1.0-1 installs no kernel (no /boot/vmlinuz-*; its 5 files go to /usr/bin, /usr/share)")
    }

    @Test func namesTheHalfOfAKernelThatIsThere() throws {
        let imageOnly = try BuiltPackages.deb("image-only", package: "linux-image-only") { root in
            try BuiltPackages.write("image", "/boot/vmlinuz-9.9.9-test", under: root)
        }
        let modulesOnly = try BuiltPackages.deb("modules-only", package: "linux-modules-only") { root in
            try BuiltPackages.write("module", "/lib/modules/9.9.9-test/kernel/a.ko", under: root)
        }
        let first = expectPackageError { () throws(KernelPackageError) in _ = try KernelPackage.read(path: imageOnly) }
        #expect(first?.description == "\(imageOnly): package 'linux-image-only' 1.0-1 installs no kernel (it has /boot/vmlinuz-9.9.9-test but no /lib/modules/9.9.9-test/)")
        let second = expectPackageError { () throws(KernelPackageError) in _ = try KernelPackage.read(path: modulesOnly) }
        #expect(second?.description == "\(modulesOnly): package 'linux-modules-only' 1.0-1 installs no kernel (it has /lib/modules/9.9.9-test/ but no /boot/vmlinuz-9.9.9-test or /lib/modules/9.9.9-test/vmlinuz)")
    }

    @Test func findsKernelsInEveryLayout() throws {
        let deb = try BuiltPackages.deb("layouts", package: "kernels") { root in
            // Classic: /boot and /lib/modules.
            try BuiltPackages.write("a", "/boot/vmlinuz-1.0-classic", under: root)
            try BuiltPackages.write("m", "/boot/System.map-1.0-classic", under: root)
            try BuiltPackages.write("c", "/boot/config-1.0-classic", under: root)
            try BuiltPackages.write("k", "/lib/modules/1.0-classic/kernel/a.ko", under: root)
            // Fedora/RHEL 8+: the image inside the modules directory; merged /usr.
            try BuiltPackages.write("b", "/usr/lib/modules/2.0-usr/vmlinuz", under: root)
            try BuiltPackages.write("c", "/usr/lib/modules/2.0-usr/config", under: root)
            // An empty modules directory still counts (a kernel with everything built in).
            try FileManager.default.createDirectory(atPath: "\(root)/lib/modules/3.0-empty", withIntermediateDirectories: true)
            try BuiltPackages.write("c", "/boot/vmlinuz-3.0-empty", under: root)
        }
        let package = try KernelPackage.read(path: deb)
        #expect(package.kernels.map(\.release) == ["1.0-classic", "2.0-usr", "3.0-empty"])
        #expect(package.kernels.map(\.vmlinuzPath) == ["/boot/vmlinuz-1.0-classic", "/usr/lib/modules/2.0-usr/vmlinuz", "/boot/vmlinuz-3.0-empty"])
        #expect(package.kernels.map(\.modulesDirectory) == ["/lib/modules/1.0-classic", "/usr/lib/modules/2.0-usr", "/lib/modules/3.0-empty"])
        #expect(package.kernels.map(\.systemMapPath) == ["/boot/System.map-1.0-classic", nil, nil])
        #expect(package.kernels.map(\.configPath) == ["/boot/config-1.0-classic", "/usr/lib/modules/2.0-usr/config", nil])
    }
}
