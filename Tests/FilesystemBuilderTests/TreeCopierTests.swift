import Ext2
import FilesystemBuilder
import Foundation
import ImageCore
import Testing

/// Builds a source filesystem with e2fsprogs, copies it through libext2fs into a partition of a
/// bigger file, and reads the result back with e2fsck and debugfs.
struct TreeCopierTests {
    func sh(_ command: String) throws -> String {
        let result = try Tool.run("/bin/sh", ["-c", command])
        guard result.status == 0 else {
            Issue.record("command failed (\(result.status)): \(command)\n\(result.stderr)")
            throw ToolError.failed(tool: command, status: result.status, stderr: result.stderr)
        }
        return String(decoding: result.stdout, as: UTF8.self)
    }

    func makeSource(in dir: String) throws -> String {
        let staging = "\(dir)/staging"
        _ = try sh("""
            set -e
            mkdir -p \(staging)/etc \(staging)/data/sub \(staging)/empty
            printf 'hello\\n' > \(staging)/etc/motd
            ln \(staging)/etc/motd \(staging)/data/motd-link
            ln -s ../etc/motd \(staging)/data/fast-link
            ln -s /$(printf 'x%.0s' $(seq 1 120)) \(staging)/data/slow-link
            truncate -s 10M \(staging)/data/sparse
            printf 'middle' | dd of=\(staging)/data/sparse bs=1 seek=5000000 conv=notrunc 2>/dev/null
            head -c 3000000 /dev/urandom > \(staging)/data/random
            : > \(staging)/data/empty-file
            mkfifo \(staging)/data/fifo
            mkdir \(staging)/big-directory
            for i in $(seq 1 1500); do : > \(staging)/big-directory/a-fairly-long-file-name-number-$i; done
            mke2fs -q -F -t ext3 -b 4096 -I 128 -L /src -d \(staging) \(dir)/source.img 64M
            debugfs -w -R 'sif /etc/motd uid 100000' \(dir)/source.img
            debugfs -w -R 'ea_set /etc/motd security.selinux system_u:object_r:etc_t:s0' \(dir)/source.img
            debugfs -w -R 'sif /data/random flags 0x10' \(dir)/source.img
            debugfs -w -R 'sif /data/sparse mtime 201401020304' \(dir)/source.img
            """)
        return "\(dir)/source.img"
    }

    @Test func copiesEveryKindOfFileIntoAPartition() throws {
        let dir = try sh("mktemp -d").trimmingCharacters(in: .whitespacesAndNewlines)
        defer { _ = try? sh("rm -rf \(dir)") }
        let sourcePath = try makeSource(in: dir)
        let disk = "\(dir)/disk.raw"
        let offset: UInt64 = 1 << 20
        _ = try sh("truncate -s 81M \(disk)")

        let source = try Ext2Filesystem(path: sourcePath)
        let parameters = FormatPlanner.parameters(for: source, capacity: 80 << 20, options: FormatOptions())
        let destination = try Ext2Filesystem.format(path: disk, offset: offset, parameters: parameters)
        let statistics = try TreeCopier(from: source, to: destination).copy()
        try destination.close()

        #expect(statistics.hardLinks == 1)
        #expect(statistics.symlinks == 2)
        let fsck = try Tool.run("/sbin/e2fsck", ["-fn", "\(disk)?offset=\(offset)"])
        #expect(fsck.status == 0, "e2fsck: \(String(decoding: fsck.stdout, as: UTF8.self))")

        let image = "\(disk)?offset=\(offset)"
        #expect(try sh("debugfs -R 'cat /etc/motd' '\(image)' 2>/dev/null") == "hello\n")
        #expect(try sh("debugfs -R 'cat /data/motd-link' '\(image)' 2>/dev/null") == "hello\n")
        let motd = try sh("debugfs -R 'stat /etc/motd' '\(image)' 2>/dev/null")
        #expect(motd.contains("User: 100000"))
        #expect(motd.contains("Links: 2"))
        #expect(try sh("debugfs -R 'ea_get /etc/motd security.selinux' '\(image)' 2>/dev/null").contains("system_u:object_r:etc_t:s0"))
        #expect(try sh("debugfs -R 'stat /data/random' '\(image)' 2>/dev/null").contains("Flags: 0x10"))
        #expect(try sh("debugfs -R 'cat /data/random' '\(image)' 2>/dev/null | sha256sum")
                == (try sh("debugfs -R 'cat /data/random' '\(sourcePath)' 2>/dev/null | sha256sum")))
        let sparse = try sh("debugfs -R 'stat /data/sparse' '\(image)' 2>/dev/null")
        #expect(sparse.contains("Size: 10485760"))
        // One data block at logical 1220 (byte 5000000) plus the two indirect blocks that map it.
        #expect(sparse.contains(", (1220):") && sparse.contains("TOTAL: 3"), "only the one data block is mapped: \(sparse)")
        #expect(try sh("debugfs -R 'stat /data/slow-link' '\(image)' 2>/dev/null").contains("Size: 121"))
        #expect(try sh("dumpe2fs -h '\(image)' 2>/dev/null").contains("Filesystem volume name:   /src"))
        // A directory spanning many blocks, written in one go, lists every name once.
        let names = try sh("debugfs -R 'ls -p /big-directory' '\(image)' 2>/dev/null").split(separator: "\n")
            .compactMap { $0.split(separator: "/").dropFirst(4).first }.filter { $0.hasPrefix("a-fairly") }
        #expect(names.count == 1500 && Set(names).count == 1500)
        // 1500 records of 44 bytes after "." and "..", packed like mke2fs packs them: 17 blocks.
        #expect(try sh("debugfs -R 'stat /big-directory' '\(image)' 2>/dev/null").contains("Size: 69632"))
    }
}
