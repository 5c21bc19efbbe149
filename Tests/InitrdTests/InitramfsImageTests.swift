import Compression
import Foundation
import Initrd
import Testing
import TestSupport

/// How initrd builders compress the main archive.
struct MemberTool: Sendable, CustomTestStringConvertible {
    let format: StreamCompression?
    let command: [String]
    var testDescription: String { command.isEmpty ? "uncompressed" : command.joined(separator: " ") }

    static let all: [MemberTool] = [
        MemberTool(format: nil, command: []),
        MemberTool(format: .gzip, command: ["gzip", "-9n", "-c"]),
        MemberTool(format: .xz, command: ["xz", "--check=crc32", "--lzma2=dict=1MiB", "-c"]),
        MemberTool(format: .lzma, command: ["lzma", "-c"]),
        MemberTool(format: .bzip2, command: ["bzip2", "-c"]),
        MemberTool(format: .lz4, command: ["lz4", "-l", "-c"]),
        MemberTool(format: .zstd, command: ["zstd", "-q", "-c"]),
    ]

    func pack(_ data: [UInt8]) throws -> [UInt8] {
        command.isEmpty ? data : try InitrdFixtures.compress(data, command)
    }
}

@Suite struct InitramfsImageTests {
    @Test(arguments: MemberTool.all)
    func readsOneMemberMadeByTheTools(_ tool: MemberTool) throws {
        let packed = try tool.pack(InitrdFixtures.gnuArchive())
        let image = try InitrdFixtures.image(packed)
        #expect(image.size == packed.count)
        try #require(image.members.count == 1)
        let member = image.members[0]
        #expect(member.offset == 0 && member.compression == tool.format)
        if tool.format == nil {
            #expect(member.length < packed.count && packed[member.length...].allSatisfy { $0 == 0 })
        } else {
            #expect(member.length == packed.count)
        }
        InitrdFixtures.expectFixtureTree(member.entries)
        let tree = image.unpackedTree()
        #expect(tree["usr/lib/modules/6.1.0/kernel/x.ko"]?.data == InitrdFixtures.module)
        #expect(tree["lib"]?.linkTarget == "usr/lib")
        #expect(tree["dev/initctl"]?.kind == .fifo)
    }

    /// dracut's early microcode layout: an uncompressed archive first (GNU cpio pads it to 512),
    /// then the gzip'd main archive.
    @Test func earlyMicrocodeThenGzip() throws {
        let dir = try TemporaryDirectory()
        try FileManager.default.createDirectory(atPath: dir.file("early/kernel/x86/microcode"), withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: dir.file("early/kernel/x86/microcode/GenuineIntel.bin"), contents: Data(repeating: 0x5a, count: 700))
        _ = FileManager.default.createFile(atPath: dir.file("early/early_cpio"), contents: Data("1\n".utf8))
        let early = try Command.run("sh", ["-c", "find . | LC_ALL=C sort | cpio -o -H newc --quiet"],
                                    currentDirectory: dir.file("early")).requireSuccess().stdoutBytes
        #expect(early.count % 512 == 0)
        let main = try StreamCompression.gzip(InitrdFixtures.gnuArchive())
        let image = try InitrdFixtures.image(early + main)
        try #require(image.members.count == 2)
        #expect(image.members[0].compression == nil && image.members[0].offset == 0)
        #expect(image.members[0].entries.contains { $0.path == "kernel/x86/microcode/GenuineIntel.bin" && $0.data.count == 700 })
        #expect(image.members[1].compression == .gzip && image.members[1].offset == early.count)
        #expect(image.members[1].length == main.count)
        InitrdFixtures.expectFixtureTree(image.members[1].entries)
    }

    /// One compressed member may hold several archives, zero-padded between them (GNU cpio
    /// pads each to 512 bytes), as `cat a.cpio b.cpio | gzip` makes.
    @Test func severalArchivesInOneCompressedMember() throws {
        let first = try InitrdFixtures.gnuArchive()
        let second = CpioNewc.write([.file("etc/added", [1, 2, 3])])
        let image = try InitrdFixtures.image(InitrdFixtures.compress(first + second, ["zstd", "-q", "-c"]))
        try #require(image.members.count == 1)
        let member = image.members[0]
        #expect(member.archives.count == 2)
        #expect(member.archives.last.map { member.entries[$0].map(\.path) } == ["etc/added"])
        #expect(image.unpackedTree()["etc/added"]?.data == [1, 2, 3])
    }

    /// raw + gzip + zstd, each appended after `paddingBeforeAppending`; the sizes are made odd
    /// so the padding matters.
    @Test func threeMembersAppendedAfterPadding() throws {
        var bytes = CpioNewc.write([.file("early_cpio", Array("1\n".utf8))])
        let second = StreamCompression.gzip(CpioNewc.write([.directory("etc"), .file("etc/a", Array("first\n".utf8))]))
        bytes += [UInt8](repeating: 0, count: try InitramfsImage.paddingBeforeAppending(to: InitrdFixtures.image(bytes)))
        let secondOffset = bytes.count
        bytes += second
        let padding = try InitramfsImage.paddingBeforeAppending(to: InitrdFixtures.image(bytes))
        #expect((bytes.count + padding) % 4 == 0 && padding < 4)
        bytes += [UInt8](repeating: 0, count: padding)
        let thirdOffset = bytes.count
        bytes += try InitrdFixtures.compress(CpioNewc.write([.file("etc/b", Array("third\n".utf8))]), ["zstd", "-q", "-c"])
        let image = try InitrdFixtures.image(bytes)
        #expect(image.members.map(\.compression) == [nil, .gzip, .zstd])
        #expect(image.members.map(\.offset) == [0, secondOffset, thirdOffset])
        let tree = image.unpackedTree()
        #expect(tree["early_cpio"]?.data == Array("1\n".utf8))
        #expect(tree["etc/a"]?.data == Array("first\n".utf8))
        #expect(tree["etc/b"]?.data == Array("third\n".utf8))
    }

    /// The repair's situation: our gzip member appended to a gzip'd initrd. The walker sees it;
    /// `gzip -dc | cpio -t` stops at the first TRAILER!!! and does not.
    @Test func appendedMemberIsListedByTheWalkerAndNotByCpio() throws {
        let main = try StreamCompression.gzip(InitrdFixtures.gnuArchive())
        let added = StreamCompression.gzip(CpioNewc.write([
            .directory("usr/lib/modules/6.1.0/kernel/drivers"),
            .file("usr/lib/modules/6.1.0/kernel/drivers/virtio_blk.ko", Array(repeating: 0x42, count: 3000)),
        ]))
        var image = main
        image += [UInt8](repeating: 0, count: try InitramfsImage.paddingBeforeAppending(to: InitrdFixtures.image(main)))
        image += added
        let walked = try InitrdFixtures.image(image)
        #expect(walked.members.count == 2)
        let paths = Set(walked.members.flatMap { $0.entries.map(\.path) })
        #expect(paths.contains("usr/lib/modules/6.1.0/kernel/drivers/virtio_blk.ko"))
        #expect(paths.contains("usr/lib/modules/6.1.0/kernel/x.ko"))

        let dir = try TemporaryDirectory()
        _ = FileManager.default.createFile(atPath: dir.file("initrd.img"), contents: Data(image))
        let listed = try Command.run("sh", ["-c", "gzip -dc initrd.img | cpio -t --quiet"],
                                     currentDirectory: dir.path).requireSuccess().stdout
        #expect(listed.contains("usr/lib/modules/6.1.0/kernel/x.ko"))
        #expect(!listed.contains("virtio_blk.ko"))
    }

    @Test func unpackedTreeFollowsTheKernelsReplacementRules() throws {
        let first = CpioNewc.write([
            .directory("."), .directory("usr"), .directory("usr/lib"), .directory("etc"),
            .symlink("lib", target: "usr/lib"),
            .file("etc/keymap", Array(repeating: 0x61, count: 167)),
            .directory("conf"), .file("conf/modules", Array("ext4\n".utf8)),
            .file("init", Array("old".utf8), mode: 0o755),
            .directory("sbin"), .file("sbin/tool", [1]),
        ])
        let second = CpioNewc.write([
            // Through the symlink: lands in usr/lib/firmware.
            .directory("lib/firmware"),
            .file("lib/firmware/fw.bin", [9, 9]),
            // A shorter file replaces the longer one completely.
            .file("etc/keymap", Array(repeating: 0x62, count: 59)),
            // A directory over an existing directory keeps it and takes the new mode.
            .directory("etc", mode: 0o700),
            // A file over a non-empty directory: rmdir fails, so the file is skipped.
            .file("sbin", [7]),
            // Parents are not created: skipped.
            .file("missing/dir/file", [1]),
            // A symlink over a regular file replaces it.
            .symlink("init", target: "/bin/busybox"),
            // A directory entry over a symlink deletes the symlink (usr-merge breakage).
            .directory("lib"),
            .directory("lib/modules"),
        ])
        let bytes = StreamCompression.gzip(first) + [0, 0, 0, 0] + StreamCompression.gzip(second)
        let tree = try InitrdFixtures.image(bytes).unpackedTree()
        #expect(tree["usr/lib/firmware"]?.kind == .directory)
        #expect(tree["usr/lib/firmware/fw.bin"]?.data == [9, 9])
        #expect(tree["lib/firmware"] == nil)
        #expect(tree["etc/keymap"]?.data == Array(repeating: 0x62, count: 59))
        #expect(tree["etc"]?.kind == .directory && tree["etc"]?.mode == 0o040700)
        #expect(tree["sbin"]?.kind == .directory && tree["sbin/tool"]?.data == [1])
        #expect(tree["missing/dir/file"] == nil && tree["missing"] == nil)
        #expect(tree["init"]?.linkTarget == "/bin/busybox")
        #expect(tree["lib"]?.kind == .directory)
        #expect(tree["lib/modules"]?.kind == .directory)
        #expect(tree["usr/lib/modules"] == nil)
        #expect(tree[""]?.kind == .directory)
        #expect(tree["conf/modules"]?.name == "conf/modules")
    }

    @Test func hardLinksShareDataWithinAnArchive() throws {
        // GNU cpio's layout for a hard-link group: every name has nlink 2 and the same inode,
        // and the data travels with the last name. Our writer never makes links (it writes
        // nlink 1), so the two file headers are patched here.
        var archive = CpioNewc.write([.directory("bin"), .file("bin/a", []), .file("bin/b", Array("busybox".utf8))])
        for name in ["bin/a", "bin/b"] {
            let header = try #require(archive.firstRange(of: Array((name + "\u{0}").utf8))).lowerBound - 110
            archive.replaceSubrange((header + 6)..<(header + 14), with: Array("0000004D".utf8))   // ino
            archive.replaceSubrange((header + 38)..<(header + 46), with: Array("00000002".utf8))  // nlink
        }
        let tree = try InitrdFixtures.image(archive).unpackedTree()
        #expect(tree["bin/a"]?.data == Array("busybox".utf8))
        #expect(tree["bin/b"]?.data == Array("busybox".utf8))
        // Without the link (distinct inodes) the first name stays empty.
        let unlinked = try InitrdFixtures.image(CpioNewc.write([.directory("bin"), .file("bin/a", []),
                                                                .file("bin/b", Array("busybox".utf8))])).unpackedTree()
        #expect(unlinked["bin/a"]?.data == [])
    }

    @Test func paddingBeforeAppending() throws {
        let archive = CpioNewc.write([.file("a", [1])])
        let gz = StreamCompression.gzip(archive)
        #expect(try InitramfsImage.paddingBeforeAppending(to: InitrdFixtures.image(archive)) == 0)
        #expect(try InitramfsImage.paddingBeforeAppending(to: InitrdFixtures.image(gz)) == (4 - gz.count % 4) % 4)
        let lz4 = try InitrdFixtures.compress(archive, ["lz4", "-l", "-c"])
        let lz4Padding = try InitramfsImage.paddingBeforeAppending(to: InitrdFixtures.image(lz4))
        #expect(lz4Padding >= 4 && (lz4.count + lz4Padding) % 4 == 0)
        // Zeros already after the lz4 member count.
        let padded = lz4 + [UInt8](repeating: 0, count: 8 - lz4.count % 4)
        #expect(try InitramfsImage.paddingBeforeAppending(to: InitrdFixtures.image(padded)) == 0)

        // Why: without the zeros the kernel's unlz4 reads the gzip magic as a block size.
        let appended = lz4 + gz
        #expect(InitrdFixtures.imageError(appended) != nil)
        let fixed = lz4 + [UInt8](repeating: 0, count: lz4Padding) + gz
        #expect(try InitrdFixtures.image(fixed).members.map(\.compression) == [.lz4, .gzip])
    }

    @Test func notAnInitramfsNamesTheOffset() throws {
        let archive = CpioNewc.write([.file("a", [1, 2, 3])])
        // A newc archive at an unaligned offset is not recognised.
        #expect(InitrdFixtures.imageError([0] + archive) == .notInitramfs(name: "initrd.img", offset: 1,
            detail: "an uncompressed cpio archive at an offset that is not a multiple of 4"))
        // Bad magic at an aligned offset: the cpio reader names it.
        var bad = archive
        bad[3] = UInt8(ascii: "9")
        #expect(InitrdFixtures.imageError([0, 0, 0, 0] + bad)
                == .cpio(.badMagic(name: "initrd.img", offset: 4, found: "30 37 30 39 30 31")))
        #expect(InitrdFixtures.imageError(archive + Array("JUNK".utf8))
                == .notInitramfs(name: "initrd.img", offset: UInt64(archive.count), detail: "invalid magic 4a (neither a newc archive nor a known compression)"))
        // After an uncompressed archive the next member must be aligned.
        let gz = StreamCompression.gzip(archive)
        #expect(InitrdFixtures.imageError(archive + [0] + gz) == .notInitramfs(name: "initrd.img", offset: UInt64(archive.count + 1),
            detail: "broken padding: after an uncompressed cpio archive the next member must start at a 4-aligned offset, found 1f"))
        // A compressed member whose content ends inside an entry.
        let cut = StreamCompression.gzip(Array(archive.prefix(100)))
        guard case .junkInCompressedMember(_, 0, .gzip, _) = InitrdFixtures.imageError(cut) else {
            Issue.record("expected junk in the compressed member, got \(String(describing: InitrdFixtures.imageError(cut)))")
            return
        }
        // Junk between archives inside a compressed member.
        let junk = StreamCompression.gzip(archive + Array("XX".utf8))
        guard case .junkInCompressedMember = InitrdFixtures.imageError(junk) else {
            Issue.record("expected junk in the compressed member")
            return
        }
        // A truncated compressed member.
        #expect(InitrdFixtures.imageError(Array(gz.prefix(gz.count - 3)))
                == .compression(.truncated(name: "initrd.img", offset: UInt64(gz.count - 3), format: .gzip)))
        // An lzo member: refused with advice.
        guard case .compression(.unsupported(_, .lzo, _)) = InitrdFixtures.imageError([0x89, 0x4c, 0x5a, 0x4f, 0, 0]) else {
            Issue.record("expected unsupported lzo")
            return
        }
        #expect(InitrdError.notInitramfs(name: "i", offset: 5, detail: "x").description == "i: not an initramfs: x at byte 5")
    }

    @Test func limitsBoundDecompressionAndEntries() throws {
        let archive = CpioNewc.write([.file("zeros", [UInt8](repeating: 0, count: 1 << 20)), .file("b", [])])
        let gz = StreamCompression.gzip(archive)
        let small = InitramfsLimits(maxDecompressedBytes: 1 << 19)
        #expect(InitrdFixtures.imageError(gz, limits: small)
                == .compression(.outputTooLarge(name: "initrd.img", format: .gzip, limit: 1 << 19)))
        #expect(InitrdFixtures.imageError(gz, limits: InitramfsLimits(maxEntries: 1)) == .tooManyEntries(name: "initrd.img", limit: 1))
        let longName = CpioNewc.write([.file(String(repeating: "n", count: 5000), [])])
        guard case .cpio(.nameTooLong(_, 0, 5001, 4096)) = InitrdFixtures.imageError(longName) else {
            Issue.record("expected a name too long")
            return
        }
    }

    @Test func fuzzedImagesOnlyThrowTypedErrors() throws {
        let raw = CpioNewc.write([.file("early_cpio", [0x31])])
        let gz = StreamCompression.gzip(CpioNewc.write([.directory("d"), .file("d/f", Array(repeating: 7, count: 200)),
                                                        .symlink("l", target: "d")]))
        let lz4 = try InitrdFixtures.compress(CpioNewc.write([.file("x", [1, 2])]), ["lz4", "-l", "-c"])
        let image = raw + gz + [0, 0, 0, 0] + lz4
        #expect(try InitrdFixtures.image(image).members.count == 3)
        var random = SplitMix(seed: 0x1417)
        var accepted = 0
        for _ in 0..<400 {
            var mutated = image
            for _ in 0...random.below(3) {
                let at = random.below(mutated.count)
                mutated[at] = random.below(2) == 0 ? UInt8(random.below(256)) : Array("0123456789ABCDEF".utf8)[random.below(16)]
            }
            if random.below(4) == 0 { mutated.removeLast(random.below(mutated.count)) }
            let small = InitramfsLimits(maxDecompressedBytes: 1 << 20, maxEntries: 100, maxNameLength: 256)
            if let walked = try? InitrdFixtures.image(mutated, limits: small) {
                accepted += 1
                _ = walked.unpackedTree()
            }
        }
        #expect(accepted < 400)
    }
}
