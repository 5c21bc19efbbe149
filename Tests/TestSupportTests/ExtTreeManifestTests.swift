import Foundation
import Testing
import TestSupport

@Suite struct ExtTreeManifestTests {
    /// Builds the sample filesystem bare in a fresh directory and reads it.
    static func readSample() throws -> (manifest: ExtTreeManifest, sample: SampleFilesystem, directory: TemporaryDirectory) {
        let directory = try TemporaryDirectory()
        let sample = try SampleFilesystem.stage(in: directory)
        let image = directory.file("sample.img")
        try sample.build(image: image, scratch: directory)
        return (try ExtTreeManifest.read(image: image), sample, directory)
    }

    @Test func listsEveryPathIncludingRootAndLostFound() throws {
        let (manifest, _, _) = try Self.readSample()
        let expected = Set<String>([
            "/", "/lost+found", "/etc", "/etc/hosts", "/etc/motd", "/dir with space", "/dir with space/file name.txt",
            "/sub", "/sub/hard2", "/hard1", "/empty dir", "/empty", "/big", "/sparse", "/link", "/slowlink",
            "/fifo", "/sock", "/dev", "/dev/console", "/dev/sda", "/dev/big-minor",
        ]).union(SampleFilesystem.awkwardNames.map { "/" + $0 })
        #expect(Set(manifest.paths) == expected)
        #expect(manifest.blockSize == UInt32(SampleFilesystem.blockSize))
        #expect(manifest["/"]?.inode == 2)
    }

    @Test func kindsModesAndOwners() throws {
        let (manifest, _, _) = try Self.readSample()
        let kinds: [String: FileKind] = [
            "/": .directory, "/etc/hosts": .file, "/link": .symlink, "/slowlink": .symlink, "/fifo": .fifo,
            "/sock": .socket, "/dev/console": .characterDevice, "/dev/sda": .blockDevice,
        ]
        for (path, kind) in kinds { #expect(manifest[path]?.kind == kind, "\(path)") }
        let hosts = try #require(manifest["/etc/hosts"])
        #expect(hosts.permissions == 0o4644)
        #expect(hosts.uid == SampleFilesystem.highUID)
        #expect(hosts.gid == SampleFilesystem.highGID)
        #expect(hosts.size == UInt64(SampleFilesystem.hostsText.utf8.count))
        #expect(manifest["/dir with space"]?.permissions == 0o1777)
        #expect(manifest["/lost+found"]?.permissions == 0o700)
        #expect(manifest["/etc/motd"]?.uid == 0)
    }

    @Test func contentDigestsMatchTheStagedFiles() throws {
        let (manifest, sample, _) = try Self.readSample()
        for (path, digest) in sample.digests {
            #expect(manifest[path]?.contentSHA256 == digest, "\(path)")
        }
        #expect(manifest["/big"]?.size == 300 * 1024 + 17)
        for name in SampleFilesystem.awkwardNames {
            #expect(manifest["/" + name]?.size == UInt64(name.utf8.count), "\(name.debugDescription)")
        }
        #expect(manifest["/etc"]?.contentSHA256 == nil)
    }

    @Test func symlinksDevicesAndFlags() throws {
        let (manifest, _, _) = try Self.readSample()
        #expect(manifest["/link"]?.symlinkTargetText == "etc/hosts")
        #expect(manifest["/slowlink"]?.symlinkTargetText == SampleFilesystem.slowTarget)
        #expect(manifest["/dev/console"]?.device == DeviceNumber(major: 5, minor: 1))
        #expect(manifest["/dev/sda"]?.device == DeviceNumber(major: 8, minor: 0))
        #expect(manifest["/dev/big-minor"]?.device == DeviceNumber(major: 259, minor: 300))
        #expect(manifest["/big"]?.flags.rawValue == InodeFlags.immutable)
        #expect(manifest["/empty"]?.flags.rawValue == InodeFlags.appendOnly)
        #expect(manifest["/etc/motd"]?.flags.rawValue == 0)
    }

    @Test func extendedAttributesKeepTheirExactBytes() throws {
        let (manifest, _, _) = try Self.readSample()
        let hosts = try #require(manifest["/etc/hosts"])
        #expect(hosts.xattrs == [
            "user.comment": Array("two words".utf8),
            "security.selinux": SampleFilesystem.selinuxLabel,
        ])
        #expect(manifest["/etc/motd"]?.xattrs == [:])
    }

    @Test func timesAndLinkCounts() throws {
        let (manifest, _, _) = try Self.readSample()
        let hard = try #require(manifest["/hard1"])
        #expect(hard.atime == InodeTime(seconds: SampleFilesystem.hardLinkSeconds))
        #expect(hard.mtime == InodeTime(seconds: SampleFilesystem.hardLinkSeconds))
        #expect(hard.ctime == InodeTime(seconds: SampleFilesystem.hardLinkSeconds))
        #expect(manifest["/etc/hosts"]?.mtime.seconds == SampleFilesystem.hostsMtime)
        #expect(hard.linkCount == 2)
        #expect(manifest["/etc/motd"]?.linkCount == 1)
        // A directory has ".", its name in the parent, and one ".." per subdirectory.
        #expect(manifest["/etc"]?.linkCount == 2)
        #expect(manifest["/sub"]?.linkCount == 2)
    }

    @Test func hardLinkGroupsAreKeyedByInode() throws {
        let (manifest, _, _) = try Self.readSample()
        #expect(manifest.hardLinkGroup(of: "/hard1") == ["/hard1", "/sub/hard2"])
        #expect(manifest.hardLinkGroup(of: "/sub/hard2") == ["/hard1", "/sub/hard2"])
        #expect(manifest["/hard1"]?.inode == manifest["/sub/hard2"]?.inode)
        #expect(manifest.hardLinkGroup(of: "/etc/motd") == ["/etc/motd"])
    }

    @Test func holeMapListsOnlyMappedBlocks() throws {
        let (manifest, _, _) = try Self.readSample()
        let sparse = try #require(manifest["/sparse"])
        #expect(sparse.size == SampleFilesystem.sparseSize)
        #expect(sparse.mappedBlocks == [BlockRun(first: SampleFilesystem.sparseDataBlock, count: 2)])
        // 300 KiB + 17 bytes spans 76 blocks, all mapped; the indirect block is metadata, not data.
        #expect(manifest["/big"]?.mappedBlocks == [BlockRun(first: 0, count: 76)])
        #expect(manifest["/empty"]?.mappedBlocks == [])
        #expect(manifest["/link"]?.mappedBlocks == nil)
    }

    @Test func nanosecondsAreReadFromLargeInodes() throws {
        let directory = try TemporaryDirectory()
        let staging = directory.file("staging")
        try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: staging + "/file", contents: Data("x".utf8))
        let image = directory.file("large-inodes.img")
        try Command.run("mke2fs", ["-q", "-F", "-t", "ext4", "-I", "256", "-d", staging, image, "8M"]).requireSuccess()
        // The extra word: nanoseconds << 2 | epoch bits; epoch 1 puts the time 2^32 s later.
        let nanoseconds: UInt32 = 123_456_789
        try debugfsWrite(image: image, [
            "sif /file mtime @1000",
            "sif /file mtime_extra \(nanoseconds << 2 | 1)",
        ], scratch: directory)
        let manifest = try ExtTreeManifest.read(image: image)
        #expect(manifest["/file"]?.mtime == InodeTime(seconds: 1000 + (1 << 32), nanoseconds: nanoseconds))
        #expect(manifest["/file"]?.atime.nanoseconds != nil)
        // ext4's EXTENTS flag is layout, not a property of the file.
        #expect(manifest["/file"]?.flags.rawValue == 0)
        #expect(manifest["/file"]?.mappedBlocks?.count == 1)
    }

    @Test func filesystemAtAnOffsetReadsTheSameAsABareOne() throws {
        let directory = try TemporaryDirectory()
        let sample = try SampleFilesystem.stage(in: directory)
        let bare = directory.file("bare.img"), disk = directory.file("disk.img")
        let offset: UInt64 = 1 << 20
        try sample.build(image: bare, scratch: directory)
        try sample.build(image: disk, offset: offset, scratch: directory)
        let bareManifest = try ExtTreeManifest.read(image: bare)
        let diskManifest = try ExtTreeManifest.read(image: disk, offset: offset)
        #expect(ExtTreeManifest.differences(from: bareManifest, to: diskManifest) == [])
        #expect(bareManifest.entries.count == diskManifest.entries.count)
        #expect(diskManifest["/sparse"]?.mappedBlocks == bareManifest["/sparse"]?.mappedBlocks)
    }

    @Test func unreadableImageIsAClearError() throws {
        let directory = try TemporaryDirectory()
        let junk = directory.file("junk.img")
        try Data(repeating: 0, count: 1 << 20).write(to: URL(fileURLWithPath: junk))
        #expect(throws: TestSupportError.self) { try ExtTreeManifest.read(image: junk) }
    }
}
