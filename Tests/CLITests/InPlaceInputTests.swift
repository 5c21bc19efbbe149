import Foundation
import Testing
import TestSupport

/// qcow2 (compressed clusters), VMDK monolithicSparse, VMDK descriptor + flat extent, VDI and
/// VHD inputs are read in place: with TMPDIR and --scratch-dir on an empty directory, and every
/// file creation recorded by strace, `rehost convert` creates nothing but its output, and the
/// result holds the same files with the same contents as the conversion of the raw disk.
struct InPlaceInputTests {
    /// System calls that create or name a file.
    static let creatingCalls = ["creat", "mkdir", "mkdirat", "link", "linkat", "symlink", "symlinkat",
                                "rename", "renameat", "renameat2", "mknod", "mknodat"]

    /// Paths a traced run created outside `allowed`: open with O_CREAT or O_TMPFILE, or a creating call.
    /// The GRUB core image (`rehost-core-*.img`, made by grub-mkimage for the bootloader and
    /// removed at once) is the one temporary file a conversion makes, whatever its input.
    static let grubFiles = ["/rehost-core-", "/rehost-grubx64-", "/rehost-early-"]

    static func creations(in trace: String, outside allowed: String) -> [String] {
        var found: [String] = []
        for line in trace.split(separator: "\n") {
            let creates = line.contains("O_CREAT") || line.contains("O_TMPFILE") || creatingCalls.contains { line.contains(" \($0)(") || line.hasPrefix("\($0)(") }
            guard creates else { continue }
            let quoted = line.split(separator: "\"", omittingEmptySubsequences: false).enumerated()
                .filter { $0.offset % 2 == 1 }.map { String($0.element) }
            // grub-mkimage's input and output files (the i386-pc core, the x86_64-efi image and
            // its early config) are made in $TMPDIR and removed: small, and never the disk.
            for path in quoted where !path.hasPrefix(allowed + "/") && !Self.grubFiles.contains(where: { path.contains($0) }) {
                found.append(String(line))
            }
        }
        return found
    }

    @Test func diskImagesConvertWithoutAScratchCopy() throws {
        let fixture = try Fixture.xenInstance()
        let dir = try TemporaryDirectory(prefix: "rehost-in-place")
        let first = dir.file("first.raw")
        _ = try Command.runRehost(["convert", fixture.imagePath, "-o", first, "-q"]).requireSuccess()
        let fromRaw = dir.file("from-raw.raw")
        _ = try Command.runRehost(["convert", first, "-o", fromRaw, "-q"]).requireSuccess()
        let expected = try ExtTreeManifest.read(image: fromRaw, offset: try DiskPartitions.firstLinuxOffset(fromRaw))
        let rehost = try Command.rehostExecutable()

        let inputs: [(options: [String], file: String, variant: String)] = [
            (["-O", "qcow2", "-c"], "disk.qcow2", "qcow2 v3, 64 KiB clusters, zlib-compressed"),
            (["-O", "vmdk"], "sparse.vmdk", "VMDK monolithicSparse"),
            (["-O", "vmdk", "-o", "subformat=monolithicFlat"], "flat.vmdk", "VMDK monolithicFlat"),
            (["-O", "vdi"], "disk.vdi", "VDI dynamic"),
            (["-O", "vpc"], "disk.vhd", "VHD dynamic"),
        ]
        for input in inputs {
            let image = dir.file(input.file)
            try Command.run("qemu-img", ["convert", "-f", "raw"] + input.options + [first, image]).requireSuccess()
            let empty = dir.file("empty-\(input.file)"), out = dir.file("out-\(input.file)")
            for path in [empty, out] { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false) }
            let trace = dir.file("trace-\(input.file).log")
            let disk = "\(out)/disk.raw"
            let result = try Command.run("strace", ["-f", "-qq", "-o", trace, "-e", "trace=open,openat,openat2,memfd_create," + Self.creatingCalls.joined(separator: ","),
                                                    rehost, "convert", image, "-o", disk, "--scratch-dir", empty, "--json"],
                                         environment: ["TMPDIR": empty])
            #expect(result.status == 0, "\(input.file): \(result.stderr)")
            let report = try JSONSerialization.jsonObject(with: Data(result.stdoutBytes)) as? [String: Any]
            let kind = (report?["input"] as? [String: Any])?["kind"] as? String ?? ""
            #expect(kind.hasPrefix("partitioned disk (gpt) inside \(input.variant)"), "\(input.file): \(kind)")

            let calls = try String(contentsOfFile: trace, encoding: .utf8)
            // libblkid probed the image's bytes through a memfd: the input was read in place.
            #expect(calls.contains("memfd_create(\"rehost-probe\""), "\(input.file): no probe window in the trace")
            #expect(calls.contains(disk.replacingOccurrences(of: "/disk.raw", with: "/.disk.raw.rehost-")), "\(input.file): the output was not traced")
            let strays = Self.creations(in: calls, outside: out)
            #expect(strays.isEmpty, "\(input.file): files created outside the output directory:\n\(strays.joined(separator: "\n"))")
            #expect(try FileManager.default.contentsOfDirectory(atPath: empty).isEmpty, "\(input.file): scratch left behind")

            let root = try DiskPartitions.firstLinuxOffset(disk)
            #expect(try Command.run("e2fsck", ["-fn", "\(disk)?offset=\(root)"]).status == 0, "\(input.file): e2fsck")
            let got = try ExtTreeManifest.read(image: disk, offset: root)
            #expect(got.paths == expected.paths, "\(input.file): other files than from the raw disk")
            for path in expected.paths where expected[path]?.contentSHA256 != got[path]?.contentSHA256 {
                Issue.record("\(input.file): \(path) differs from the conversion of the raw disk")
            }
            try FileManager.default.removeItem(atPath: out)
        }
    }

    /// An OVA's disk member is copied out as it is stored (one scratch file, the size of the
    /// compressed VMDK) and read there in place: the disk is never expanded into a raw copy.
    @Test func ovaCopiesOnlyItsDiskMember() throws {
        let fixture = try Fixture.xenInstance()
        let dir = try TemporaryDirectory(prefix: "rehost-in-place-ova")
        let first = dir.file("first.raw"), ova = dir.file("vm.ova")
        _ = try Command.runRehost(["convert", fixture.imagePath, "-o", first, "-q"]).requireSuccess()
        _ = try Command.runRehost(["export", first, "-o", ova, "-q"]).requireSuccess()
        let empty = dir.file("empty"), out = dir.file("out"), trace = dir.file("trace.log")
        for path in [empty, out] { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false) }
        let result = try Command.run("strace", ["-f", "-qq", "-o", trace, "-e", "trace=open,openat,openat2," + Self.creatingCalls.joined(separator: ","),
                                                try Command.rehostExecutable(), "convert", ova, "-o", "\(out)/disk.raw", "--scratch-dir", empty, "-q"],
                                     environment: ["TMPDIR": empty])
        #expect(result.status == 0, "\(result.stderr)")
        let strays = Self.creations(in: try String(contentsOfFile: trace, encoding: .utf8), outside: out)
        #expect(strays.count == 1 && strays.allSatisfy { $0.contains("\"\(empty)/") && $0.contains("vmdk") }, "\(strays)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: empty).isEmpty, "scratch left behind")
        let root = try DiskPartitions.firstLinuxOffset("\(out)/disk.raw")
        #expect(try Command.run("e2fsck", ["-fn", "\(out)/disk.raw?offset=\(root)"]).status == 0)
    }
}
