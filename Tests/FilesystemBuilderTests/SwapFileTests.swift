import Ext2
import FilesystemBuilder
import Foundation
import ImageCore
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A swap file made through libext2fs in a new 4 KiB-block ext3 (the CLI test covers 1 KiB
/// blocks), read back with e2fsck, debugfs and blkid.
struct SwapFileTests {
    func sh(_ command: String) throws -> String {
        let result = try Tool.run("/bin/sh", ["-c", command])
        guard result.status == 0 else {
            Issue.record("command failed (\(result.status)): \(command)\n\(result.stderr)")
            throw ToolError.failed(tool: command, status: result.status, stderr: result.stderr)
        }
        return String(decoding: result.stdout, as: UTF8.self)
    }

    @Test func sizesAreChecked() {
        #expect(SwapArea.problem(withSize: 64 << 20) == nil)
        #expect(SwapArea.problem(withSize: 40960) == nil)
        #expect(SwapArea.problem(withSize: 36864) != nil)
        #expect(SwapArea.problem(withSize: (64 << 20) + 512) != nil)
    }

    @Test func headerFields() {
        let uuid = Array(1...16).map(UInt8.init)
        let page = SwapArea.header(size: 1 << 20, uuid: uuid, label: "swap")
        #expect(page.count == 4096)
        #expect(page[0..<1024].allSatisfy { $0 == 0 })
        #expect(Array(page[1024..<1036]) == [1, 0, 0, 0, 255, 0, 0, 0, 0, 0, 0, 0])
        #expect(Array(page[1036..<1052]) == uuid)
        #expect(Array(page[1052..<1068]) == Array("swap".utf8) + [UInt8](repeating: 0, count: 12))
        #expect(page[1068..<4086].allSatisfy { $0 == 0 })
        #expect(Array(page[4086...]) == Array("SWAPSPACE2".utf8))
    }

    @Test func swapFileInA4KiBBlockFilesystem() throws {
        let dir = try sh("mktemp -d").trimmingCharacters(in: .whitespacesAndNewlines)
        defer { _ = try? sh("rm -rf \(dir)") }
        _ = try sh("mke2fs -q -F -t ext3 -b 4096 -I 128 -L /src \(dir)/source.img 32M")
        let disk = "\(dir)/disk.raw"
        let offset: UInt64 = 1 << 20
        _ = try sh("truncate -s 65M \(disk)")
        let source = try Ext2Filesystem(path: "\(dir)/source.img")
        let parameters = FormatPlanner.parameters(for: source, capacity: 64 << 20, options: FormatOptions())
        let destination = try Ext2Filesystem.format(path: disk, offset: offset, parameters: parameters)
        #expect(destination.blockSize == 4096)
        var before = stat()
        #expect(lstat(disk, &before) == 0)
        let size: UInt64 = 16 << 20
        try SwapFile.create(in: destination, name: "swapfile", size: size, uuid: UUIDBytes.random(), time: 1_700_000_000)
        try destination.close()

        let partition = "\(disk)?offset=\(offset)"
        let fsck = try Tool.run("/sbin/e2fsck", ["-fn", partition])
        #expect(fsck.status == 0, "\(String(decoding: fsck.stdout, as: UTF8.self))")
        let inode = try sh("debugfs -R 'stat /swapfile' '\(partition)' 2>/dev/null")
        #expect(inode.contains("Mode:  0600") && inode.contains("User:     0   Group:     0   Size: \(size)"), "\(inode)")
        // 4096 data blocks: 12 direct, 1024 through the indirect block, 3060 through the double
        // indirect block and its 3 indirect blocks.
        #expect(inode.contains("Blockcount: \((4096 + 1 + 1 + 3) * 8)"), "\(inode)")
        _ = try sh("debugfs -R 'dump /swapfile \(dir)/swap.dump' '\(partition)' 2>/dev/null")
        let probe = try sh("blkid -p \(dir)/swap.dump")
        #expect(probe.contains("TYPE=\"swap\""), "\(probe)")
        // Only the header and the indirect blocks were written into the sparse disk.
        var after = stat()
        #expect(lstat(disk, &after) == 0)
        #expect((after.st_blocks - before.st_blocks) * 512 < 1 << 20, "\((after.st_blocks - before.st_blocks) * 512) bytes written")
    }
}
