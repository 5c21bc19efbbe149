import Foundation
import Testing
import TestSupport

/// `--reproducible` and SOURCE_DATE_EPOCH: the same input and options give the same bytes in every
/// format, in runs whose threads are timed differently (one on all cores, one pinned to a single
/// core with taskset); without them, image UUIDs and CIDs differ from run to run.
struct ReproducibleOutputTests {
    static let formats = ["raw", "qcow2", "vmdk", "vdi", "vhd", "vhdx", "ova", "raw.gz", "raw.xz", "raw.zst"]

    func sha256(_ path: String) throws -> String {
        String(try Command.run("sha256sum", [path]).requireSuccess().stdout.prefix(64))
    }

    /// convert, then export of its disk to every format, in `directory`; `pinned` runs both on
    /// one core.
    func build(in directory: String, input: String, pinned: Bool, flags: [String], environment: [String: String] = [:]) throws -> [String: String] {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        func rehost(_ arguments: [String]) throws {
            let command = pinned ? ["taskset", "-c", "0", try Command.rehostExecutable()] + arguments : [try Command.rehostExecutable()] + arguments
            try Command.run(command[0], Array(command.dropFirst()), environment: environment, timeout: .seconds(600)).requireSuccess()
        }
        try rehost(["convert", input, "-o", "\(directory)/disk.raw", "--new-uuid", "--swap-partition", "64M", "-q"] + flags)
        try rehost(["export", "\(directory)/disk.raw", "--compress", "deflate", "-q"] + flags
                   + Self.formats.dropFirst().flatMap { ["-o", "\(directory)/disk.\($0)"] })
        return try Dictionary(uniqueKeysWithValues: Self.formats.map { ($0, try sha256("\(directory)/disk.\($0)")) })
    }

    @Test func theSameInputGivesTheSameBytesInEveryFormatWhateverTheThreads() throws {
        let fixture = try Fixture.xenInstance()
        let work = try TemporaryDirectory(prefix: "rehost-reproducible")
        let first = try build(in: work.file("a"), input: fixture.imagePath, pinned: false, flags: ["--reproducible"])
        let second = try build(in: work.file("b"), input: fixture.imagePath, pinned: true, flags: ["--reproducible"])
        for format in Self.formats {
            #expect(first[format] == second[format], "\(format) differs between the runs")
        }
        for format in ["qcow2", "vmdk", "vdi", "vhdx"] {
            try Command.run("qemu-img", ["check", work.file("a/disk.\(format)")]).requireSuccess()
        }
        try Command.run("qemu-img", ["compare", work.file("a/disk.raw"), work.file("a/disk.vhd")]).requireSuccess()
        // The new filesystem UUID is derived, not the source's.
        let source = try Command.run("blkid", ["-p", "-s", "UUID", "-o", "value", fixture.imagePath]).requireSuccess().stdout
        let root = try DiskPartitions.firstLinuxOffset(work.file("a/disk.raw"))
        let copy = try Command.run("blkid", ["-p", "-s", "UUID", "-o", "value", "-O", String(root), work.file("a/disk.raw")]).requireSuccess().stdout
        #expect(!copy.isEmpty && copy != source, "--new-uuid: a derived UUID, \(copy), not the source's \(source)")

        // SOURCE_DATE_EPOCH alone turns it on, and its time is what the images say.
        let epoch = ["SOURCE_DATE_EPOCH": "1700000000"]
        let dated = try build(in: work.file("c"), input: fixture.imagePath, pinned: false, flags: [], environment: epoch)
        let datedAgain = try build(in: work.file("d"), input: fixture.imagePath, pinned: true, flags: [], environment: epoch)
        #expect(dated == datedAgain)
        #expect(dated["raw"] != first["raw"], "another epoch, other times in the filesystem")
        let superblock = try Command.run("dumpe2fs", ["-h", "\(work.file("c/disk.raw"))?offset=\(root)"]).requireSuccess().stdout
        #expect(superblock.contains("Filesystem created:       Tue Nov 14 22:13:20 2023"), "\(superblock)")
        // VHD: seconds since 2000-01-01 in the footer (the file's last 512 bytes), big-endian at byte 24.
        let vhd = try #require(FileManager.default.contents(atPath: work.file("c/disk.vhd")))
        let stamp = vhd[vhd.count - 512 + 24..<vhd.count - 512 + 28].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        #expect(stamp == 1_700_000_000 - 946_684_800)

        // Without either, two runs differ (so the comparison above can fail).
        let plain = try build(in: work.file("e"), input: fixture.imagePath, pinned: false, flags: [])
        let plainAgain = try build(in: work.file("f"), input: fixture.imagePath, pinned: false, flags: [])
        for format in ["vmdk", "vdi", "vhd", "vhdx"] {
            #expect(plain[format] != plainAgain[format], "\(format): random UUIDs and CIDs without --reproducible")
        }
    }
}
