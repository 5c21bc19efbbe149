import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// `rehost ls`, `cat`, `copy-out` and `copy-in` on guests made by mke2fs -d from known host
/// trees, checked against the trees themselves and against debugfs.
struct GuestFilesTests {
    func json(_ result: CommandResult) throws -> Any {
        try JSONSerialization.jsonObject(with: Data(result.stdoutBytes))
    }

    /// Every entry `ls -lR --json` reports agrees with debugfs: the same paths, modes, link
    /// counts, owners, sizes, times and symlink targets; the owner names are the guest's own.
    @Test func lsAgreesWithDebugfs() throws {
        let fixture = try GuestFilesFixture()
        let manifest = try ExtTreeManifest.read(image: fixture.bareImage)
        let result = try Command.runRehost(["ls", "-lR", "--json", fixture.bareImage, "/"]).requireSuccess()
        let entries = try #require(try json(result) as? [[String: Any]])
        let listed = Set(entries.compactMap { $0["path"] as? String })
        #expect(listed == Set(manifest.paths.filter { $0 != "/" }))
        for entry in entries {
            let path = try #require(entry["path"] as? String)
            let expected = try #require(manifest[path], "\(path) not in debugfs")
            #expect((entry["mode"] as? Int).map { UInt16($0 & 0o7777) } == expected.permissions, "\(path) mode")
            #expect((entry["links"] as? Int).map(UInt32.init) == expected.linkCount, "\(path) links")
            #expect((entry["uid"] as? Int).map(UInt32.init) == expected.uid, "\(path) uid")
            #expect((entry["gid"] as? Int).map(UInt32.init) == expected.gid, "\(path) gid")
            #expect((entry["size"] as? Int).map(UInt64.init) == expected.size, "\(path) size")
            #expect((entry["modified"] as? Int).map(Int64.init) == expected.mtime.seconds, "\(path) mtime")
            #expect(entry["target"] as? String == expected.symlinkTargetText, "\(path) target")
        }
        // Names from the guest's /etc/passwd and /etc/group: the host has no user 1234.
        let long = try Command.runRehost(["ls", "-l", fixture.bareImage, "/home/alice/reports"]).requireSuccess().stdout
        #expect(long == "-rw-r----- 1 alice(1234) staff(1234) 7 2014-05-13 16:53:20 a.txt\n", "\(long)")
        // Columns are padded to their widest value; compared with runs of spaces squeezed.
        let bootstrap = try Command.runRehost(["ls", "-l", fixture.bareImage, "/var/log/bootstrap"]).requireSuccess().stdout
            .split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
        #expect(bootstrap.contains("lrwxrwxrwx 1 root(0) root(0) 11 2014-05-13 16:53:20 latest -> report.json\n"), "\(bootstrap)")
        #expect(bootstrap.contains("-rwsr-xr-x 1 root(0) root(0) 300000 2014-05-13 16:53:20 blob.bin\n"), "\(bootstrap)")
        #expect(bootstrap.contains("prw-r--r-- 1 root(0) root(0) 0 2014-05-13 16:53:20 pipe\n"), "\(bootstrap)")
        #expect(bootstrap.contains("-rw-r--r-- 2 root(0) root(0) 12 2011-03-13 07:06:40 report.json\n"), "\(bootstrap)")
        // -l names a symlink itself; plain ls goes through it.
        let link = try Command.runRehost(["ls", "-l", fixture.bareImage, "/abs"]).requireSuccess().stdout
        #expect(link.hasPrefix("lrwxrwxrwx") && link.hasSuffix(" /abs -> /etc/hostname\n"), "\(link)")
        let plain = try Command.runRehost(["ls", fixture.bareImage, "/home"]).requireSuccess().stdout
        #expect(plain == "alice\n")
    }

    /// cat gives the bytes debugfs gives; symlinks, even ones climbing with .. or absolute, are
    /// followed inside the guest and never reach the host's /etc/hostname.
    @Test func catFollowsSymlinksInsideTheGuest() throws {
        let fixture = try GuestFilesFixture()
        for path in ["/var/log/bootstrap/up", "/abs", "/etc/hostname", "/var/log/bootstrap/../../../etc/hostname"] {
            let result = try Command.runRehost(["cat", fixture.bareImage, path]).requireSuccess()
            #expect(result.stdout == "guest-name\n", "\(path): \(result.stdout)")
        }
        // debugfs does not follow symlinks: it is asked for latest's target itself.
        for (file, target) in [("var/log/bootstrap/blob.bin", "var/log/bootstrap/blob.bin"),
                               ("var/log/bootstrap/sparse.img", "var/log/bootstrap/sparse.img"),
                               ("var/log/bootstrap/latest", "var/log/bootstrap/report.json")] {
            let got = try Command.runRehost(["cat", fixture.bareImage, "/" + file]).requireSuccess().stdoutBytes
            let debugfs = try Command.run("debugfs", ["-R", "cat /\(target)", fixture.bareImage]).requireSuccess().stdoutBytes
            let host = try Data(contentsOf: URL(fileURLWithPath: fixture.rootTree + "/" + file))
            #expect(got == debugfs, "\(file): rehost cat and debugfs cat differ")
            #expect(got == Array(host), "\(file): differs from the source tree")
        }
    }

    /// copy-out of the whole guest gives back the source tree: kinds, modes, owners, times to
    /// the second (128-byte inodes keep no more), contents, symlink targets, the hard link, the FIFO,
    /// and the sparse file stays sparse.
    @Test func copyOutGivesBackTheSourceTree() throws {
        let fixture = try GuestFilesFixture()
        let out = fixture.directory.file("out")
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: false)
        let result = try Command.runRehost(["copy-out", "--json", fixture.bareImage, "/", out]).requireSuccess()
        let report = try #require(try json(result) as? [String: Any])
        #expect(report["hardLinks"] as? Int == 1)
        try FileManager.default.removeItem(atPath: out + "/lost+found")
        let expected = try GuestFilesFixture.summary(of: fixture.rootTree, nanoseconds: false)
        let got = try GuestFilesFixture.summary(of: out, nanoseconds: false)
        #expect(got == expected, "\(Set(got.map { "\($0.key) \($0.value)" }).symmetricDifference(expected.map { "\($0.key) \($0.value)" }).sorted())")
        var first = stat(), second = stat(), sparse = stat()
        #expect(stat(out + "/var/log/bootstrap/report.json", &first) == 0 && stat(out + "/var/log/bootstrap/hard.json", &second) == 0)
        #expect(first.st_ino == second.st_ino, "the hard link became two files")
        #expect(stat(out + "/var/log/bootstrap/sparse.img", &sparse) == 0 && sparse.st_blocks * 512 < 1 << 20,
                "the sparse file takes \(sparse.st_blocks * 512) bytes")
        // One path and a symlink named as itself.
        let one = fixture.directory.file("one")
        try FileManager.default.createDirectory(atPath: one, withIntermediateDirectories: false)
        _ = try Command.runRehost(["copy-out", fixture.bareImage, "/var/log/bootstrap/latest", "/etc/hostname", one]).requireSuccess()
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: one + "/latest") == "report.json")
        #expect(try String(contentsOfFile: one + "/hostname", encoding: .utf8) == "guest-name\n")
    }

    /// On a partitioned disk the guest's fstab mounts /boot from partition 1: ls, cat and
    /// copy-out see the whole guest, the same in raw, qcow2 and VMDK; --partition 1 shows /boot alone.
    @Test func wholeGuestAcrossPartitionsAndFormats() throws {
        let fixture = try GuestFilesFixture()
        // mke2fs -d keeps whole seconds only. /boot shows the root of the boot filesystem (made
        // by mke2fs now), not the source's mount-point directory: left out.
        var expected = try GuestFilesFixture.summary(of: fixture.rootTree, nanoseconds: false)
        for (path, value) in try GuestFilesFixture.summary(of: fixture.bootTree, nanoseconds: false) { expected["boot/" + path] = value }
        expected["boot"] = nil
        for image in [fixture.disk, try fixture.converted(to: "qcow2", options: ["-c"]), try fixture.converted(to: "vmdk")] {
            let boot = try Command.runRehost(["ls", image, "/boot"]).requireSuccess().stdout
            #expect(boot == "grub\nlost+found\nvmlinuz-2.6.18\n", "\(image): \(boot)")
            let conf = try Command.runRehost(["cat", image, "/boot/grub/grub.conf"]).requireSuccess().stdout
            #expect(conf == "title guest\n", "\(image): \(conf)")
            let out = fixture.directory.file("out-" + (image as NSString).lastPathComponent)
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: false)
            _ = try Command.runRehost(["copy-out", image, "/", out]).requireSuccess()
            for lostFound in ["lost+found", "boot/lost+found"] { try FileManager.default.removeItem(atPath: out + "/" + lostFound) }
            var got = try GuestFilesFixture.summary(of: out, nanoseconds: false)
            got["boot"] = nil
            #expect(got == expected, "\(image): \(Set(got.map { "\($0.key) \($0.value)" }).symmetricDifference(expected.map { "\($0.key) \($0.value)" }).sorted())")
        }
        let alone = try Command.runRehost(["ls", "--partition", "1", fixture.disk, "/"]).requireSuccess().stdout
        #expect(alone == "grub\nlost+found\nvmlinuz-2.6.18\n", "\(alone)")
    }

    /// The tree copy-in writes into the bare image, then the files debugfs reads back.
    func makeUpload(_ fixture: GuestFilesFixture) throws -> String {
        let upload = fixture.directory.file("upload")
        let script = #"""
        set -e
        U="$1"
        mkdir -p "$U/sub/empty"
        printf 'script\n' > "$U/run.sh"; chmod 750 "$U/run.sh"
        head -c 200000 /dev/urandom > "$U/sub/data.bin"; chmod 600 "$U/sub/data.bin"
        truncate -s 3M "$U/sub/holes.img"; echo end >> "$U/sub/holes.img"
        ln -s ../run.sh "$U/sub/link"
        ln -s "/a/target/that/is/long/enough/to/need/a/block/of/its/own/in/ext/filesystems" "$U/slow"
        chmod 1777 "$U/sub/empty"
        find "$U" -depth -exec touch -h -d @1500000000.25 {} +
        touch -d @1600000000.75 "$U/sub/data.bin"
        """#
        try Command.run("sh", ["-c", script, "sh", upload]).requireSuccess()
        return upload
    }

    /// copy-in into a bare image: debugfs reads back every file with its mode, owner, time and
    /// contents; everything else in the filesystem is as it was; e2fsck finds it clean; and
    /// copy-out gives the tree back.
    @Test func copyInThenDebugfsAndCopyOut() throws {
        let fixture = try GuestFilesFixture()
        let upload = try makeUpload(fixture)
        let before = try ExtTreeManifest.read(image: fixture.bareImage)
        _ = try Command.runRehost(["copy-in", "--chown", "1234:1234", upload, fixture.bareImage, "/home/alice"]).requireSuccess()
        _ = try Command.runRehost(["copy-in", upload + "/run.sh", fixture.bareImage, "/root"]).requireSuccess()
        let fsck = try Command.run("e2fsck", ["-fn", fixture.bareImage])
        #expect(fsck.status == 0, "\(fsck.stdout)")
        let after = try ExtTreeManifest.read(image: fixture.bareImage)

        for path in before.paths where !["/home/alice", "/root"].contains(path) {
            #expect(before[path] == after[path], "\(path) changed")
        }
        let new = Set(after.paths).subtracting(before.paths)
        let uploadPaths = ["", "/run.sh", "/sub", "/sub/empty", "/sub/data.bin", "/sub/holes.img", "/sub/link", "/slow"]
        #expect(new == Set(uploadPaths.map { "/home/alice/upload" + $0 } + ["/root/run.sh"]))
        let modes: [String: UInt16] = ["": 0o755, "/run.sh": 0o750, "/sub": 0o755, "/sub/empty": 0o1777, "/sub/data.bin": 0o600,
                                       "/sub/holes.img": 0o644, "/sub/link": 0o777, "/slow": 0o777]
        for (suffix, mode) in modes {
            let entry = try #require(after["/home/alice/upload" + suffix])
            #expect(entry.permissions == mode, "\(suffix) mode \(String(entry.permissions, radix: 8))")
            #expect(entry.uid == 1234 && entry.gid == 1234, "\(suffix) owner")
            let seconds: Int64 = suffix == "/sub/data.bin" ? 1_600_000_000 : 1_500_000_000
            #expect(entry.mtime.seconds == seconds, "\(suffix) mtime \(entry.mtime)")
            if let ns = entry.mtime.nanoseconds {
                #expect(ns == (suffix == "/sub/data.bin" ? 750_000_000 : 250_000_000), "\(suffix) mtime ns")
            }
        }
        let root = try #require(after["/root/run.sh"])
        #expect(root.uid == 0 && root.gid == 0 && root.permissions == 0o750)
        #expect(after["/home/alice/upload/sub/data.bin"]?.contentSHA256 == (try GuestFilesFixture.sha256(upload + "/sub/data.bin")))
        #expect(after["/home/alice/upload/sub/holes.img"]?.contentSHA256 == (try GuestFilesFixture.sha256(upload + "/sub/holes.img")))
        let mapped = (after["/home/alice/upload/sub/holes.img"]?.mappedBlocks ?? []).reduce(0) { $0 + $1.count }
        #expect(mapped <= 2, "the holes were written: \(mapped) blocks mapped")
        #expect(after["/home/alice/upload/sub/link"]?.symlinkTargetText == "../run.sh")
        #expect(after["/home/alice/upload/slow"]?.symlinkTargetText?.hasSuffix("in/ext/filesystems") == true)
        #expect(after["/home/alice"]?.linkCount == (before["/home/alice"]?.linkCount ?? 0) + 1)

        // Round trip: what copy-out gives back is what went in, owners aside (they were --chown'd).
        let out = fixture.directory.file("back")
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: false)
        _ = try Command.runRehost(["copy-out", fixture.bareImage, "/home/alice/upload", out]).requireSuccess()
        let sent = try GuestFilesFixture.summary(of: upload, nanoseconds: false, owners: false)
        let back = try GuestFilesFixture.summary(of: out + "/upload", nanoseconds: false, owners: false)
        #expect(back == sent, "\(Set(back.map { "\($0.key) \($0.value)" }).symmetricDifference(sent.map { "\($0.key) \($0.value)" }).sorted())")
    }

    /// copy-in on a partitioned raw disk lands on the partition holding the guest directory: /boot
    /// on partition 1, /var/log on partition 2; both stay clean and each holds only its own file.
    @Test func copyInOnPartitionsFollowsTheMounts() throws {
        let fixture = try GuestFilesFixture()
        let note = fixture.directory.file("note.txt")
        try Data("boot note\n".utf8).write(to: URL(fileURLWithPath: note))
        let report = fixture.directory.file("report.txt")
        try Data("root report\n".utf8).write(to: URL(fileURLWithPath: report))
        _ = try Command.runRehost(["copy-in", note, fixture.disk, "/boot/grub"]).requireSuccess()
        _ = try Command.runRehost(["copy-in", report, fixture.disk, "/var/log"]).requireSuccess()
        for offset in [GuestFilesFixture.bootOffset, GuestFilesFixture.rootOffset] {
            let fsck = try Command.run("e2fsck", ["-fn", "\(fixture.disk)?offset=\(offset)"])
            #expect(fsck.status == 0, "offset \(offset): \(fsck.stdout)")
        }
        let boot = try ExtTreeManifest.read(image: fixture.disk, offset: GuestFilesFixture.bootOffset)
        let root = try ExtTreeManifest.read(image: fixture.disk, offset: GuestFilesFixture.rootOffset)
        #expect(boot["/grub/note.txt"]?.contentSHA256 == (try GuestFilesFixture.sha256(note)))
        #expect(root["/var/log/report.txt"]?.contentSHA256 == (try GuestFilesFixture.sha256(report)))
        #expect(root["/boot/grub"] == nil && boot["/var"] == nil)
        #expect(try Command.runRehost(["cat", fixture.disk, "/boot/grub/note.txt"]).requireSuccess().stdout == "boot note\n")

        // The root is ext4 with 256-byte inodes: times keep their nanoseconds, there and back.
        let upload = try makeUpload(fixture)
        _ = try Command.runRehost(["copy-in", upload, fixture.disk, "/home"]).requireSuccess()
        let fsck = try Command.run("e2fsck", ["-fn", "\(fixture.disk)?offset=\(GuestFilesFixture.rootOffset)"])
        #expect(fsck.status == 0, "\(fsck.stdout)")
        let after = try ExtTreeManifest.read(image: fixture.disk, offset: GuestFilesFixture.rootOffset)
        #expect(after["/home/upload/sub/data.bin"]?.mtime == InodeTime(seconds: 1_600_000_000, nanoseconds: 750_000_000))
        #expect(after["/home/upload/run.sh"]?.mtime == InodeTime(seconds: 1_500_000_000, nanoseconds: 250_000_000))
        let out = fixture.directory.file("back")
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: false)
        _ = try Command.runRehost(["copy-out", fixture.disk, "/home/upload", out]).requireSuccess()
        let sent = try GuestFilesFixture.summary(of: upload)
        let back = try GuestFilesFixture.summary(of: out + "/upload")
        #expect(back == sent, "\(Set(back.map { "\($0.key) \($0.value)" }).symmetricDifference(sent.map { "\($0.key) \($0.value)" }).sorted())")
    }

    /// The LVM2 guest: / on an LV, /boot on partition 1. copy-in writes each where the guest
    /// mounts it, at the LV's offset in the disk file; both filesystems stay clean.
    @Test func lvmGuestWrittenWhereItIsMounted() throws {
        let fixture = try GuestFilesFixture()
        let lvm = try Fixture.lvmGuest(.bootPartition)
        let image = fixture.directory.file("lvm.img")
        try Command.run("cp", ["--sparse=always", lvm.imagePath, image]).requireSuccess()
        let rootOffset = try #require(lvm["ROOT_OFFSET"].flatMap { UInt64($0) })
        let bootOffset = try #require(lvm["BOOT_OFFSET"].flatMap { UInt64($0) })
        let note = fixture.directory.file("bootstrap-report.txt")
        try Data("done\n".utf8).write(to: URL(fileURLWithPath: note))
        let bootBefore = try ExtTreeManifest.read(image: image, offset: bootOffset)
        _ = try Command.runRehost(["copy-in", note, image, "/root"]).requireSuccess()
        for offset in [rootOffset, bootOffset] {
            let fsck = try Command.run("e2fsck", ["-fn", "\(image)?offset=\(offset)"])
            #expect(fsck.status == 0, "offset \(offset): \(fsck.stdout)")
        }
        let root = try ExtTreeManifest.read(image: image, offset: rootOffset)
        #expect(root["/root/bootstrap-report.txt"]?.contentSHA256 == (try GuestFilesFixture.sha256(note)))
        #expect(try ExtTreeManifest.read(image: image, offset: bootOffset) == bootBefore, "/boot changed")
        let listing = try Command.runRehost(["ls", image, "/boot"]).requireSuccess().stdout
        #expect(listing.contains("vmlinuz-"), "\(listing)")
        #expect(try Command.runRehost(["cat", image, "/root/bootstrap-report.txt"]).requireSuccess().stdout == "done\n")

        // The same guest in qcow2: the LV's offset is the partition's plus the LV's own.
        let qcow2 = fixture.directory.file("lvm.qcow2")
        try Command.run("qemu-img", ["convert", "-f", "raw", "-O", "qcow2", lvm.imagePath, qcow2]).requireSuccess()
        _ = try Command.runRehost(["copy-in", note, qcow2, "/root"]).requireSuccess()
        let check = try Command.run("qemu-img", ["check", qcow2])
        #expect(check.status == 0, "\(check.stdout)")
        let back = fixture.directory.file("lvm-back.raw")
        try Command.run("qemu-img", ["convert", "-O", "raw", qcow2, back]).requireSuccess()
        #expect(try Command.run("e2fsck", ["-fn", "\(back)?offset=\(rootOffset)"]).status == 0)
        let fromQCOW2 = try ExtTreeManifest.read(image: back, offset: rootOffset)
        #expect(fromQCOW2["/root/bootstrap-report.txt"]?.contentSHA256 == (try GuestFilesFixture.sha256(note)))
        #expect(try ExtTreeManifest.read(image: back, offset: bootOffset).entries == bootBefore.entries, "/boot changed")
    }

    /// A damaged filesystem whose directory is linked into its own subtree: ls -R and copy-out
    /// each visit it once and say so, instead of recursing 1024 levels. A dangling symlink is
    /// listed as itself, under the path asked for.
    @Test func loopsAndDanglingLinks() throws {
        let fixture = try GuestFilesFixture()
        let image = fixture.bareImage
        try Command.run("debugfs", ["-w", "-R", "link /var/log /var/log/bootstrap/deep/loop", image]).requireSuccess()
        try Command.run("debugfs", ["-w", "-R", "symlink /dangling /nowhere/at/all", image]).requireSuccess()
        let listing = try Command.runRehost(["ls", "-R", image, "/var"]).requireSuccess()
        #expect(listing.stderr.contains("/var/log/bootstrap/deep/loop: a second entry for a directory"), "\(listing.stderr)")
        #expect(listing.stdout.components(separatedBy: "\n/var/log/bootstrap:\n").count == 2, "\(listing.stdout)")
        let out = fixture.directory.file("out")
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: false)
        let copied = try Command.runRehost(["copy-out", image, "/var", out]).requireSuccess()
        #expect(copied.stderr.contains("skipped /var/log/bootstrap/deep/loop: a second entry for a directory"), "\(copied.stderr)")
        #expect(!FileManager.default.fileExists(atPath: out + "/var/log/bootstrap/deep/loop"))
        #expect(FileManager.default.fileExists(atPath: out + "/var/log/bootstrap/deep/er/most.txt"))
        let dangling = try Command.runRehost(["ls", image, "/dangling"]).requireSuccess().stdout
        #expect(dangling == "/dangling\n", "\(dangling)")
        let long = try Command.runRehost(["ls", "-l", image, "/dangling"]).requireSuccess().stdout
        #expect(long.hasSuffix(" /dangling -> /nowhere/at/all\n"), "\(long)")
    }

    /// copy-in into qcow2 images in place, whatever their layout (v3 and v2, compressed clusters,
    /// clusters of 512 bytes to 64 KiB, 64-bit refcounts), VDI images (dynamic, static), VHD
    /// images (dynamic, fixed), VHDX images (dynamic with 32 MiB and 1 MiB blocks, fixed) and
    /// monolithicSparse VMDKs (with and without zeroed grains): qemu-img check finds no error or
    /// leak (Rehost's reader checks the VHDs), and the disk qemu-img reads out of it holds the new files, clean filesystems, and the
    /// rest of the guest as it was.
    @Test func copyInIntoImagesInPlace() throws {
        let fixture = try GuestFilesFixture()
        let upload = try makeUpload(fixture)
        let note = fixture.directory.file("note.txt")
        try Data("boot note\n".utf8).write(to: URL(fileURLWithPath: note))
        let rootBefore = try ExtTreeManifest.read(image: fixture.disk, offset: GuestFilesFixture.rootOffset)
        let bootBefore = try ExtTreeManifest.read(image: fixture.disk, offset: GuestFilesFixture.bootOffset)
        let variants: [(format: String, options: [String])] = [
            ("qcow2", []), ("qcow2", ["-c"]), ("qcow2", ["-o", "compat=0.10"]), ("qcow2", ["-o", "cluster_size=512"]),
            ("qcow2", ["-c", "-o", "cluster_size=4096"]), ("qcow2", ["-o", "refcount_bits=64"]),
            ("vdi", []), ("vdi", ["-o", "static=on"]), ("vpc", []), ("vpc", ["-o", "subformat=fixed"]),
            ("vmdk", []), ("vmdk", ["-o", "zeroed_grain=on"]),
            ("vhdx", []), ("vhdx", ["-o", "block_size=1M"]), ("vhdx", ["-o", "subformat=fixed,block_size=1M"]),
        ]
        for (number, (format, options)) in variants.enumerated() {
            let image = fixture.directory.file("in-place-\(number).\(format)")
            try Command.run("qemu-img", ["convert", "-f", "raw", "-O", format] + options + [fixture.disk, image]).requireSuccess()
            _ = try Command.runRehost(["copy-in", upload, image, "/home"]).requireSuccess()
            _ = try Command.runRehost(["copy-in", note, image, "/boot/grub"]).requireSuccess()
            if format == "vpc" {
                // qemu-img cannot check VHD: Rehost's reader checks both footers and every BAT entry.
                _ = try Command.runRehost(["export", image, "-o", fixture.directory.file("reread-\(number).raw"), "-q"]).requireSuccess()
            } else {
                let check = try Command.run("qemu-img", ["check", image])
                #expect(check.status == 0 && check.stdout.contains("No errors were found"), "\(format) \(options): \(check.stdout)\(check.stderr)")
                #expect(!check.stdout.contains("leaked"), "\(format) \(options): \(check.stdout)")
            }
            let raw = fixture.directory.file("in-place-\(number).raw")
            try Command.run("qemu-img", ["convert", "-f", format, "-O", "raw", image, raw]).requireSuccess()
            for offset in [GuestFilesFixture.bootOffset, GuestFilesFixture.rootOffset] {
                let fsck = try Command.run("e2fsck", ["-fn", "\(raw)?offset=\(offset)"])
                #expect(fsck.status == 0, "\(format) \(options) offset \(offset): \(fsck.stdout)")
            }
            let root = try ExtTreeManifest.read(image: raw, offset: GuestFilesFixture.rootOffset)
            let boot = try ExtTreeManifest.read(image: raw, offset: GuestFilesFixture.bootOffset)
            for path in rootBefore.paths where path != "/home" { #expect(root[path] == rootBefore[path], "\(format) \(options): \(path) changed") }
            for path in bootBefore.paths where path != "/grub" { #expect(boot[path] == bootBefore[path], "\(format) \(options): \(path) changed") }
            for file in ["run.sh", "sub/data.bin", "sub/holes.img"] {
                #expect(root["/home/upload/" + file]?.contentSHA256 == (try GuestFilesFixture.sha256(upload + "/" + file)), "\(format) \(options): \(file)")
            }
            #expect(root["/home/upload/sub/link"]?.symlinkTargetText == "../run.sh", "\(format) \(options)")
            #expect(boot["/grub/note.txt"]?.contentSHA256 == (try GuestFilesFixture.sha256(note)), "\(format) \(options)")
            #expect(try Command.runRehost(["cat", image, "/boot/grub/note.txt"]).requireSuccess().stdout == "boot note\n")
        }
    }
}
