import Foundation
import Testing
import TestSupport

/// `rehost export` end to end against qemu-img, and its failure modes.
struct ExportTests {
    func qemuImgInfo(_ path: String, format: String) throws -> [String: Any] {
        let info = try Command.run("qemu-img", ["info", "-f", format, "--output=json", path]).requireSuccess()
        return try JSONSerialization.jsonObject(with: Data(info.stdoutBytes)) as? [String: Any] ?? [:]
    }

    /// Every format the writers produce, as qemu-img names it for `-f`.
    static let formats: [(file: String, qemuFormat: String, extra: [String])] = [
        ("disk.raw", "raw", []),
        ("disk.qcow2", "qcow2", []),
        ("stream.vmdk", "vmdk", []),
        ("disk.vdi", "vdi", []),
        ("disk.vhd", "vpc", []),
    ]

    @Test func anOVAHoldsTheDiskAndAManifestThatMatches() throws {
        let dir = try TemporaryDirectory(prefix: "rehost-export-ova")
        let raw = dir.file("source.raw")
        try SyntheticDisk.make(at: raw, size: 64 << 20)
        let ova = dir.file("vm.ova")
        let result = try Command.runRehost(["export", raw, "-o", ova, "--name", "centos5", "--cpus", "2", "--memory", "2G"])
        #expect(result.status == 0, "\(result.stderr)")
        let list = try Command.run("tar", ["-tf", ova]).requireSuccess().stdout.split(separator: "\n").map(String.init)
        #expect(list == ["centos5.ovf", "centos5.mf", "centos5-disk1.vmdk"])
        try Command.run("tar", ["-xf", ova, "-C", dir.path]).requireSuccess()
        let check = try Command.run("/bin/sh", ["-c", "cd '\(dir.path)' && sed -E 's/^SHA256\\((.*)\\)= (.*)$/\\2  \\1/' centos5.mf | sha256sum -c"])
        #expect(check.status == 0, "manifest: \(check.stdout)\(check.stderr)")
        let compare = try Command.run("qemu-img", ["compare", "-f", "raw", "-F", "vmdk", raw, dir.file("centos5-disk1.vmdk")])
        #expect(compare.status == 0, "\(compare.stdout)\(compare.stderr)")
        let ovf = try String(contentsOfFile: dir.file("centos5.ovf"), encoding: .utf8)
        #expect(ovf.contains("<rasd:VirtualQuantity>2</rasd:VirtualQuantity>") && ovf.contains("<rasd:VirtualQuantity>2048</rasd:VirtualQuantity>"))
    }

    /// An OVA as GNU tar packs it around qemu-img's streamOptimized VMDK (with an OVF naming it,
    /// after a first .vmdk it does not name) exports to qcow2 holding exactly the named disk.
    @Test func anOVAInputExportsItsDisk() throws {
        let dir = try TemporaryDirectory(prefix: "rehost-export-ova-in")
        let decoy = dir.file("decoy.raw"), raw = dir.file("source.raw")
        try SyntheticDisk.make(at: decoy, size: 8 << 20, seed: 11)
        try SyntheticDisk.make(at: raw, size: 24 << 20, seed: 12)
        for (source, vmdk) in [(decoy, "decoy.vmdk"), (raw, "vm-disk1.vmdk")] {
            try Command.run("qemu-img", ["convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized",
                                         source, dir.file(vmdk)]).requireSuccess()
        }
        let ovf = """
            <?xml version="1.0" encoding="UTF-8"?>
            <Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">
              <References><File ovf:href="vm-disk1.vmdk" ovf:id="file1"/></References>
              <DiskSection><Info>Virtual disk information</Info>
                <Disk ovf:capacity="24" ovf:capacityAllocationUnits="byte * 2^20" ovf:diskId="vmdisk1" ovf:fileRef="file1"/>
              </DiskSection>
            </Envelope>

            """
        try Data(ovf.utf8).write(to: URL(fileURLWithPath: dir.file("vm.ovf")))
        let ova = dir.file("x.ova")
        try Command.run("tar", ["--format=ustar", "-C", dir.path, "-cf", ova, "vm.ovf", "decoy.vmdk", "vm-disk1.vmdk"]).requireSuccess()
        let before = try Command.run("sha256sum", [ova]).requireSuccess().stdout
        let output = dir.file("y.qcow2")
        let result = try Command.runRehost(["export", ova, "-o", output, "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(result.stdoutBytes)) as? [String: Any]
        #expect(report?["inputFormat"] as? String == "ova")
        #expect(report?["inputVariant"] as? String == "OVA member vm-disk1.vmdk, VMDK streamOptimized")
        #expect(report?["virtualSize"] as? Int == 24 << 20)
        let compare = try Command.run("qemu-img", ["compare", "-f", "raw", "-F", "qcow2", raw, output])
        #expect(compare.status == 0, "\(compare.stdout)\(compare.stderr)")
        #expect(try Command.run("sha256sum", [ova]).requireSuccess().stdout == before)
        // And the text report names the archive's disk; a broken archive fails on one line.
        let text = try Command.runRehost(["export", ova, "-o", dir.file("z.raw"), "-q"])
        #expect(text.status == 0 && text.stdout.contains("OVA member vm-disk1.vmdk"), "\(text.stdout)\(text.stderr)")
        #expect(try Command.run("cmp", [raw, dir.file("z.raw")]).status == 0)
        #expect(truncate(ova, 4096) == 0)
        let broken = try Command.runRehost(["export", ova, "-o", dir.file("w.qcow2")])
        #expect(broken.status != 0)
        #expect(broken.stderr.contains("\(ova): truncated OVA image") && !FileManager.default.fileExists(atPath: dir.file("w.qcow2")),
                "\(broken.stderr)")
    }

    /// The qemu-img convert job from every input format: images qemu-img wrote, read by
    /// `rehost export` into raw and qcow2 in one pass, hold the source's bytes.
    @Test(arguments: [
        (["-O", "qcow2"], "qcow2", "qcow2"), (["-O", "qcow2", "-c"], "qcow2", "qcow2"),
        (["-O", "vmdk"], "vmdk", "vmdk"), (["-O", "vmdk", "-o", "subformat=streamOptimized"], "vmdk", "vmdk"),
        (["-O", "vmdk", "-o", "subformat=monolithicFlat"], "vmdk", "vmdk"),
        (["-O", "vdi"], "vdi", "vdi"), (["-O", "vpc", "-o", "force_size=on"], "vpc", "vhd"),
        (["-O", "vpc", "-o", "subformat=fixed,force_size=on"], "vpc", "vhd"),
    ])
    func readsWhatQemuImgWrote(convert: [String], qemuFormat: String, inputFormat: String) throws {
        let dir = try TemporaryDirectory(prefix: "rehost-export-in")
        let raw = dir.file("source.raw")
        try SyntheticDisk.make(at: raw, size: 24 << 20)
        let input = dir.file("input.\(inputFormat)")
        try Command.run("qemu-img", ["convert", "-f", "raw"] + convert + [raw, input]).requireSuccess()
        let before = try Command.run("sha256sum", [input]).requireSuccess().stdout
        let result = try Command.runRehost(["export", input, "-o", dir.file("out.raw"), "-o", dir.file("out.qcow2"), "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(result.stdoutBytes)) as? [String: Any]
        #expect(report?["inputFormat"] as? String == inputFormat)
        let qemuSize = try qemuImgInfo(input, format: qemuFormat)["virtual-size"] as? Int
        #expect(report?["virtualSize"] as? Int == qemuSize)
        #expect(try Command.run("cmp", [raw, dir.file("out.raw")]).status == 0, "the raw output differs from the source")
        let compare = try Command.run("qemu-img", ["compare", "-f", qemuFormat, "-F", "qcow2", input, dir.file("out.qcow2")])
        #expect(compare.status == 0, "\(compare.stdout)\(compare.stderr)")
        #expect(try Command.run("sha256sum", [input]).requireSuccess().stdout == before, "the input was modified")
    }

    /// An output may not replace the input, nor a file a VMDK descriptor reads its data from.
    @Test func refusesToOverwriteItsInput() throws {
        let dir = try TemporaryDirectory(prefix: "rehost-export-same")
        let raw = dir.file("source.raw")
        try SyntheticDisk.make(at: raw, size: 16 << 20)
        let descriptor = dir.file("disk.vmdk")
        try Command.run("qemu-img", ["convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=monolithicFlat", raw, descriptor]).requireSuccess()
        let flat = dir.file("disk-flat.vmdk")
        let before = try Command.run("sha256sum", [raw, descriptor, flat]).requireSuccess().stdout
        for (input, output) in [(raw, raw), (descriptor, flat), (descriptor, descriptor)] {
            let result = try Command.runRehost(["export", input, "-o", dir.file("fine.qcow2"), "-o", output, "--format", "raw"])
            #expect(result.status == 1 && result.stderr.contains("\(output): the output would overwrite the input"), "\(result.stderr)")
        }
        #expect(try Command.run("sha256sum", [raw, descriptor, flat]).requireSuccess().stdout == before)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == ["disk-flat.vmdk", "disk.vmdk", "source.raw"])
    }

    /// A disk carried through every format by rehost alone comes back byte for byte.
    @Test func aChainThroughEveryFormatComesBackIdentical() throws {
        let dir = try TemporaryDirectory(prefix: "rehost-export-chain")
        let raw = dir.file("source.raw")
        try SyntheticDisk.make(at: raw, size: 24 << 20)
        var previous = raw
        for (index, (name, options)) in [("a.qcow2", ["--compress", "zstd"]), ("b.vmdk", []), ("c.vdi", []),
                                         ("d.vhd", ["--vhd-variant", "fixed"]), ("e.vmdk", ["--vmdk-subformat", "monolithicSparse"]),
                                         ("f.qcow2", ["--qcow2-compat", "0.10"]), ("back.raw", [])].enumerated() {
            let next = dir.file(name)
            let result = try Command.runRehost(["export", previous, "-o", next, "-q"] + options)
            #expect(result.status == 0, "step \(index) \(name): \(result.stderr)")
            previous = next
        }
        #expect(try Command.run("cmp", [raw, previous]).status == 0, "the disk changed on its way through the formats")
    }

    @Test func everyFormatInOnePassMatchesTheRawDisk() throws {
        let dir = try TemporaryDirectory(prefix: "rehost-export")
        let raw = dir.file("source.raw")
        // Not a multiple of 64 KiB, 1 MiB or 2 MiB: the last units of every format are partial.
        try SyntheticDisk.make(at: raw, size: (100 << 20) + 3 * 512)
        let outputs = Self.formats.map { dir.file($0.file) }
        let result = try Command.runRehost(["export", raw, "--json", "--digest", "file"] + outputs.flatMap { ["-o", $0] })
        #expect(result.status == 0, "\(result.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(result.stdoutBytes)) as? [String: Any]
        let reported = report?["outputs"] as? [[String: Any]] ?? []
        #expect(reported.count == Self.formats.count)
        for (format, path) in zip(Self.formats, outputs) {
            let compare = try Command.run("qemu-img", ["compare", "-f", "raw", "-F", format.qemuFormat, raw, path])
            #expect(compare.status == 0, "\(path): \(compare.stdout)\(compare.stderr)")
            let info = try qemuImgInfo(path, format: format.qemuFormat)
            #expect((info["virtual-size"] as? NSNumber)?.uint64Value == (100 << 20) + 3 * 512, "\(path): \(info)")
            let entry = reported.first { $0["path"] as? String == path }
            let digest = try Command.run("sha256sum", [path]).requireSuccess().stdout.split(separator: " ").first.map(String.init)
            #expect(entry?["sha256"] as? String == digest, "the reported digest of \(path)")
        }
    }

    /// The non-default variants of every format, also in one pass.
    @Test func everyVariantInOnePassMatchesTheRawDisk() throws {
        let dir = try TemporaryDirectory(prefix: "rehost-export-variants")
        let raw = dir.file("source.raw")
        try SyntheticDisk.make(at: raw, size: 96 << 20, seed: 7)
        let outputs = [("v2.qcow2", "qcow2"), ("sparse.vmdk", "vmdk"), ("fixed.vdi", "vdi"), ("fixed.vhd", "vpc")]
        let result = try Command.runRehost(["export", raw, "--compress", "deflate", "--qcow2-compat", "0.10",
                                            "--vmdk-subformat", "monolithicSparse", "--adapter", "ide", "--vdi-variant", "fixed",
                                            "--vhd-variant", "fixed", "--no-digest"] + outputs.flatMap { ["-o", dir.file($0.0)] })
        #expect(result.status == 0, "\(result.stderr)")
        for (name, format) in outputs {
            let compare = try Command.run("qemu-img", ["compare", "-f", "raw", "-F", format, raw, dir.file(name)])
            #expect(compare.status == 0, "\(name): \(compare.stdout)\(compare.stderr)")
        }
        let qcow2 = try qemuImgInfo(dir.file("v2.qcow2"), format: "qcow2")
        #expect(((qcow2["format-specific"] as? [String: Any])?["data"] as? [String: Any])?["compat"] as? String == "0.10")
        let vmdk = try qemuImgInfo(dir.file("sparse.vmdk"), format: "vmdk")
        #expect(((vmdk["format-specific"] as? [String: Any])?["data"] as? [String: Any])?["create-type"] as? String == "monolithicSparse")
        let head = try Command.run("head", ["-c", "4096", dir.file("sparse.vmdk")]).requireSuccess().stdout
        #expect(head.contains("\"sparse.vmdk\"") && head.contains("ddb.adapterType = \"ide\""),
                "the descriptor names the final file, not the temporary one, and the adapter")
    }

    @Test func diskFullFailsCleanly() throws {
        let dir = try TemporaryDirectory(prefix: "rehost-export-full")
        let raw = dir.file("source.raw")
        try SyntheticDisk.make(at: raw, size: 64 << 20)
        let output = dir.file("out.raw")
        let rehost = try Command.rehostExecutable()
        // A 2 MiB file-size limit stands in for a full disk: writes past it fail with EFBIG.
        let result = try Command.run("/bin/sh", ["-c", "ulimit -f 4096; exec '\(rehost)' export '\(raw)' -o '\(output)'"])
        #expect(result.status == 1, "\(result.stderr)")
        #expect(result.stderr.split(separator: "\n").count == 1 && result.stderr.contains("File too large"), "\(result.stderr)")
        let left = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0 != "source.raw" }
        #expect(left.isEmpty, "left behind: \(left)")
    }

    @Test func refusesWhatIsNotARawDisk() throws {
        let dir = try TemporaryDirectory(prefix: "rehost-export-bad")
        let odd = dir.file("odd.raw")
        _ = FileManager.default.createFile(atPath: odd, contents: Data(count: 1000))
        let result = try Command.runRehost(["export", odd, "-o", dir.file("x.raw")])
        #expect(result.status == 1 && result.stderr.contains("not a whole number of 512-byte sectors"), "\(result.stderr)")
        let qcow2 = dir.file("in.qcow2")
        try Command.run("qemu-img", ["create", "-q", "-f", "qcow2", qcow2, "16M"]).requireSuccess()
        try Command.run("truncate", ["-s", "100", qcow2]).requireSuccess()
        let truncated = try Command.runRehost(["export", qcow2, "-o", dir.file("y.raw")])
        #expect(truncated.status == 1 && truncated.stderr.contains("truncated qcow2 image"), "\(truncated.stderr)")
        #expect(truncated.stderr.split(separator: "\n").count == 1)
        let unknown = try Command.runRehost(["export", odd, "-o", dir.file("z.bin")])
        #expect(unknown.status == 1 && unknown.stderr.contains("cannot tell the format"), "\(unknown.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == ["in.qcow2", "odd.raw"])
    }
}
