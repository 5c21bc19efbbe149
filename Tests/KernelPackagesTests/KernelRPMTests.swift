import Foundation
import KernelPackages
import Testing
import TestSupport

/// RHEL-style kernel RPMs built with rpmbuild from Debian's kernel, read by KernelPackages and
/// compared with what rpm, rpm2cpio and cpio say.
@Suite struct KernelRPMTests {
    @Test(arguments: ["w9.gzdio", "w6.xzdio", "w19.zstdio", "w9.bzdio"])
    func readsAKernelRPMAsRpmDoes(payload: String) throws {
        let kernel = try DebianKernel.current()
        let rpm = try BuiltPackages.kernelRPM(payload: payload)
        let package = try KernelPackage.read(path: rpm)

        let query = try Command.run("rpm", ["-qp", "--queryformat", "%{NAME}\\n%{VERSION}-%{RELEASE}\\n%{ARCH}\\n%{PAYLOADCOMPRESSOR}", rpm])
            .requireSuccess().stdout.split(separator: "\n").map(String.init)
        #expect(package.format == .rpm)
        #expect([package.name, package.version, package.architecture] == Array(query.prefix(3)))
        #expect(query.last == ["w9.gzdio": "gzip", "w6.xzdio": "xz", "w19.zstdio": "zstd", "w9.bzdio": "bzip2"][payload])

        let release = kernel.version
        #expect(package.kernels.map(\.release) == [release])
        let found = try #require(package.kernels.first)
        #expect(found.vmlinuzPath == "/boot/vmlinuz-\(release)")
        #expect(found.systemMapPath == "/boot/System.map-\(release)")
        #expect(found.configPath == "/boot/config-\(release)")
        #expect(found.modulesDirectory == "/lib/modules/\(release)")
        #expect(found.image.format == .bzImage)

        // The names rpm lists and the payload rpm2cpio gives, entry for entry.
        let rpmList = try Command.run("rpm", ["-qlp", rpm]).requireSuccess().stdout.split(separator: "\n").map(String.init)
        #expect(Set(package.files.map(\.path)) == Set(rpmList))
        let cpioList = try Command.run("sh", ["-c", "rpm2cpio \"$0\" | cpio -t --quiet", rpm]).requireSuccess()
            .stdout.split(separator: "\n").map { "/" + $0.split(separator: "/").filter { $0 != "." }.joined(separator: "/") }
        #expect(package.files.count == cpioList.count)
        #expect(Set(package.files.map(\.path)) == Set(cpioList))

        // The bytes, links and kinds, against what cpio unpacks from rpm2cpio's stream.
        let unpacked = try TemporaryDirectory(prefix: "rehost-rpm")
        try Command.run("sh", ["-c", "rpm2cpio \"$0\" | cpio -idm --quiet --no-absolute-filenames", rpm],
                        currentDirectory: unpacked.path).requireSuccess()
        UnpackedTree.expectMatches(package.files, root: unpacked.path)

        // And against the Debian files they were built from.
        let vmlinuz = try #require(package.file(at: found.vmlinuzPath))
        #expect(vmlinuz.data == Array(try Data(contentsOf: URL(fileURLWithPath: kernel.vmlinuz))))
        #expect(vmlinuz.mode == 0o644)
        let build = try #require(package.file(at: "/lib/modules/\(release)/build"))
        #expect(build.kind == .symlink && build.linkTarget == "/usr/src/kernels/\(release)")
        // rpm writes hard-linked names with the data on the last; the reader puts the data first.
        let links = package.files.filter { $0.path.hasSuffix("config-\(release)") || $0.path == "/lib/modules/\(release)/config" }
        #expect(links.map(\.kind) == [.regular, .hardlink])
        #expect(links.last?.linkTarget == links.first?.path)
        #expect(links.last?.data == Array(try Data(contentsOf: URL(fileURLWithPath: kernel.config))))
        #expect(package.files.filter { $0.path.hasSuffix(".ko") }.count == 8)
    }

    @Test func refusesAnRPMThatIsNotAKernel() throws {
        let rpm = try BuiltPackages.plainRPM()
        let contents = try PackageContents.read(path: rpm)
        #expect(contents.name == "hello-rehost" && contents.version == "1.0-1" && contents.architecture == "noarch")
        let symlink = contents.files.first { $0.path == "/usr/bin/hi" }
        #expect(symlink?.kind == .symlink && symlink?.linkTarget == "hello-rehost")
        #expect(contents.files.first { $0.path == "/usr/bin/hello-rehost" }?.mode == 0o755)

        let error = expectPackageError { () throws(KernelPackageError) in _ = try KernelPackage.read(path: rpm) }
        #expect(error?.description == "\(rpm): package 'hello-rehost' 1.0-1 installs no kernel (no /boot/vmlinuz-*; its 3 files go to /usr/bin, /usr/share)")
    }

    @Test func readsAnEL5ShapedKernelRPM() throws {
        let rpm = try BuiltPackages.tinyKernelRPM()
        let package = try KernelPackage.read(path: rpm)
        #expect(package.name == "kernel" && package.version == "2.6.18-398.el5")
        #expect(package.kernels.map(\.release) == ["2.6.18-398.el5"])
        #expect(package.kernels.first?.configPath == nil)
        // Not a kernel image by its bytes: the caller decides what to do with that.
        #expect(package.kernels.first?.image.format == .unknown)
    }
}
