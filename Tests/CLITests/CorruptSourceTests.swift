import Foundation
import Testing
import TestSupport

/// A hostile or damaged guest filesystem must neither stop a conversion for ever nor damage the
/// output: each problem is named in a warning, the rest is copied, and `e2fsck -fn` finds the new
/// filesystem clean. The damage is made with debugfs on a copy of the fixture image.
struct CorruptSourceTests {
    func workDirectory() throws -> TemporaryDirectory {
        let directory = try TemporaryDirectory(prefix: "rehost-corrupt-source")
        try directory.makeWorldWritable()
        return directory
    }

    /// A copy of the fixture image with `commands` applied by `debugfs -w`.
    func damagedFixture(in dir: TemporaryDirectory, _ commands: [String], files: [String: [UInt8]] = [:]) throws -> String {
        let fixture = try Fixture.xenInstance()
        let image = dir.file("damaged.img")
        try Command.run("cp", ["--sparse=always", fixture.imagePath, image]).requireSuccess()
        for (name, bytes) in files {
            #expect(FileManager.default.createFile(atPath: dir.file(name), contents: Data(bytes)))
        }
        let script = dir.file("debugfs.cmds")
        try commands.joined(separator: "\n").write(toFile: script, atomically: true, encoding: .utf8)
        // debugfs reads `write` sources relative to its working directory.
        try Command.run("/bin/sh", ["-c", "cd '\(dir.path)' && debugfs -w -f debugfs.cmds damaged.img && chmod 644 damaged.img"]).requireSuccess()
        return image
    }

    @Test func loopsHardLinkedDirectoriesAndBadBlocksAreWarnedAndSkipped() throws {
        let dir = try workDirectory()
        var random = SplitMix(seed: 8)
        let small = (0..<20_000).map { _ in UInt8(truncatingIfNeeded: random.next()) }
        let medium = (0..<70_000).map { _ in UInt8(truncatingIfNeeded: random.next()) }
        let image = try damagedFixture(in: dir, [
            "mkdir /srv/a", "mkdir /srv/a/b",
            "link /srv/a /srv/a/b/loop",          // a loop back to an ancestor
            "link /opt/app /srv/second",          // a hard-linked directory
            "write small /srv/huge",
            "sif /srv/huge size 0x80000000000",   // 8 TiB in 5 blocks: more than any ext3 file
            "write small /srv/outside",
            "sif /srv/outside block[1] 9999999",  // a data block outside the filesystem
            "sif /srv/outside links_count 5",     // a link count no entry backs
            "write medium /srv/indirect",
            "sif /srv/indirect block[IND] 9999999",
            "link <8> /srv/journal",              // the journal's reserved inode
            "link <40000> /srv/ghost",            // an unused inode, mode 0
        ], files: ["small": small, "medium": medium])
        let disk = dir.file("out.raw")
        let result = try Command.runRehost(["convert", image, "-o", disk, "--json"], asUser: "nobody", timeout: .seconds(300))
        #expect(result.status == 0, "\(result.stderr)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(result.stdoutBytes)) as? [String: Any])
        let warnings = (report["warnings"] as? [String] ?? []).joined(separator: "\n")
        for phrase in ["/srv/a/b/loop: a loop back to the ancestor directory /srv/a",
                       "/srv/second: a second link to the directory /opt/app",
                       "/srv/huge: its size, 8796093022208 bytes, is more than a file can have here",
                       "/srv/outside: 1 block mapped outside the filesystem",
                       "/srv/indirect: illegal indirect block",
                       "/srv/journal: the entry names inode 8, a reserved inode; skipped",
                       "/srv/ghost: inode 40000 is of unknown type",
                       "1 file had a link count other than the number of their entries"] {
            #expect(warnings.contains(phrase), "no warning \(phrase) in:\n\(warnings)")
        }
        let root = try DiskPartitions.firstLinuxOffset(disk)
        let fsck = try Command.run("e2fsck", ["-fn", "\(disk)?offset=\(root)"])
        #expect(fsck.status == 0, "\(fsck.stdout)\(fsck.stderr)")
        let output = try ExtTreeManifest.read(image: disk, offset: root)
        #expect(output["/srv/a/b"] != nil && output["/srv/a/b/loop"] == nil && output["/srv/second"] == nil)
        #expect(output["/srv/journal"] == nil && output["/srv/ghost"] == nil)
        #expect(output["/srv/huge"]?.size == 20480)
        // The block outside reads as zeros; the one inside is kept.
        let outside = try Command.run("debugfs", ["-R", "cat /srv/outside", "\(disk)?offset=\(root)"]).requireSuccess().stdoutBytes
        #expect(outside.count == 20_000)
        #expect(Array(outside.prefix(4096)) == Array(small.prefix(4096)))
        #expect(outside[4096..<8192].allSatisfy { $0 == 0 })
        #expect(Array(outside[8192...]) == Array(small[8192...]))
        let indirect = try Command.run("debugfs", ["-R", "cat /srv/indirect", "\(disk)?offset=\(root)"]).requireSuccess().stdoutBytes
        #expect(indirect.count == 70_000 && Array(indirect.prefix(49_152)) == Array(medium.prefix(49_152)))
        #expect(indirect[49_152...].allSatisfy { $0 == 0 })
    }

    @Test func aRootThatIsNotADirectoryIsRefused() throws {
        let dir = try workDirectory()
        let image = try damagedFixture(in: dir, ["sif <2> mode 0100644"])
        for command in [["convert", image, "-o", dir.file("out.raw")], ["inspect", image]] {
            let result = try Command.runRehost(command, asUser: "nobody")
            #expect(result.status == 1)
            #expect(result.stderr == "rehost: error: \(image): corrupt filesystem: the root inode (2) is a regular file, not a directory\n")
        }
        #expect(!FileManager.default.fileExists(atPath: dir.file("out.raw")))
    }

    /// An ext4 source (extents, 1 KiB blocks) whose extent trees are damaged by hand: an extent
    /// pointing outside the filesystem, an extent header with a bad magic, and an extended
    /// attribute block outside the filesystem; names with a '/' or a NUL byte, a name twice in
    /// one directory; and directories nested deeper than the copy recurses. No guest kernel: the boot repairs are skipped.
    @Test func damagedExtentsAndAttributeBlocksReadAsZerosOrAreLeftOut() throws {
        let dir = try workDirectory()
        let tree = dir.file("tree")
        try FileManager.default.createDirectory(atPath: tree + "/etc", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: tree + "/d", withIntermediateDirectories: true)
        try "/dev/sda1 / ext4 defaults 1 1\n".write(toFile: tree + "/etc/fstab", atomically: true, encoding: .utf8)
        var random = SplitMix(seed: 4)
        for (name, count) in [("outside", 300_000), ("header", 5000), ("kept", 7000),
                              ("slashXname", 10), ("nulXname", 10), ("dupA", 10), ("dupB", 10)] {
            let bytes = (0..<count).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            #expect(FileManager.default.createFile(atPath: tree + "/d/" + name, contents: Data(bytes)))
        }
        let image = dir.file("ext4.img")
        try Command.run("mke2fs", ["-q", "-F", "-t", "ext4", "-O", "^metadata_csum", "-b", "1024", "-I", "256", "-d", tree, image, "64M"]).requireSuccess()
        // An attribute block outside the filesystem, and directories nested 1100 deep.
        let script = ["sif /d/kept file_acl 9999999", "mkdir /deep", "cd /deep"] + Array(repeating: ["mkdir n", "cd n"], count: 1100).flatMap { $0 }
        try script.joined(separator: "\n").write(toFile: dir.file("debugfs.cmds"), atomically: true, encoding: .utf8)
        try Command.run("debugfs", ["-w", "-f", dir.file("debugfs.cmds"), image]).requireSuccess()
        /// The byte offset of an inode's i_block in the image, from debugfs's `imap`.
        func iBlockOffset(_ path: String) throws -> UInt64 {
            let text = try Command.run("debugfs", ["-R", "imap \(path)", image]).requireSuccess().stdout
            let words = text.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" || $0 == "," })
            let block = try #require(words.lastIndex(of: "block").flatMap { UInt64(words[$0 + 1]) })
            let offset = try #require(words.firstIndex(of: "offset").flatMap { UInt64(words[$0 + 1].dropFirst(2), radix: 16) })
            return block * 1024 + offset + 40
        }
        // Names no directory may hold, made in the directory block itself: a '/', a NUL byte,
        // and a second "dupA".
        var bytes = try Data(contentsOf: URL(fileURLWithPath: image))
        for (from, to) in [("slashXname", "slash/name"), ("nulXname", "nul\0name"), ("dupB", "dupA")] {
            let range = try #require(bytes.range(of: Data(from.utf8)), "\(from) not found in the image")
            bytes.replaceSubrange(range, with: Data(to.utf8))
        }
        try bytes.write(to: URL(fileURLWithPath: image))
        let handle = try #require(FileHandle(forUpdatingAtPath: image))
        // The first extent's physical start (ee_start_lo, 8 bytes into the first entry after the
        // 12-byte header) far beyond the 65536 blocks; the other file's header magic broken.
        try handle.seek(toOffset: try iBlockOffset("/d/outside") + 12 + 8)
        handle.write(Data([0x7F, 0x96, 0x98, 0x00]))
        try handle.seek(toOffset: try iBlockOffset("/d/header"))
        handle.write(Data([0x34, 0x12]))
        try handle.close()
        try Command.run("chmod", ["644", image]).requireSuccess()

        let disk = dir.file("out.raw")
        let result = try Command.runRehost(["convert", image, "-o", disk, "--skip", "bootloader", "--skip", "initrd", "--json"], asUser: "nobody")
        #expect(result.status == 0, "\(result.stderr)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(result.stdoutBytes)) as? [String: Any])
        let warnings = (report["warnings"] as? [String] ?? []).joined(separator: "\n")
        for phrase in ["/d/outside: 293 blocks mapped outside the filesystem",
                       "/d/header: its extent tree cannot be read",
                       "/d/kept: its extended attributes cannot be read",
                       "/d/slash/name: the name holds a '/' or a NUL byte, which no file name may; skipped",
                       "/d/nul\\x00name: the name holds a '/' or a NUL byte",
                       "/d/dupA: a second entry of this name in the directory; skipped",
                       "/deep" + String(repeating: "/n", count: 1023) + ": directories are nested more than 1024 deep here; skipped"] {
            #expect(warnings.contains(phrase), "no warning \(phrase) in:\n\(warnings)")
        }
        let root = try DiskPartitions.firstLinuxOffset(disk)
        let fsck = try Command.run("e2fsck", ["-fn", "\(disk)?offset=\(root)"])
        #expect(fsck.status == 0, "\(fsck.stdout)\(fsck.stderr)")
        let output = try ExtTreeManifest.read(image: disk, offset: root)
        #expect(output["/d/outside"]?.size == 300_000 && output["/d/header"]?.size == 5000)
        let source = try ExtTreeManifest.read(image: image)
        #expect(output["/d/kept"]?.contentSHA256 != nil && output["/d/kept"]?.contentSHA256 == source["/d/kept"]?.contentSHA256)
    }
}
