import Foundation
import ImageCore
import Testing

private final class Scratch {
    let path: String
    init() throws {
        var template = Array("/tmp/rehost-core-test-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw FileError.open(path: "/tmp", errno: errno) }
        path = String(cString: made)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
    func file(_ name: String) -> String { "\(path)/\(name)" }
    func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }
}

@Suite struct RawFileTests {
    @Test func fifosSocketsDirectoriesAndCharacterDevicesAreRefusedAtOnce() throws {
        let dir = try Scratch()
        let fifo = dir.file("fifo")
        #expect(mkfifo(fifo, 0o644) == 0)
        #expect(throws: FileError.notAFile(path: fifo, found: "a FIFO")) { _ = try RawFile(path: fifo, mode: .readOnly) }
        #expect(throws: FileError.notAFile(path: dir.path, found: "a directory")) { _ = try RawFile(path: dir.path, mode: .readOnly) }
        #expect(throws: FileError.notAFile(path: "/dev/null", found: "a character device")) {
            _ = try RawFile(path: "/dev/null", mode: .readOnly)
        }
        // A regular file still opens, and reads block as usual (O_NONBLOCK is cleared).
        let path = dir.file("data")
        try RawFile(path: path, mode: .createExclusive).write([1, 2, 3], at: 0)
        let file = try RawFile(path: path, mode: .readOnly)
        #expect(fcntl(file.fd, F_GETFL) & O_NONBLOCK == 0)
        #expect(try file.read(count: 3, at: 0) == [1, 2, 3])
    }

    @Test func readsExactlyOrReportsShortRead() throws {
        let dir = try Scratch()
        let path = dir.file("data")
        let created = try RawFile(path: path, mode: .createExclusive)
        try created.write(Array(0..<100), at: 0)
        let file = try RawFile(path: path, mode: .readOnly)
        #expect(try file.size == 100)
        #expect(try file.read(count: 10, at: 90) == Array(90..<100))
        let error = #expect(throws: FileError.shortRead(path: path, offset: 50, wanted: 60, got: 50)) {
            _ = try file.read(count: 60, at: 50)
        }
        #expect(error?.description.contains(path) == true)
        #expect(throws: FileError.shortRead(path: path, offset: 200, wanted: 1, got: 0)) {
            _ = try file.read(count: 1, at: 200)
        }
    }

    @Test func createExclusiveRefusesAnExistingFile() throws {
        let dir = try Scratch()
        let path = dir.file("data")
        _ = try RawFile(path: path, mode: .createExclusive)
        #expect(throws: FileError.open(path: path, errno: EEXIST)) { _ = try RawFile(path: path, mode: .createExclusive) }
        #expect(throws: FileError.open(path: dir.file("missing"), errno: ENOENT)) {
            _ = try RawFile(path: dir.file("missing"), mode: .readOnly)
        }
    }

    @Test func dataRangesSkipHoles() throws {
        let dir = try Scratch()
        let file = try RawFile(path: dir.file("sparse"), mode: .createExclusive)
        let block = [UInt8](repeating: 0x5a, count: 4096)
        try file.write(block, at: 0)
        try file.write(block, at: ByteCount.MiB)
        try file.truncate(to: 4 * ByteCount.MiB)
        #expect(try file.size == 4 * ByteCount.MiB)
        let ranges = try file.dataRanges()
        #expect(ranges.count == 2)
        guard ranges.count == 2 else { return }
        #expect(ranges[0].lowerBound == 0 && ranges[0].upperBound >= 4096 && ranges[0].upperBound < ByteCount.MiB)
        #expect(ranges[1].lowerBound <= ByteCount.MiB && ranges[1].lowerBound >= ranges[0].upperBound)
        #expect(ranges[1].upperBound >= ByteCount.MiB + 4096 && ranges[1].upperBound < 4 * ByteCount.MiB)
        // The hole reads back as zeros.
        #expect(try file.read(count: 4096, at: 2 * ByteCount.MiB) == [UInt8](repeating: 0, count: 4096))
    }

    @Test func emptyAndFullyHoledFilesHaveNoData() throws {
        let dir = try Scratch()
        let file = try RawFile(path: dir.file("holes"), mode: .createExclusive)
        #expect(try file.dataRanges().isEmpty)
        try file.truncate(to: 8 * ByteCount.MiB)
        #expect(try file.dataRanges().isEmpty)
    }
}

@Suite struct AtomicOutputTests {
    @Test func nothingAtFinalPathUntilCommit() throws {
        let dir = try Scratch()
        let final = dir.file("disk.raw")
        let output = try AtomicOutput(finalPath: final)
        #expect(dir.exists(output.temporaryPath))
        #expect(output.temporaryPath.hasPrefix(dir.path + "/"))
        try output.file.write(Array("hello".utf8), at: 0)
        #expect(!dir.exists(final))
        try output.commit()
        #expect(dir.exists(final))
        #expect(!dir.exists(output.temporaryPath))
        #expect(try RawFile(path: final, mode: .readOnly).read(count: 5, at: 0) == Array("hello".utf8))
    }

    @Test func releasedWithoutCommitLeavesNothing() throws {
        let dir = try Scratch()
        let final = dir.file("disk.raw")
        var temporary = ""
        do {
            let output = try AtomicOutput(finalPath: final)
            temporary = output.temporaryPath
            try output.file.write([1, 2, 3], at: 0)
            #expect(dir.exists(temporary))
        }
        #expect(!temporary.isEmpty)
        #expect(!dir.exists(temporary))
        #expect(!dir.exists(final))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).isEmpty)
    }

    @Test func commitReplacesAnExistingFile() throws {
        let dir = try Scratch()
        let final = dir.file("disk.raw")
        try Data("old contents".utf8).write(to: URL(fileURLWithPath: final))
        let output = try AtomicOutput(finalPath: final)
        try output.file.write(Array("new".utf8), at: 0)
        #expect(try Data(contentsOf: URL(fileURLWithPath: final)) == Data("old contents".utf8))
        try output.commit()
        #expect(try Data(contentsOf: URL(fileURLWithPath: final)) == Data("new".utf8))
    }
}
