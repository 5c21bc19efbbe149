import Ext2
import FilesystemBuilder
import Foundation
import ImageCore
import Synchronization
import Testing

/// The write-tracking I/O manager misses no write: a filesystem is built into a partition (a tree
/// copied, a swap file, a file rewritten, the metadata written at close), and every byte of the disk
/// that changed from the moment tracking began lies in a range the observer was told of.
struct Ext2WriteTrackingTests {
    final class Recorder: Ext2WriteObserver {
        let writes = Mutex<[(Range<UInt64>, Bool)]>([])
        func didWrite(_ range: Range<UInt64>, direct: Bool) { writes.withLock { $0.append((range, direct)) } }
    }

    func sh(_ command: String) throws {
        let result = try Tool.run("/bin/sh", ["-c", command])
        guard result.status == 0 else { throw ToolError.failed(tool: command, status: result.status, stderr: result.stderr) }
    }

    @Test func everyChangedByteIsReported() throws {
        let dir = NSTemporaryDirectory() + "rehost-write-tracking-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: "\(dir)/tree/docs", withIntermediateDirectories: true)
        try Data((0..<(2 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 11) }).write(to: URL(fileURLWithPath: "\(dir)/tree/big.bin"))
        for index in 0..<200 {
            try Data(String(repeating: "note \(index) ", count: index + 1).utf8).write(to: URL(fileURLWithPath: "\(dir)/tree/docs/n\(index)"))
        }
        try sh("mke2fs -q -F -t ext3 -b 4096 -I 128 -d \(dir)/tree \(dir)/source.img 32M && truncate -s 49M \(dir)/disk.raw")
        let source = try Ext2Filesystem(path: "\(dir)/source.img")
        let offset: UInt64 = 1 << 20
        let destination = try Ext2Filesystem.format(path: "\(dir)/disk.raw", offset: offset,
                                                    parameters: FormatPlanner.parameters(for: source, capacity: 48 << 20, options: FormatOptions()))
        let recorder = Recorder()
        try destination.observeWrites(recorder)
        let before = try Data(contentsOf: URL(fileURLWithPath: "\(dir)/disk.raw"))

        _ = try TreeCopier(from: source, to: destination).copy()
        try SwapFile.create(in: destination, name: "swapfile", size: 4 << 20, uuid: UUIDBytes.random(), time: 1_700_000_000)
        let note = try #require(try destination.lookup("/docs/n5"))
        try destination.replaceContents(note, with: Array(repeating: 0x41, count: 20_000), modificationTime: 1_700_000_000)
        try destination.close()
        let after = try Data(contentsOf: URL(fileURLWithPath: "\(dir)/disk.raw"))

        let writes = recorder.writes.withLock { $0 }
        #expect(writes.contains { $0.1 && $0.0.count >= 1 << 20 }, "the big file is written directly in long runs")
        #expect(writes.contains { !$0.1 }, "metadata goes through the cache")
        #expect(writes.allSatisfy { $0.0.lowerBound >= offset }, "offsets include the partition's")
        var reported = [Bool](repeating: false, count: after.count)
        for (range, _) in writes { for byte in range where byte < UInt64(after.count) { reported[Int(byte)] = true } }
        var unreported = 0
        before.withUnsafeBytes { old in
            after.withUnsafeBytes { new in
                for index in 0..<min(old.count, new.count) where old[index] != new[index] && !reported[index] { unreported += 1 }
            }
        }
        #expect(before.count == after.count)
        #expect(unreported == 0, "\(unreported) changed bytes were never reported")
    }
}
