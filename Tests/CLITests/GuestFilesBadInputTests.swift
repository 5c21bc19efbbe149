import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Every refusal of `ls`, `cat`, `copy-out` and `copy-in`: one line on standard error naming the
/// problem, a non-zero exit, and the image byte for byte as it was.
struct GuestFilesBadInputTests {
    func expectRefusal(_ arguments: [String], unchanged image: String, mentions phrases: [String],
                       sourceLocation: SourceLocation = #_sourceLocation) throws {
        let before = try GuestFilesFixture.sha256(image)
        let result = try Command.runRehost(arguments)
        let lines = result.stderr.split(separator: "\n")
        #expect(result.status != 0, "expected a failure of \(arguments)", sourceLocation: sourceLocation)
        #expect(lines.count == 1, "expected one line, got:\n\(result.stderr)", sourceLocation: sourceLocation)
        #expect(result.stderr.hasPrefix("rehost: error: "), "\(result.stderr)", sourceLocation: sourceLocation)
        #expect(result.stdout.isEmpty, "output on a refusal: \(result.stdout)", sourceLocation: sourceLocation)
        for phrase in phrases {
            #expect(result.stderr.contains(phrase), "\(result.stderr) should mention \(phrase)", sourceLocation: sourceLocation)
        }
        #expect(try GuestFilesFixture.sha256(image) == before, "\(image) changed", sourceLocation: sourceLocation)
    }

    func hostFile(_ fixture: GuestFilesFixture, _ name: String, bytes: Int = 100) throws -> String {
        let path = fixture.directory.file(name)
        try Data((0..<bytes).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// Relative paths and .. above the root are refused, never clamped or taken from the host.
    @Test func pathsOutsideTheGuest() throws {
        let fixture = try GuestFilesFixture()
        let image = fixture.bareImage
        let file = try hostFile(fixture, "x.txt")
        let out = fixture.directory.file("out")
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: false)
        try expectRefusal(["cat", image, "../../etc/hostname"], unchanged: image, mentions: ["../../etc/hostname", "absolute"])
        try expectRefusal(["cat", image, "/../../etc/hostname"], unchanged: image, mentions: ["/../../etc/hostname", "above the guest's root"])
        try expectRefusal(["ls", image, "/etc/../../.."], unchanged: image, mentions: ["above the guest's root"])
        try expectRefusal(["copy-out", image, "/var/../../etc", out], unchanged: image, mentions: ["above the guest's root"])
        try expectRefusal(["copy-in", file, image, "/../tmp"], unchanged: image, mentions: ["above the guest's root"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: out).isEmpty)
    }

    @Test func missingAndWrongKinds() throws {
        let fixture = try GuestFilesFixture()
        let image = fixture.bareImage
        let file = try hostFile(fixture, "x.txt")
        try expectRefusal(["cat", image, "/etc/nothing"], unchanged: image, mentions: ["/etc/nothing", "no such file"])
        try expectRefusal(["cat", image, "/etc"], unchanged: image, mentions: ["/etc", "a directory, not a regular file"])
        try expectRefusal(["copy-in", fixture.directory.file("absent.txt"), image, "/root"], unchanged: image,
                          mentions: ["absent.txt", "no such file or directory on the host"])
        try expectRefusal(["copy-in", file, image, "/etc/hostname"], unchanged: image, mentions: ["/etc/hostname", "not a directory"])
        try expectRefusal(["copy-in", file, image, "/nowhere"], unchanged: image, mentions: ["/nowhere", "no such file"])
        try Command.run("mkfifo", [fixture.directory.file("fifo")]).requireSuccess()
        try expectRefusal(["copy-in", fixture.directory.file("fifo"), image, "/root"], unchanged: image, mentions: ["fifo", "a FIFO"])
    }

    /// Nothing is overwritten, in the guest or on the host.
    @Test func existingNamesAreLeftAlone() throws {
        let fixture = try GuestFilesFixture()
        let image = fixture.bareImage
        let hostname = fixture.directory.file("hostname")
        try Data("host side\n".utf8).write(to: URL(fileURLWithPath: hostname))
        try expectRefusal(["copy-in", hostname, image, "/etc"], unchanged: image, mentions: ["/etc/hostname", "already exists in the guest"])
        try expectRefusal(["copy-out", image, "/etc/hostname", fixture.directory.path], unchanged: image,
                          mentions: [hostname, "already exists on the host"])
        #expect(try String(contentsOfFile: hostname, encoding: .utf8) == "host side\n")
    }

    /// gzip and OVA input and VMDKs other than monolithicSparse are read-only for copy-in, with the
    /// way round named; refused before a scratch copy is made.
    @Test func readOnlyFormatsRefuseCopyIn() throws {
        let fixture = try GuestFilesFixture()
        let file = try hostFile(fixture, "x.txt")
        let gzip = fixture.directory.file("bare.img.gz")
        try Command.run("sh", ["-c", "gzip -c \"$1\" > \"$2\"", "sh", fixture.bareImage, gzip]).requireSuccess()
        try expectRefusal(["copy-in", file, gzip, "/root"], unchanged: gzip, mentions: [gzip, "gzip-compressed input is read-only", "gzip -dk"])
        let ova = fixture.directory.file("disk.ova")
        _ = try Command.runRehost(["export", fixture.disk, "-o", ova, "-q"]).requireSuccess()
        try expectRefusal(["copy-in", file, ova, "/root"], unchanged: ova, mentions: [ova, "OVA", "read-only for copy-in", "rehost export"])
        let images = [
                      (try fixture.converted(to: "vmdk", options: ["-o", "subformat=streamOptimized"], name: "stream.vmdk"),
                       "createType streamOptimized"),
                      (try fixture.converted(to: "vmdk", options: ["-o", "subformat=monolithicFlat"], name: "flat.vmdk"),
                       "createType monolithicFlat"),
                      (try fixture.converted(to: "vmdk", options: ["-o", "subformat=twoGbMaxExtentSparse"], name: "split.vmdk"),
                       "createType twoGbMaxExtentSparse")]
        for (image, problem) in images {
            try expectRefusal(["copy-in", file, image, "/root"], unchanged: image, mentions: [image, problem, "rehost export"])
            // Still readable.
            #expect(try Command.runRehost(["cat", image, "/etc/hostname"]).requireSuccess().stdout == "guest-name\n")
        }
    }

    /// A copy that cannot fit is refused before anything is written; the filesystem stays clean.
    @Test func fullFilesystem() throws {
        let fixture = try GuestFilesFixture()
        let small = fixture.directory.file("small.img")
        try Command.run("mke2fs", ["-q", "-F", "-t", "ext3", "-L", "small", small, "2M"]).requireSuccess()
        let big = try hostFile(fixture, "big.bin", bytes: 3 << 20)
        try expectRefusal(["copy-in", big, small, "/"], unchanged: small, mentions: [small, "big.bin", "not enough space"])
        // Many small files: the inodes run out first.
        let many = fixture.directory.file("many")
        try Command.run("sh", ["-c", "mkdir \"$1\" && cd \"$1\" && for i in $(seq 1 600); do : > f$i; done", "sh", many]).requireSuccess()
        try expectRefusal(["copy-in", many, small, "/"], unchanged: small, mentions: [small, "not enough inodes"])
        #expect(try Command.run("e2fsck", ["-fn", small]).status == 0)
    }

    /// An LV in two segments is not one run of the disk file: refused for copy-in, still readable.
    @Test func logicalVolumeInPiecesIsReadOnly() throws {
        let fixture = try GuestFilesFixture()
        let lvm = try Fixture.lvmGuest(.allLVM)
        let image = fixture.directory.file("lvm-only.img")
        try Command.run("cp", ["--sparse=always", lvm.imagePath, image]).requireSuccess()
        let file = try hostFile(fixture, "x.txt")
        try expectRefusal(["copy-in", file, image, "/root"], unchanged: image,
                          mentions: [image, "VolGroup00/LogVol00", "not one run of the input file"])
        #expect(try Command.runRehost(["ls", image, "/boot"]).requireSuccess().stdout.contains("vmlinuz-"))
    }

    /// Without root, copy-out keeps modes and times but not owners, as cp -a does; copy-in into an
    /// image the user cannot write fails in one line before anything is written.
    @Test func withoutRoot() throws {
        let fixture = try GuestFilesFixture()
        try fixture.directory.makeWorldWritable()
        _ = try Command.run("chmod", ["644", fixture.bareImage]).requireSuccess()
        let out = fixture.directory.file("out")
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: false)
        try Command.run("chown", ["nobody", out]).requireSuccess()
        let result = try Command.runRehost(["copy-out", fixture.bareImage, "/home/alice", out], asUser: "nobody")
        #expect(result.status == 0, "\(result.stderr)")
        var st = stat()
        #expect(stat(out + "/alice/reports/a.txt", &st) == 0)
        #expect(st.st_mode & 0o7777 == 0o640 && st.st_mtim.tv_sec == 1_400_000_000)
        #expect(st.st_uid != 1234, "an owner was kept without root")
        let file = try hostFile(fixture, "x.txt")
        let before = try GuestFilesFixture.sha256(fixture.bareImage)
        let refused = try Command.runRehost(["copy-in", file, fixture.bareImage, "/tmp"], asUser: "nobody")
        #expect(refused.status != 0 && refused.stderr.split(separator: "\n").count == 1, "\(refused.stderr)")
        #expect(refused.stderr.hasPrefix("rehost: error: ") && refused.stderr.contains(fixture.bareImage), "\(refused.stderr)")
        #expect(try GuestFilesFixture.sha256(fixture.bareImage) == before)
    }

    /// An image a qemu process has open (here qemu-io, which takes qemu's locks) is not written.
    @Test func imageInUseByQemu() throws {
        let fixture = try GuestFilesFixture()
        let image = fixture.bareImage
        let file = try hostFile(fixture, "x.txt")
        let qemu = Process()
        qemu.executableURL = URL(fileURLWithPath: try Command.require("qemu-io"))
        qemu.arguments = ["-f", "raw", "-c", "sleep 60000", image]
        try qemu.run()
        // qemu-io sleeps through SIGTERM.
        defer { kill(qemu.processIdentifier, SIGKILL); qemu.waitUntilExit() }
        // Wait until its locks are taken (/proc/locks names the file by inode).
        var st = stat()
        #expect(stat(image, &st) == 0)
        var locked = false
        for _ in 0..<100 where !locked {
            let locks = (try? String(contentsOfFile: "/proc/locks", encoding: .utf8)) ?? ""
            locked = locks.split(separator: "\n").contains { $0.contains("OFDLCK") && $0.contains(":\(st.st_ino) ") }
            if !locked { usleep(100_000) }
        }
        try #require(locked, "qemu-io took no lock on \(image)")
        try expectRefusal(["copy-in", file, image, "/root"], unchanged: image, mentions: [image, "in use by another process"])
    }

    /// qcow2 images copy-in cannot write in place are refused before anything is written:
    /// internal snapshots (shared clusters) and refcounts narrower than a byte.
    @Test func qcow2ImagesNotWrittenInPlace() throws {
        let fixture = try GuestFilesFixture()
        let file = try hostFile(fixture, "x.txt")
        let snapshot = try fixture.converted(to: "qcow2")
        try Command.run("qemu-img", ["snapshot", "-c", "before", snapshot]).requireSuccess()
        try expectRefusal(["copy-in", file, snapshot, "/root"], unchanged: snapshot, mentions: [snapshot, "1 internal snapshots"])
        let narrow = fixture.directory.file("narrow.qcow2")
        try Command.run("qemu-img", ["convert", "-f", "raw", "-O", "qcow2", "-o", "refcount_bits=4", fixture.disk, narrow]).requireSuccess()
        try expectRefusal(["copy-in", file, narrow, "/root"], unchanged: narrow, mentions: [narrow, "refcounts of 4 bits"])
        #expect(try Command.run("qemu-img", ["check", narrow]).status == 0)
    }
}
