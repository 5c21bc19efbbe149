import Foundation
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Inputs and options beyond the default conversion: gzip input, a fresh UUID named by root=,
/// another target, inspection's JSON, and an interrupted run.
struct ConvertVariantsTests {
    func workDirectory() throws -> TemporaryDirectory {
        let directory = try TemporaryDirectory(prefix: "rehost-variants")
        try directory.makeWorldWritable()
        return directory
    }

    @Test func inspectReportsTheGuestAndThePlan() throws {
        let fixture = try Fixture.xenInstance()
        let result = try Command.runRehost(["inspect", fixture.imagePath, "--json"], asUser: "nobody")
        #expect(result.status == 0, "\(result.stderr)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(result.stdoutBytes)) as? [String: Any])
        let input = report["input"] as? [String: Any]
        #expect(input?["kind"] as? String == "bare filesystem image")
        let filesystem = input?["filesystem"] as? [String: Any]
        #expect(filesystem?["type"] as? String == "ext3")
        #expect(filesystem?["uuid"] as? String == fixture["FS_UUID"])
        #expect(filesystem?["label"] as? String == fixture["FS_LABEL"])
        let guest = report["guest"] as? [String: Any]
        #expect((guest?["os"] as? [String: Any])?["family"] as? String == "redhat")
        let kernels = guest?["kernels"] as? [[String: Any]] ?? []
        #expect(kernels.contains { $0["path"] as? String == fixture["XEN_KERNEL_PATH"] && ($0["image"] as? [String: Any])?["format"] as? String == "xenPV" })
        #expect((guest?["bootableKernel"] as? [String: Any])?["path"] as? String == fixture["KERNEL_PATH"])
        let traits = (guest?["xenTraits"] as? [[String: Any]] ?? []).compactMap { $0["file"] as? String }
        for file in ["/etc/inittab", "/etc/modprobe.conf", "/etc/fstab", "/etc/securetty", "/etc/blkid/blkid.tab"] {
            #expect(traits.contains(file), "no Xen trait reported in \(file)")
        }
        #expect(report["rootReference"] as? String == "LABEL=/")
        let planned = (report["plannedChanges"] as? [[String: Any]] ?? []).compactMap { $0["repair"] as? String }
        #expect(Set(planned) == ["inittab", "securetty", "modprobe", "fstab", "blkid-cache", "network", "initrd", "bootloader", "selinux"])
        // The plan is the disk convert makes by default: for the EFI-stub kernel, GPT for both
        // firmwares, fstab mounting the ESP, and the same size as convert's own dry run.
        #expect(report["plannedFirmware"] as? String == "both")
        #expect((report["plannedFirmwareReason"] as? String)?.contains("\(fixture["KERNEL_PATH"] ?? "?") has an EFI stub") == true)
        let gpt = try #require(report["plannedGPT"] as? [String: Any])
        #expect(gpt["rootPartition"] as? Int == 3 && gpt["biosBootPartition"] as? Bool == true)
        let fstabLines = (report["plannedChanges"] as? [[String: Any]] ?? []).filter { $0["path"] as? String == "/etc/fstab" }
            .flatMap { ($0["lines"] as? [[String: Any]] ?? []).compactMap { $0["after"] as? String } }
        #expect(fstabLines.contains { $0.hasSuffix("\t/boot/efi\tvfat\tumask=0077\t0 0") }, "\(fstabLines)")
        let dry = try Command.runRehost(["convert", fixture.imagePath, "-o", "/tmp/never.raw", "--dry-run", "--json"], asUser: "nobody")
        let dryReport = try #require(try JSONSerialization.jsonObject(with: Data(dry.stdoutBytes)) as? [String: Any])
        #expect((gpt["diskSize"] as? NSNumber)?.uint64Value == (dryReport["diskSize"] as? NSNumber)?.uint64Value, "\(gpt) \(dryReport["diskSize"] ?? "")")
        let text = try Command.runRehost(["inspect", fixture.imagePath], asUser: "nobody").requireSuccess().stdout
        #expect(text.contains(", GPT: BIOS boot partition (1 MiB), EFI System Partition (64 MiB, FAT32), partition 3 ("), "\(text)")
    }

    @Test func gzipInputConvertsLikeTheBareImage() throws {
        let fixture = try Fixture.xenInstance()
        let dir = try workDirectory()
        let compressed = dir.file("xen-instance.img.gz")
        let gzip = try Command.run("/bin/sh", ["-c", "gzip -c -1 '\(fixture.imagePath)' > '\(compressed)' && chmod 644 '\(compressed)'"])
        _ = try gzip.requireSuccess()
        let disk = dir.file("from-gzip.raw")
        let result = try Command.runRehost(["convert", compressed, "-o", disk, "--scratch-dir", dir.path, "--json"], asUser: "nobody")
        #expect(result.status == 0, "\(result.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(result.stdoutBytes)) as? [String: Any]
        #expect((report?["input"] as? [String: Any])?["kind"] as? String == "gzip-compressed bare filesystem image")
        let root = try DiskPartitions.firstLinuxOffset(disk)
        let fsck = try Command.run("e2fsck", ["-fn", "\(disk)?offset=\(root)"])
        #expect(fsck.status == 0, "\(fsck.stdout)")
        let source = try ExtTreeManifest.read(image: fixture.imagePath)
        let output = try ExtTreeManifest.read(image: disk, offset: root)
        #expect(source["/opt/app/data.bin"]?.contentSHA256 == output["/opt/app/data.bin"]?.contentSHA256)
        let scratchLeft = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0 != "xen-instance.img.gz" && $0 != "from-gzip.raw" }
        #expect(scratchLeft.isEmpty, "the decompressed scratch copy must be removed: \(scratchLeft)")
    }

    /// A disk that already went through rehost and then to VMware, qcow2 or Azure converts again
    /// from that image: the root partition is found inside it, and the result holds the same
    /// files with the same contents as converting the raw disk.
    @Test(arguments: [(["-O", "vmdk", "-o", "subformat=streamOptimized"], "vmdk", "VMDK streamOptimized"),
                      (["-O", "qcow2", "-c"], "qcow2", "qcow2 v3"),
                      (["-O", "vpc", "-o", "subformat=fixed,force_size=on"], "vhd", "VHD fixed")])
    func diskImageInputConvertsLikeTheRawDisk(convert: [String], suffix: String, variant: String) throws {
        let fixture = try Fixture.xenInstance()
        let dir = try workDirectory()
        let first = dir.file("first.raw")
        _ = try Command.runRehost(["convert", fixture.imagePath, "-o", first, "-q"]).requireSuccess()
        let image = dir.file("first.\(suffix)")
        try Command.run("qemu-img", ["convert", "-f", "raw"] + convert + [first, image]).requireSuccess()
        try Command.run("chmod", ["644", image]).requireSuccess()
        let fromRaw = dir.file("from-raw.raw"), fromImage = dir.file("from-image.raw")
        _ = try Command.runRehost(["convert", first, "-o", fromRaw, "-q"], asUser: "nobody").requireSuccess()
        let result = try Command.runRehost(["convert", image, "-o", fromImage, "--scratch-dir", dir.path, "--json"], asUser: "nobody")
        #expect(result.status == 0, "\(result.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(result.stdoutBytes)) as? [String: Any]
        let kind = (report?["input"] as? [String: Any])?["kind"] as? String ?? ""
        #expect(kind.hasPrefix("partitioned disk (gpt) inside \(variant)"), "\(kind)")
        let root = try DiskPartitions.firstLinuxOffset(fromImage)
        #expect(try Command.run("e2fsck", ["-fn", "\(fromImage)?offset=\(root)"]).status == 0)
        let expected = try ExtTreeManifest.read(image: fromRaw, offset: try DiskPartitions.firstLinuxOffset(fromRaw))
        let got = try ExtTreeManifest.read(image: fromImage, offset: root)
        #expect(got.paths == expected.paths)
        for path in expected.paths where expected[path]?.contentSHA256 != got[path]?.contentSHA256 {
            Issue.record("\(path) differs between the conversions of the raw disk and of the \(suffix) image")
        }
        let left = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix(".rehost") }
        #expect(left.isEmpty, "the scratch copy must be removed: \(left)")
    }

    /// A fresh UUID, named by root= and fstab, for the generic target: boots on IDE.
    @Test func newUUIDRootReferenceBoots() throws {
        let fixture = try Fixture.xenInstance()
        let dir = try workDirectory()
        let disk = dir.file("uuid.raw")
        let result = try Command.runRehost(["convert", fixture.imagePath, "-o", disk, "--new-uuid", "--root-ref", "uuid",
                                            "--target", "generic", "--json"], asUser: "nobody")
        #expect(result.status == 0, "\(result.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(result.stdoutBytes)) as? [String: Any]
        let uuid = try #require((report?["newFilesystem"] as? [String: Any])?["uuid"] as? String)
        #expect(uuid != fixture["FS_UUID"])
        #expect(report?["rootReference"] as? String == "UUID=\(uuid)")
        let root = "\(disk)?offset=\(try DiskPartitions.firstLinuxOffset(disk))"
        let header = try Command.run("dumpe2fs", ["-h", root]).requireSuccess().stdout
        #expect(header.contains("Filesystem UUID:          \(uuid)"))
        let modprobe = try Command.run("debugfs", ["-R", "cat /etc/modprobe.conf", root]).requireSuccess().stdout
        #expect(modprobe.contains("alias scsi_hostadapter ata_piix") && modprobe.contains("alias eth0 e1000"))

        let log = dir.file("serial.log")
        let boot = try Command.run("/bin/bash", ["\(Fixture.repositoryRoot)/Fixtures/boot.sh", disk, "--bus", "ide", "--log", log,
                                                 "--timeout", "240"], timeout: .seconds(300), asUser: "nobody")
        #expect(boot.status == 0, "\(boot.stdout)\(boot.stderr)")
        let serial = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(serial.contains("root=UUID=\(uuid)"))
        #expect(serial.contains("REHOST-BOOT-OK"))
    }

    /// SIGTERM while the disk is being written: nothing at the final path, no partial file left.
    @Test func interruptedConversionLeavesNothing() throws {
        let fixture = try Fixture.xenInstance()
        let dir = try workDirectory()
        let disk = dir.file("interrupted.raw")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try Command.rehostExecutable())
        // A 1 TiB disk makes the run long enough to interrupt: thousands of block groups to write.
        process.arguments = ["convert", fixture.imagePath, "-o", disk, "--size", "1T", "-q"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        var sawPartial = false
        for _ in 0..<20_000 where process.isRunning {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
            if names.contains(where: { $0.hasSuffix(".partial") }) { sawPartial = true; break }
            usleep(500)
        }
        #expect(sawPartial, "the partial output never appeared")
        kill(process.processIdentifier, SIGTERM)
        process.waitUntilExit()
        #expect(process.terminationReason == .uncaughtSignal, "rehost should die of SIGTERM, it exited with \(process.terminationStatus)")
        let left = try FileManager.default.contentsOfDirectory(atPath: dir.path)
        #expect(left.isEmpty, "left behind: \(left)")
    }
}
