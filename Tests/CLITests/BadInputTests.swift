import Foundation
import Testing
import TestSupport

/// Every bad input gets one line on standard error naming the problem, a non-zero exit, and no
/// output file (not even a partial one).
struct BadInputTests {
    /// Runs `rehost convert INPUT -o DIR/out.raw EXTRA` as nobody and checks the failure contract.
    func expectRefusal(input: String, outputDirectory: String, extra: [String] = [], mentions phrases: [String],
                       sourceLocation: SourceLocation = #_sourceLocation) throws {
        let output = "\(outputDirectory)/out.raw"
        let result = try Command.runRehost(["convert", input, "-o", output] + extra, asUser: "nobody")
        let lines = result.stderr.split(separator: "\n")
        #expect(result.status != 0, "expected a failure for \(input)", sourceLocation: sourceLocation)
        #expect(lines.count == 1, "expected one line, got:\n\(result.stderr)", sourceLocation: sourceLocation)
        #expect(result.stderr.hasPrefix("rehost: error: "), "\(result.stderr)", sourceLocation: sourceLocation)
        for phrase in phrases {
            #expect(result.stderr.contains(phrase), "\(result.stderr) should mention \(phrase)", sourceLocation: sourceLocation)
        }
        let left = (try? FileManager.default.contentsOfDirectory(atPath: outputDirectory)) ?? []
        #expect(!left.contains { $0.hasPrefix("out.raw") || $0.hasPrefix(".out.raw") },
                "output left behind: \(left)", sourceLocation: sourceLocation)
    }

    func scratch() throws -> TemporaryDirectory {
        let directory = try TemporaryDirectory(prefix: "rehost-bad-input")
        try directory.makeWorldWritable()
        return directory
    }

    func makeWorldReadable(_ path: String) throws {
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: path)
    }

    @Test func emptyFile() throws {
        let dir = try scratch()
        let input = dir.file("empty.img")
        _ = FileManager.default.createFile(atPath: input, contents: Data())
        try makeWorldReadable(input)
        try expectRefusal(input: input, outputDirectory: dir.path, mentions: [input, "empty"])
    }

    @Test func missingFile() throws {
        let dir = try scratch()
        try expectRefusal(input: dir.file("nothing-here.img"), outputDirectory: dir.path, mentions: ["nothing-here.img", "no such file"])
    }

    @Test func truncatedImage() throws {
        let dir = try scratch()
        let fixture = try Fixture.xenInstance()
        let input = dir.file("truncated.img")
        let head = try Command.run("head", ["-c", "10485760", fixture.imagePath]).requireSuccess().stdoutBytes
        #expect(FileManager.default.createFile(atPath: input, contents: Data(head)))
        try makeWorldReadable(input)
        try expectRefusal(input: input, outputDirectory: dir.path, mentions: ["truncated", "10485760"])
    }

    @Test func corruptSuperblock() throws {
        let dir = try scratch()
        let input = dir.file("corrupt.img")
        try Command.run("mke2fs", ["-q", "-F", "-t", "ext3", input, "16M"]).requireSuccess()
        // s_log_block_size at superblock byte 24: a block size of 2^(10+200) bytes is nonsense.
        try Command.run("/bin/sh", ["-c", "printf '\\310' | dd of=\(input) bs=1 seek=1048 conv=notrunc 2>/dev/null"]).requireSuccess()
        try makeWorldReadable(input)
        try expectRefusal(input: input, outputDirectory: dir.path, mentions: [input, "superblock"])
    }

    @Test func notAnExtFilesystem() throws {
        let dir = try scratch()
        let input = dir.file("fat.img")
        try Command.run("mkfs.vfat", ["-C", input, "8192"]).requireSuccess()
        try makeWorldReadable(input)
        try expectRefusal(input: input, outputDirectory: dir.path, mentions: ["vfat"])
    }

    @Test func readOnlyOutputDirectory() throws {
        let dir = try scratch()
        let fixture = try Fixture.xenInstance()
        let readOnly = dir.file("read-only")
        try FileManager.default.createDirectory(atPath: readOnly, withIntermediateDirectories: false,
                                                attributes: [.posixPermissions: 0o555])
        try expectRefusal(input: fixture.imagePath, outputDirectory: readOnly, mentions: [readOnly, "Permission denied"])
    }

    @Test func diskTooSmall() throws {
        let dir = try scratch()
        let fixture = try Fixture.xenInstance()
        try expectRefusal(input: fixture.imagePath, outputDirectory: dir.path, extra: ["--size", "64M"],
                          mentions: ["64 MiB", "too small"])
    }

    @Test func foreignFormatIsNamed() throws {
        let dir = try scratch()
        let input = dir.file("disk")
        let fixture = try Fixture.xenInstance()
        // bzip2: xz, zstd and gzip inputs are read (expanded), bzip2 is still refused with advice.
        try Command.run("/bin/sh", ["-c", "head -c 1048576 '\(fixture.imagePath)' | bzip2 -1 > '\(input)'"]).requireSuccess()
        try makeWorldReadable(input)
        try expectRefusal(input: input, outputDirectory: dir.path, mentions: ["bzip2-compressed", "bzip2 -dk"])
    }

    @Test func unknownSkipNameIsAUsageError() throws {
        let fixture = try Fixture.xenInstance()
        let result = try Command.runRehost(["convert", fixture.imagePath, "-o", "/tmp/never.raw", "--skip", "nonsense"])
        #expect(result.status == 64, "ArgumentParser's usage-error status")
        #expect(result.stderr.split(separator: "\n").first?.contains("--skip nonsense: no such repair") == true, "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: "/tmp/never.raw"))
    }
}
