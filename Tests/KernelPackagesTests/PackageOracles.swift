import Foundation
import KernelPackages
import Synchronization
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// What `dpkg-deb -c` or `cpio -tv` says about one entry.
struct ListedEntry: Equatable, CustomStringConvertible {
    var path: String
    /// "-", "d", "l" or "h" (a hard link, in dpkg-deb's listing).
    var type: Character
    var mode: UInt16
    var size: Int
    var linkTarget: String?

    var description: String { "\(type) \(String(mode, radix: 8)) \(size) \(path)\(linkTarget.map { " -> \($0)" } ?? "")" }

    /// The same facts from a package file, for comparing with a listing.
    init(_ file: PackageFile) {
        path = file.path
        switch file.kind {
        case .regular: type = "-"
        case .directory: type = "d"
        case .symlink: type = "l"
        case .hardlink: type = "h"
        }
        mode = file.mode
        size = file.kind == .regular ? file.data.count : 0
        linkTarget = file.linkTarget
    }

    init(path: String, type: Character, mode: UInt16, size: Int, linkTarget: String?) {
        self.path = path
        self.type = type
        self.mode = mode
        self.size = size
        self.linkTarget = linkTarget
    }

    /// "drwxr-xr-x" -> 0o755 (s, S, t, T included).
    static func mode(_ text: Substring) -> UInt16 {
        let chars = Array(text.dropFirst())
        guard chars.count == 9 else { return 0 }
        var mode: UInt16 = 0
        for (index, char) in chars.enumerated() {
            let bit = UInt16(1) << UInt16(8 - index)
            if char != "-" && char != "S" && char != "T" { mode |= bit }
        }
        if chars[2] == "s" || chars[2] == "S" { mode |= 0o4000 }
        if chars[5] == "s" || chars[5] == "S" { mode |= 0o2000 }
        if chars[8] == "t" || chars[8] == "T" { mode |= 0o1000 }
        return mode
    }

    /// `dpkg-deb -c` lines: "-rw-r--r-- root/root 83 2024-11-26 17:12 ./boot/System.map-...",
    /// symlinks "... ./vmlinuz -> boot/vmlinuz-...", hard links "hrw-r--r-- ... ./b link to ./a".
    static func dpkgListing(of package: String) throws -> [ListedEntry] {
        let result = try Command.run("dpkg-deb", ["-c", package], timeout: .seconds(300)).requireSuccess()
        return result.stdout.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
            guard fields.count == 6, let size = Int(fields[2]) else { return nil }
            var name = String(fields[5]), target: String?
            var type = fields[0].first ?? "?"
            if type == "l", let arrow = name.range(of: " -> ") {
                target = String(name[arrow.upperBound...])
                name = String(name[..<arrow.lowerBound])
            }
            if type == "h", let link = name.range(of: " link to ") {
                target = "/" + String(name[link.upperBound...]).split(separator: "/").filter { $0 != "." }.joined(separator: "/")
                name = String(name[..<link.lowerBound])
            }
            if type == "-" && name.hasSuffix("/") { type = "d" }
            let path = "/" + name.split(separator: "/").filter { $0 != "." }.joined(separator: "/")
            guard path != "/" else { return nil }
            return ListedEntry(path: path, type: type, mode: mode(fields[0]), size: type == "-" ? size : 0, linkTarget: target)
        }
    }
}

/// A directory tree on disk, as a package unpacker left it.
enum UnpackedTree {
    /// Relative paths ("boot/vmlinuz-...") of everything under `root`, `.complete` left out.
    static func paths(under root: String) -> Set<String> {
        var paths: Set<String> = []
        let enumerator = FileManager.default.enumerator(atPath: root)
        while let next = enumerator?.nextObject() as? String {
            if next != ".complete" { paths.insert("/" + next) }
        }
        return paths
    }

    /// Checks each package file against the unpacked tree at `root`: bytes of regular files,
    /// symlink targets, hard links sharing an inode, directories.
    static func expectMatches(_ files: [PackageFile], root: String, sourceLocation: SourceLocation = #_sourceLocation) {
        var mismatches: [String] = []
        for file in files {
            let onDisk = root + file.path
            var info = stat()
            guard lstat(onDisk, &info) == 0 else { mismatches.append("\(file.path): missing on disk"); continue }
            switch file.kind {
            case .directory:
                if info.st_mode & S_IFMT != S_IFDIR { mismatches.append("\(file.path): not a directory on disk") }
            case .symlink:
                let target = try? FileManager.default.destinationOfSymbolicLink(atPath: onDisk)
                if target != file.linkTarget { mismatches.append("\(file.path): symlink to \(target ?? "?"), package says \(file.linkTarget ?? "?")") }
            case .regular, .hardlink:
                guard let data = FileManager.default.contents(atPath: onDisk) else { mismatches.append("\(file.path): unreadable"); continue }
                let same = data.count == file.data.count && data.withUnsafeBytes { disk in
                    file.data.withUnsafeBytes { mine in memcmp(disk.baseAddress!, mine.baseAddress!, data.count) == 0 }
                }
                if !same { mismatches.append("\(file.path): \(data.count) bytes on disk differ from the package's \(file.data.count)") }
                if file.kind == .hardlink, let target = file.linkTarget {
                    var targetInfo = stat()
                    if lstat(root + target, &targetInfo) != 0 || targetInfo.st_ino != info.st_ino {
                        mismatches.append("\(file.path): not the same inode as \(target) on disk")
                    }
                }
            }
        }
        #expect(mismatches.isEmpty, "\(mismatches.count) mismatches: \(mismatches.prefix(10))", sourceLocation: sourceLocation)
    }
}

/// Packages built with the real tools, once per test run, in a directory kept for the run.
enum BuiltPackages {
    /// One package: built once, by whichever test asks first, while the others wait for it.
    private final class Slot: Sendable {
        let path = Mutex<String?>(nil)
    }

    private static let directory = Mutex<TemporaryDirectory?>(nil)
    private static let slots = Mutex<[String: Slot]>([:])

    /// The path of the package built by `make` under `key`, building it on first use (callers of
    /// the same key wait; different keys build in parallel). `make` gets an empty directory of its
    /// own and returns the package path.
    static func cached(_ key: String, _ make: (String) throws -> String) throws -> String {
        let slot = slots.withLock { slots in
            if let slot = slots[key] { return slot }
            let slot = Slot()
            slots[key] = slot
            return slot
        }
        return try slot.path.withLock { path in
            if let path { return path }
            let root = try directory.withLock { directory in
                if directory == nil { directory = try TemporaryDirectory(prefix: "rehost-packages") }
                return directory!.path
            }
            let work = "\(root)/\(key)"
            try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
            let made = try make(work)
            path = made
            return made
        }
    }

    /// The Debian kernel's files that go into test RPMs: the image, System.map, config, and a few
    /// modules (ext4 and its dependencies, virtio block and net) with the module lists.
    static let moduleSubset = [
        "kernel/fs/ext4", "kernel/fs/jbd2", "kernel/fs/mbcache.ko", "kernel/lib/crc16.ko",
        "kernel/drivers/block/virtio_blk.ko", "kernel/drivers/net/virtio_net.ko", "kernel/drivers/net/net_failover.ko",
        "kernel/net/core/failover.ko", "modules.order", "modules.builtin", "modules.builtin.modinfo",
    ]

    /// An RHEL-style kernel RPM (kernel-6.1.0-57.1.x86_64.rpm) of the Debian kernel's files with
    /// `payload` ("w9.gzdio", "w6.xzdio", "w19.zstdio", "w9.bzdio"): /boot/vmlinuz, System.map
    /// and config, /lib/modules/<release>/ with a module subset, an absolute `build` symlink, and
    /// `/lib/modules/<release>/config` hard-linked to /boot/config-<release>.
    static func kernelRPM(payload: String) throws -> String {
        let kernel = try DebianKernel.current()
        return try cached("kernel-\(payload)") { work in
            let release = kernel.version, source = kernel.root
            let modules = "%{buildroot}/lib/modules/\(release)"
            var install = [
                "mkdir -p %{buildroot}/boot \(modules)",
                "cp \(source)/boot/vmlinuz-\(release) \(source)/boot/System.map-\(release) \(source)/boot/config-\(release) %{buildroot}/boot/",
                "ln -s /usr/src/kernels/\(release) \(modules)/build",
                "ln %{buildroot}/boot/config-\(release) \(modules)/config",
            ]
            for item in moduleSubset {
                let parent = (item as NSString).deletingLastPathComponent
                install.append("mkdir -p \(modules)/\(parent) && cp -r \(source)/lib/modules/\(release)/\(item) \(modules)/\(parent)/")
            }
            return try rpmbuild(in: work, name: "kernel", version: "6.1.0", release: "57.1", arch: "x86_64", payload: payload,
                                install: install, files: ["/boot/vmlinuz-\(release)", "/boot/System.map-\(release)",
                                                          "/boot/config-\(release)", "/lib/modules/\(release)"])
        }
    }

    /// A small package that is not a kernel: a script, a document, a symlink.
    static func plainRPM() throws -> String {
        try cached("plain-rpm") { work in
            try rpmbuild(in: work, name: "hello-rehost", version: "1.0", release: "1", arch: "noarch", payload: "w9.gzdio",
                         install: ["mkdir -p %{buildroot}/usr/bin %{buildroot}/usr/share/doc/hello-rehost",
                                   "printf '#!/bin/sh\\necho hello\\n' > %{buildroot}/usr/bin/hello-rehost",
                                   "chmod 755 %{buildroot}/usr/bin/hello-rehost",
                                   "printf 'Hello.\\n' > %{buildroot}/usr/share/doc/hello-rehost/README",
                                   "ln -s hello-rehost %{buildroot}/usr/bin/hi"],
                         files: ["/usr/bin/hello-rehost", "/usr/bin/hi", "/usr/share/doc/hello-rehost"])
        }
    }

    /// A tiny kernel-shaped RPM (a 4 KiB fake image, one small module file), quick to mutate.
    static func tinyKernelRPM() throws -> String {
        try cached("tiny-kernel-rpm") { work in
            try rpmbuild(in: work, name: "kernel", version: "2.6.18", release: "398.el5", arch: "x86_64", payload: "w6.xzdio",
                         install: ["mkdir -p %{buildroot}/boot %{buildroot}/lib/modules/2.6.18-398.el5/kernel",
                                   "head -c 4096 /dev/zero | tr '\\0' 'K' > %{buildroot}/boot/vmlinuz-2.6.18-398.el5",
                                   "printf 'ffffffff81000000 T _text\\n' > %{buildroot}/boot/System.map-2.6.18-398.el5",
                                   "printf 'fake module\\n' > %{buildroot}/lib/modules/2.6.18-398.el5/kernel/fake.ko"],
                         files: ["/boot/vmlinuz-2.6.18-398.el5", "/boot/System.map-2.6.18-398.el5", "/lib/modules/2.6.18-398.el5"])
        }
    }

    static func rpmbuild(in work: String, name: String, version: String, release: String, arch: String, payload: String,
                         install: [String], files: [String]) throws -> String {
        let spec = """
            %define _binary_payload \(payload)
            %define debug_package %{nil}
            %define __os_install_post %{nil}
            %define _build_id_links none
            Name: \(name)
            Version: \(version)
            Release: \(release)
            Summary: Rehost test package
            License: GPL-2.0-only
            AutoReqProv: no
            \(arch == "noarch" ? "BuildArch: noarch" : "")
            %description
            A package built by Rehost's tests.
            %install
            \(install.joined(separator: "\n"))
            %files
            \(files.joined(separator: "\n"))

            """
        try spec.write(toFile: "\(work)/\(name).spec", atomically: true, encoding: .utf8)
        var arguments = ["-bb", "--nodeps", "--quiet", "--define", "_topdir \(work)/top", "\(work)/\(name).spec"]
        if arch != "noarch" { arguments.insert(contentsOf: ["--target", arch], at: 0) }
        try Command.run("rpmbuild", arguments, timeout: .seconds(300)).requireSuccess()
        let built = "\(work)/top/RPMS/\(arch)/\(name)-\(version)-\(release).\(arch).rpm"
        guard FileManager.default.fileExists(atPath: built) else {
            throw TestSupportError.fixtureFailed(script: "rpmbuild", reason: "no \(built)")
        }
        return built
    }

    /// A DEB built with `dpkg-deb --build` from a tree made by `populate` (given the tree root),
    /// with `compression` ("gzip", "xz", "zstd", "none").
    static func deb(_ key: String, package: String, version: String = "1.0-1", compression: String = "xz",
                    populate: (String) throws -> Void) throws -> String {
        try cached("deb-\(key)") { work in
            let root = "\(work)/root"
            try FileManager.default.createDirectory(atPath: "\(root)/DEBIAN", withIntermediateDirectories: true)
            try """
                Package: \(package)
                Version: \(version)
                Architecture: amd64
                Maintainer: Rehost tests <tests@example.invalid>
                Description: a package built by Rehost's tests
                 with a continuation line.

                """.write(toFile: "\(root)/DEBIAN/control", atomically: true, encoding: .utf8)
            try populate(root)
            let output = "\(work)/\(package)_\(version)_amd64.deb"
            try Command.run("dpkg-deb", ["--root-owner-group", "-Z\(compression)", "--build", root, output],
                            timeout: .seconds(300)).requireSuccess()
            return output
        }
    }

    /// Writes `text` at `path` under `root`, creating directories.
    static func write(_ text: String, _ path: String, under root: String, mode: Int = 0o644) throws {
        let full = root + path
        try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try text.write(toFile: full, atomically: false, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: full)
    }
}

/// Expects `body` to throw a `KernelPackageError`, and returns it.
@discardableResult
func expectPackageError(_ sourceLocation: SourceLocation = #_sourceLocation,
                        _ body: () throws(KernelPackageError) -> Void) -> KernelPackageError? {
    do {
        try body()
        Issue.record("expected a KernelPackageError, but reading succeeded", sourceLocation: sourceLocation)
        return nil
    } catch {
        #expect(!error.description.contains("\n"), "one line: \(error.description)", sourceLocation: sourceLocation)
        return error
    }
}

/// The byte offset an error names, when it names one.
func offset(of error: KernelPackageError) -> UInt64? {
    switch error {
    case let .truncated(_, offset, _), let .corrupt(_, offset, _), let .unsupported(_, offset, _), let .unsafePath(_, offset, _),
         let .throughSymlink(_, offset, _, _):
        return offset
    case let .compression(inner):
        switch inner {
        case let .corrupt(_, offset, _, _), let .truncated(_, offset, _): return offset
        default: return nil
        }
    case let .cpio(inner):
        switch inner {
        case let .truncated(_, offset, _), let .badMagic(_, offset, _), let .badField(_, offset, _, _), let .badName(_, offset, _),
             let .missingTrailer(_, offset), let .oldCharacterFormat(_, offset), let .nameTooLong(_, offset, _, _),
             let .checksumMismatch(_, offset, _, _, _), let .tooManyEntries(_, offset, _):
            return offset
        }
    default:
        return nil
    }
}
