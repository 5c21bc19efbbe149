import Foundation
import Testing
import TestSupport

@Suite struct TreeDifferenceTests {
    /// The sample image, its manifest, and a scratch directory to make modified copies in.
    struct Original {
        let directory: TemporaryDirectory
        let sample: SampleFilesystem
        let image: String
        let manifest: ExtTreeManifest

        init() throws {
            directory = try TemporaryDirectory()
            sample = try SampleFilesystem.stage(in: directory)
            image = directory.file("source.img")
            try sample.build(image: image, scratch: directory)
            manifest = try ExtTreeManifest.read(image: image)
        }

        /// A copy of the image with `edits` applied, read back.
        func modified(_ name: String, edits: [String], beforeEdits: (String) throws -> Void = { _ in }) throws -> ExtTreeManifest {
            let copy = directory.file(name)
            try FileManager.default.copyItem(atPath: image, toPath: copy)
            try beforeEdits(copy)
            if !edits.isEmpty { try debugfsWrite(image: copy, edits, scratch: directory) }
            return try ExtTreeManifest.read(image: copy)
        }
    }

    static func keys(_ differences: [TreeDifference]) -> Set<String> {
        Set(differences.map { "\($0.path) \($0.property)" })
    }

    @Test func sameImageHasNoDifferences() throws {
        let original = try Original()
        let again = try ExtTreeManifest.read(image: original.image)
        #expect(ExtTreeManifest.differences(from: original.manifest, to: again) == [])
        #expect(again == original.manifest)
    }

    @Test func reportsExactlyTheChangesMade() throws {
        let original = try Original()
        let source = original.manifest
        let hardLinkTime = "@\(SampleFilesystem.hardLinkSeconds)"
        let sparse = try #require(source["/sparse"])
        let motd = try #require(source["/etc/motd"])
        let output = try original.modified("changed.img", edits: [
            // One mode, one xattr value, one timestamp.
            "sif \"/dir with space/file name.txt\" mode 0100600",
            "ea_set /etc/hosts user.comment changed",
            "sif /big mtime @1234567890",
            // Break the hard link: /sub/hard2 becomes its own inode with the same content and attributes.
            "unlink /sub/hard2",
            "sif /hard1 links_count 1",
            "cd /sub",
            "write \(original.sample.staging)/hard1 hard2",
            "sif /sub/hard2 atime \(hardLinkTime)",
            "sif /sub/hard2 mtime \(hardLinkTime)",
            "sif /sub/hard2 ctime \(hardLinkTime)",
            // Fill the hole at block 0 with a zeroed block: the content stays the same.
            "fallocate /sparse 0 0",
            "sif /sparse atime @\(sparse.atime.seconds)",
            "sif /sparse mtime @\(sparse.mtime.seconds)",
            "sif /sparse ctime @\(sparse.ctime.seconds)",
        ]) { copy in
            // Change /etc/motd's bytes in place, behind debugfs's back, so nothing else about it changes.
            let bmap = try Command.run("debugfs", ["-R", "bmap <\(motd.inode)> 0", copy]).requireSuccess()
            let block = try #require(UInt64(bmap.stdout.trimmingCharacters(in: .whitespacesAndNewlines)))
            try Command.run("dd", ["of=\(copy)", "bs=1", "seek=\(block * UInt64(SampleFilesystem.blockSize))", "conv=notrunc"],
                            stdin: Array("MOTD\n".utf8)).requireSuccess()
        }

        let differences = ExtTreeManifest.differences(from: source, to: output)
        #expect(Self.keys(differences) == [
            "/etc/motd content sha256",
            "/dir with space/file name.txt mode",
            "/etc/hosts xattr user.comment",
            "/big mtime",
            "/hard1 hard links",
            "/sub/hard2 hard links",
            "/sparse mapped bytes",
        ], "\(differences)")
        let byKey = Dictionary(differences.map { ("\($0.path) \($0.property)", $0) }, uniquingKeysWith: { a, _ in a })
        #expect(byKey["/dir with space/file name.txt mode"]?.source == "0644")
        #expect(byKey["/dir with space/file name.txt mode"]?.output == "0600")
        #expect(byKey["/etc/hosts xattr user.comment"]?.source == "\"two words\"")
        #expect(byKey["/etc/hosts xattr user.comment"]?.output == "\"changed\"")
        #expect(byKey["/hard1 hard links"]?.source == "/hard1, /sub/hard2")
        #expect(byKey["/hard1 hard links"]?.output == "/hard1")
        #expect(byKey["/big mtime"]?.output.hasPrefix("1234567890 ") == true)
        #expect(byKey["/sparse mapped bytes"]?.source == "102400..<110592")
        #expect(byKey["/sparse mapped bytes"]?.output == "0..<4096 102400..<110592")
        #expect(byKey["/etc/motd content sha256"]?.source == original.sample.digests["/etc/motd"])
        // Readable on its own in a failure message.
        #expect(byKey["/dir with space/file name.txt mode"]?.description
                == "/dir with space/file name.txt: mode: source 0644, output 0600")

        // The same comparison with those paths or times excused.
        let excused = ExtTreeManifest.differences(from: source, to: output, ignoringTimesOf: ["/big"],
                                                  ignoringPaths: ["/etc", "/sub", "/sparse"])
        // With /sub/hard2 out of the picture, /hard1's groups match and its link count (2 -> 1) shows.
        #expect(Self.keys(excused) == ["/dir with space/file name.txt mode", "/hard1 link count"], "\(excused)")
    }

    @Test func missingPathsAndKindChanges() throws {
        let original = try Original()
        let output = try original.modified("removed.img", edits: [
            "rm /etc/motd",
            "rm /link",
            "cd /",
            "mknod link p",
        ])
        let differences = ExtTreeManifest.differences(from: original.manifest, to: output)
        #expect(Self.keys(differences) == ["/etc/motd presence", "/link type"], "\(differences)")
        #expect(differences.first { $0.path == "/etc/motd" }?.output == "missing")
    }

    @Test func directorySizeIsIgnoredUnlessAskedFor() throws {
        let original = try Original()
        let output = try original.modified("expanded.img", edits: ["expand_dir /etc"])
        #expect((output["/etc"]?.size ?? 0) > (original.manifest["/etc"]?.size ?? 0))
        let relaxed = ExtTreeManifest.differences(from: original.manifest, to: output)
        let strict = ExtTreeManifest.differences(from: original.manifest, to: output, comparingDirectorySizes: true)
        #expect(Self.keys(strict).subtracting(Self.keys(relaxed)) == ["/etc size"])
        #expect(!Self.keys(relaxed).contains("/etc size"))
    }

    @Test func timesCompareAtTheCoarserPrecision() {
        #expect(InodeTime(seconds: 5, nanoseconds: 7).matches(InodeTime(seconds: 5)))
        #expect(!InodeTime(seconds: 5, nanoseconds: 7).matches(InodeTime(seconds: 5, nanoseconds: 8)))
        #expect(!InodeTime(seconds: 5).matches(InodeTime(seconds: 6)))
    }
}
