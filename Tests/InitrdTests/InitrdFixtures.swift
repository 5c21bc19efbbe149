import Compression
import Foundation
import Initrd
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// A small initramfs-like tree on disk, packed by GNU cpio as initramfs-tools and dracut do
/// (`find . | cpio -o -H newc`).
enum InitrdFixtures {
    static let module: [UInt8] = {
        var random = SplitMix(seed: 0xC910)
        return random.bytes(5000)
    }()
    static let initScript = Array("#!/bin/sh\nexec /sbin/init\n".utf8)

    /// path -> (kind, permission bits, data or link target)
    static let expected: [String: (CpioEntry.Kind, UInt32, [UInt8])] = [
        "usr": (.directory, 0o755, []),
        "usr/lib": (.directory, 0o755, []),
        "usr/lib/modules": (.directory, 0o755, []),
        "usr/lib/modules/6.1.0": (.directory, 0o755, []),
        "usr/lib/modules/6.1.0/kernel": (.directory, 0o755, []),
        "usr/lib/modules/6.1.0/kernel/x.ko": (.regular, 0o644, module),
        "init": (.regular, 0o755, initScript),
        "etc": (.directory, 0o700, []),
        "etc/empty": (.regular, 0o600, []),
        "lib": (.symlink, 0o777, Array("usr/lib".utf8)),
        "bin": (.directory, 0o755, []),
        "bin/sh": (.symlink, 0o777, Array("busybox".utf8)),
        "dev": (.directory, 0o755, []),
        "dev/initctl": (.fifo, 0o600, []),
    ]

    /// Makes the tree under `root` (files, directories, symlinks, an empty file, a FIFO).
    static func makeTree(at root: String) throws {
        let files = FileManager.default
        for (path, (kind, permissions, data)) in expected.sorted(by: { $0.key < $1.key }) {
            let full = root + "/" + path
            switch kind {
            case .directory:
                try files.createDirectory(atPath: full, withIntermediateDirectories: true)
            case .regular:
                _ = files.createFile(atPath: full, contents: Data(data))
            case .symlink:
                try files.createSymbolicLink(atPath: full, withDestinationPath: String(decoding: data, as: UTF8.self))
            case .fifo:
                #expect(mkfifo(full, mode_t(permissions)) == 0)
            default:
                break
            }
            if kind != .symlink { #expect(chmod(full, mode_t(permissions)) == 0) }
        }
    }

    /// `find . | cpio -o -H <format>` in a fresh copy of the tree.
    static func gnuArchive(format: String = "newc") throws -> [UInt8] {
        let dir = try TemporaryDirectory()
        try makeTree(at: dir.path)
        return try Command.run("sh", ["-c", "find . | LC_ALL=C sort | cpio -o -H \(format) --quiet"],
                               currentDirectory: dir.path).requireSuccess().stdoutBytes
    }

    /// Checks that `entries` hold exactly the fixture tree (plus the root ".").
    static func expectFixtureTree(_ entries: [CpioEntry], sourceLocation: SourceLocation = #_sourceLocation) {
        var seen = Set<String>()
        for entry in entries where entry.path != "" {
            seen.insert(entry.path)
            guard let (kind, permissions, data) = expected[entry.path] else {
                Issue.record("unexpected entry \(entry.name)", sourceLocation: sourceLocation)
                continue
            }
            #expect(entry.kind == kind, "\(entry.path)", sourceLocation: sourceLocation)
            #expect(entry.mode & 0o7777 == permissions, "\(entry.path)", sourceLocation: sourceLocation)
            #expect(entry.data == data, "\(entry.path)", sourceLocation: sourceLocation)
        }
        #expect(seen == Set(expected.keys), sourceLocation: sourceLocation)
    }

    static func compress(_ data: [UInt8], _ command: [String]) throws -> [UInt8] {
        try Command.run(command[0], Array(command.dropFirst()), stdin: data).requireSuccess().stdoutBytes
    }

    static func image(_ bytes: [UInt8], name: String = "initrd.img",
                      limits: InitramfsLimits = .default) throws(InitrdError) -> InitramfsImage {
        let result = bytes.withUnsafeBytes { raw in
            Result { () throws(InitrdError) in try InitramfsImage(bytes: raw, name: name, limits: limits) }
        }
        return try result.get()
    }

    static func imageError(_ bytes: [UInt8], limits: InitramfsLimits = .default) -> InitrdError? {
        do {
            _ = try image(bytes, limits: limits)
            return nil
        } catch {
            return error
        }
    }

    static func readError(_ bytes: [UInt8], limits: CpioLimits = .default) -> CpioError? {
        let result = bytes.withUnsafeBytes { raw in
            Result { () throws(CpioError) in try CpioNewc.read(raw, from: 0, name: "a.cpio", baseOffset: 0, limits: limits) }
        }
        if case let .failure(error) = result { return error }
        return nil
    }
}
