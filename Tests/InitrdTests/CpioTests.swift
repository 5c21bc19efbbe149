import Compression
import Foundation
import Initrd
import Testing
import TestSupport

@Suite struct CpioTests {
    @Test func readsWhatGNUCpioWrote() throws {
        let archive = try InitrdFixtures.gnuArchive()
        let (entries, end) = try archive.withUnsafeBytes {
            try CpioNewc.read($0, from: 0, name: "a.cpio", baseOffset: 0, limits: .default)
        }
        InitrdFixtures.expectFixtureTree(entries)
        #expect(entries.first?.name == ".")
        // GNU cpio pads the output to 512 bytes: the trailer ends before that, zeros follow.
        #expect(archive.count % 512 == 0)
        #expect(end % 4 == 0 && end <= archive.count && archive.count - end < 512)
        #expect(archive[end...].allSatisfy { $0 == 0 })
        // 110 + "TRAILER!!!\0" = 121, padded to 124.
        #expect(Array(archive[(end - 14)..<(end - 4)]) == Array("TRAILER!!!".utf8))
    }

    @Test func verifiesTheCrcFormatsChecksum() throws {
        let archive = try InitrdFixtures.gnuArchive(format: "crc")
        #expect(Array(archive.prefix(6)) == Array("070702".utf8))
        let (entries, _) = try archive.withUnsafeBytes {
            try CpioNewc.read($0, from: 0, name: "a.cpio", baseOffset: 0, limits: .default)
        }
        InitrdFixtures.expectFixtureTree(entries)

        // Damage one byte of x.ko's data: the byte sum no longer matches.
        let nameAt = try #require(archive.firstRange(of: Array("usr/lib/modules/6.1.0/kernel/x.ko\u{0}".utf8))).lowerBound
        let header = nameAt - 110
        var damaged = archive
        damaged[nameAt + 40] ^= 0x01
        guard case let .checksumMismatch(name, offset, path, stored, computed) = InitrdFixtures.readError(damaged) else {
            Issue.record("expected a checksum mismatch")
            return
        }
        #expect(name == "a.cpio" && offset == UInt64(header) && path == "usr/lib/modules/6.1.0/kernel/x.ko")
        #expect(stored != computed)
    }

    @Test func writtenArchivesExtractWithGNUCpio() throws {
        let entries: [CpioEntry] = [
            .directory("usr"), .directory("usr/lib"), .directory("usr/lib/modules", mode: 0o700, mtime: 1_700_000_000),
            .file("usr/lib/modules/virtio_blk.ko", InitrdFixtures.module, mtime: 1_700_000_000),
            .file("usr/lib/modules/empty", []),
            .file("init", InitrdFixtures.initScript, mode: 0o755),
            .file("odd-name-lengths-abc", [1, 2, 3]),
            .symlink("lib", target: "usr/lib"),
        ]
        let archive = CpioNewc.write(entries)
        #expect(archive.count % 4 == 0)
        let dir = try TemporaryDirectory()
        try Command.run("cpio", ["-idm", "--no-absolute-filenames", "--quiet"], stdin: archive,
                        currentDirectory: dir.path).requireSuccess()
        let files = FileManager.default
        #expect(files.contents(atPath: dir.file("usr/lib/modules/virtio_blk.ko")) == Data(InitrdFixtures.module))
        #expect(files.contents(atPath: dir.file("usr/lib/modules/empty")) == Data())
        #expect(files.contents(atPath: dir.file("odd-name-lengths-abc")) == Data([1, 2, 3]))
        #expect(try files.destinationOfSymbolicLink(atPath: dir.file("lib")) == "usr/lib")
        let initAttributes = try files.attributesOfItem(atPath: dir.file("init"))
        #expect((initAttributes[.posixPermissions] as? Int) == 0o755)
        let moduleAttributes = try files.attributesOfItem(atPath: dir.file("usr/lib/modules/virtio_blk.ko"))
        #expect((moduleAttributes[.modificationDate] as? Date) == Date(timeIntervalSince1970: 1_700_000_000))

        let listing = try Command.run("cpio", ["-tv", "--quiet"], stdin: archive).requireSuccess().stdout
        let lines = listing.split(separator: "\n")
        #expect(lines.count == entries.count)
        #expect(lines.contains { $0.hasPrefix("lrwxrwxrwx") && $0.hasSuffix("lib -> usr/lib") })
        #expect(lines.contains { $0.hasPrefix("drwx------") && $0.hasSuffix("usr/lib/modules") })
        #expect(lines.contains { $0.hasPrefix("-rwxr-xr-x") && $0.hasSuffix(" init") })

        // And our reader gives back what we wrote (inodes assigned from 1, nlink 1 for files).
        let (read, end) = try archive.withUnsafeBytes {
            try CpioNewc.read($0, from: 0, name: "ours", baseOffset: 0, limits: .default)
        }
        #expect(end == archive.count)
        #expect(read.map(\.ino) == Array(1...UInt32(entries.count)))
        #expect(zip(read, entries).allSatisfy { $0.name == $1.name && $0.mode == $1.mode && $0.data == $1.data && $0.mtime == $1.mtime })
    }

    @Test func gnuCpioReadsBackAsGNUCpioWrote() throws {
        // Our writer and GNU cpio agree on the layout: re-packing the entries we read from a
        // GNU archive gives an archive that GNU cpio lists identically.
        let archive = try InitrdFixtures.gnuArchive()
        let (entries, _) = try archive.withUnsafeBytes {
            try CpioNewc.read($0, from: 0, name: "a.cpio", baseOffset: 0, limits: .default)
        }
        let ours = CpioNewc.write(entries)
        let theirs = try Command.run("cpio", ["-tv", "--quiet"], stdin: archive).requireSuccess().stdout
        let again = try Command.run("cpio", ["-tv", "--quiet"], stdin: ours).requireSuccess().stdout
        #expect(again == theirs)
    }

    @Test func truncatedArchivesNameTheEntry() throws {
        let archive = CpioNewc.write([.directory("etc"), .file("etc/motd", Array(repeating: 0x41, count: 300))])
        // Header 1 at 0 (110 + "etc\0" = 114, padded to 116); header 2 at 116, its data at
        // 116 + 120 (110 + "etc/motd\0" = 119, padded to 120), ending at 536.
        #expect(InitrdFixtures.readError(Array(archive.prefix(50)))
                == .truncated(name: "a.cpio", offset: 0, needed: "a 110-byte header"))
        #expect(InitrdFixtures.readError(Array(archive.prefix(112)))
                == .truncated(name: "a.cpio", offset: 0, needed: "its 4-byte name"))
        #expect(InitrdFixtures.readError(Array(archive.prefix(116 + 120 + 100)))
                == .truncated(name: "a.cpio", offset: 116, needed: "the 300 data bytes of etc/motd"))
        #expect(InitrdFixtures.readError(Array(archive.prefix(536)))
                == .missingTrailer(name: "a.cpio", offset: 536))
        // Without the trailer requirement, the end of input ends the archive.
        let cut = Array(archive.prefix(536))
        let (entries, end) = try cut.withUnsafeBytes {
            try CpioNewc.read($0, from: 0, name: "a.cpio", baseOffset: 0, limits: .default, requireTrailer: false)
        }
        #expect(entries.count == 2 && end == cut.count)
    }

    @Test func malformedHeadersAreTypedErrors() throws {
        let archive = CpioNewc.write([.file("a", [1, 2, 3])])
        func field(_ index: Int, _ text: String) -> [UInt8] {
            var copy = archive
            copy.replaceSubrange((6 + 8 * index)..<(14 + 8 * index), with: Array(text.utf8))
            return copy
        }
        #expect(InitrdFixtures.readError(field(6, "7FFFFFFF"))
                == .truncated(name: "a.cpio", offset: 0, needed: "the 2147483647 data bytes of a"))
        #expect(InitrdFixtures.readError(field(11, "FFFFFFFF"))
                == .nameTooLong(name: "a.cpio", offset: 0, length: 0xFFFF_FFFF, limit: 4096))
        #expect(InitrdFixtures.readError(field(11, "00000000")) == .badName(name: "a.cpio", offset: 0, detail: "name size 0"))
        #expect(InitrdFixtures.readError(field(11, "00000001")) == .badName(name: "a.cpio", offset: 0, detail: "name is not NUL-terminated"))
        #expect(InitrdFixtures.readError(field(1, "0000G1A4"))
                == .badField(name: "a.cpio", offset: 0, field: "mode", text: "0000G1A4"))
        var odc = archive
        odc[5] = UInt8(ascii: "7")
        #expect(InitrdFixtures.readError(odc) == .oldCharacterFormat(name: "a.cpio", offset: 0))
        var bad = archive
        bad[0] = UInt8(ascii: "1")
        #expect(InitrdFixtures.readError(bad) == .badMagic(name: "a.cpio", offset: 0, found: "31 37 30 37 30 31"))
        let odcArchive = try InitrdFixtures.gnuArchive(format: "odc")
        #expect(InitrdFixtures.readError(odcArchive) == .oldCharacterFormat(name: "a.cpio", offset: 0))
        let few = CpioLimits(maxEntries: 1)
        #expect(InitrdFixtures.readError(CpioNewc.write([.file("a", []), .file("b", [])]), limits: few)
                == .tooManyEntries(name: "a.cpio", offset: 112, limit: 1))
    }

    @Test func entryHelpers() {
        #expect(CpioEntry.file("./usr/x", []).path == "usr/x")
        #expect(CpioEntry.directory(".").path == "")
        #expect(CpioEntry.directory("/etc/").path == "etc")
        #expect(CpioEntry.symlink("lib", target: "usr/lib").linkTarget == "usr/lib")
        #expect(CpioEntry.file("x", [], mode: 0o4755).mode == 0o104755)
        var entry = CpioEntry.file("x", [])
        entry.kind = .fifo
        #expect(entry.mode == 0o010644 && entry.kind == .fifo)
        #expect(CpioEntry(name: "x", mode: 0o170644).kind == .other)
    }

    @Test func fuzzedArchivesOnlyThrowTypedErrors() throws {
        let archive = CpioNewc.write([.directory("d"), .file("d/f", Array(repeating: 7, count: 100)),
                                      .symlink("l", target: "d/f"), .file("g", [1])])
        var crc = archive
        crc[5] = UInt8(ascii: "2")
        var random = SplitMix(seed: 0xC1F0)
        var failures = 0
        for round in 0..<400 {
            var mutated = round % 2 == 0 ? archive : crc
            for _ in 0...random.below(3) {
                let at = random.below(mutated.count)
                // Mostly hex digits, so headers stay parseable and sizes take odd values.
                mutated[at] = random.below(3) == 0 ? UInt8(random.below(256)) : Array("0123456789ABCDEF".utf8)[random.below(16)]
            }
            if random.below(4) == 0 { mutated.removeLast(random.below(mutated.count)) }
            if InitrdFixtures.readError(mutated) != nil { failures += 1 }
        }
        #expect(failures > 0)
    }
}
