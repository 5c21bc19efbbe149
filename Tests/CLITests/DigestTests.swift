import Foundation
import Testing
import TestSupport

/// The digests in the reports: the SHA-256 of each output file (`--digest file`) is what
/// sha256sum prints, for every format, whether it ran during the streaming pass or over the
/// finished file; the disk digest (the default) is the same for every output of one disk, equal
/// to what an independent reader computes over the raw disk and to what `rehost digest` prints for
/// each output read back.
struct DigestTests {
    func reportedDigests(_ result: CommandResult, key: String = "sha256") throws -> [String: String] {
        let report = try #require(try JSONSerialization.jsonObject(with: Data(result.stdoutBytes)) as? [String: Any])
        var digests: [String: String] = [:]
        for output in report["outputs"] as? [[String: Any]] ?? [] {
            if let path = output["path"] as? String, let sha = output[key] as? String { digests[path] = sha }
        }
        return digests
    }

    func sha256sum(_ path: String) throws -> String {
        String(try Command.run("sha256sum", [path]).requireSuccess().stdout.prefix(64))
    }

    /// Tests/Tools/blk-sha256.py over a raw disk: every byte hashed the plain way.
    func independentDiskDigest(_ rawPath: String) throws -> String {
        let result = try Command.run("/usr/bin/python3", ["\(Fixture.repositoryRoot)/Tests/Tools/blk-sha256.py", rawPath]).requireSuccess()
        return String(result.stdout.prefix(64))
    }

    /// What `rehost digest` prints for each image, by path.
    func rehostDigests(_ paths: [String]) throws -> [String: String] {
        let result = try Command.runRehost(["digest"] + paths)
        #expect(result.status == 0, "\(result.stderr)")
        var digests: [String: String] = [:]
        for line in result.stdout.split(separator: "\n") {
            let parts = line.split(separator: " ", maxSplits: 1)
            if parts.count == 2 { digests[String(parts[1].dropFirst())] = String(parts[0]) }
        }
        return digests
    }

    @Test func exportDigestsMatchSha256sumForEveryFormat() throws {
        let dir = try TemporaryDirectory(prefix: "rehost-digests")
        // Data runs between holes; the first disk's size is not a whole number of clusters or
        // blocks, the second's a whole number of MiB, as a fixed VHD needs.
        let odd = dir.file("odd.raw"), even = dir.file("even.raw")
        try SyntheticDisk.make(at: odd, size: (48 << 20) + 3 * 512)
        try SyntheticDisk.make(at: even, size: 48 << 20, seed: 2)
        for (raw, names, extra) in [(odd, ["disk.raw", "disk.qcow2", "stream.vmdk", "disk.vdi", "disk.vhd", "vm.ova"], []),
                                    (even, ["sparse.vmdk", "fixed.vhd", "fixed.vdi"], ["--vmdk-subformat", "monolithicSparse",
                                                                                      "--vhd-variant", "fixed", "--vdi-variant", "fixed"])] {
            let outputs = names.map(dir.file)
            let result = try Command.runRehost(["export", raw, "--json", "--digest", "all"] + outputs.flatMap { ["-o", $0] } + extra)
            #expect(result.status == 0, "\(result.stderr)")
            let digests = try reportedDigests(result)
            let diskDigests = try reportedDigests(result, key: "diskDigest")
            let expected = try independentDiskDigest(raw)
            let readBack = try rehostDigests(outputs)
            for path in outputs {
                #expect(digests[path] == (try sha256sum(path)), "\(path)")
                #expect(diskDigests[path] == expected, "the disk digest reported for \(path)")
                #expect(readBack[path] == expected, "rehost digest \(path)")
            }
        }
    }

    /// By default only the disk digest; `--no-digest` and `--digest none` leave both out.
    @Test func theDefaultIsTheDiskDigestAndNoneLeavesBothOut() throws {
        let dir = try TemporaryDirectory(prefix: "rehost-digests")
        let raw = dir.file("source.raw")
        try SyntheticDisk.make(at: raw, size: 16 << 20)
        let output = dir.file("disk.qcow2")
        let plain = try Command.runRehost(["export", raw, "--json", "-o", output])
        #expect(plain.status == 0, "\(plain.stderr)")
        #expect(try reportedDigests(plain, key: "diskDigest")[output] == (try independentDiskDigest(raw)))
        #expect(try reportedDigests(plain)[output] == nil)
        for flags in [["--no-digest"], ["--digest", "none"]] {
            let result = try Command.runRehost(["export", raw, "--json", "-o", dir.file("again.qcow2")] + flags)
            #expect(result.status == 0, "\(result.stderr)")
            #expect(try reportedDigests(result, key: "diskDigest").isEmpty && (try reportedDigests(result)).isEmpty, "\(flags)")
        }
    }

    /// qcow2 images with 512-byte clusters, made by qemu-img: the pieces a reader hands out start
    /// and end inside the digest's 64 KiB blocks, and the digest still matches.
    @Test func rehostDigestReadsImagesQemuImgWrote() throws {
        let dir = try TemporaryDirectory(prefix: "rehost-digests")
        let raw = dir.file("source.raw")
        try SyntheticDisk.make(at: raw, size: (40 << 20) + 512, seed: 5)
        var images = [raw]
        for (name, options) in [("small.qcow2", ["-O", "qcow2", "-o", "cluster_size=512"]), ("disk.vdi", ["-O", "vdi"]),
                                ("compressed.qcow2", ["-O", "qcow2", "-c"])] {
            try Command.run("qemu-img", ["convert", "-f", "raw"] + options + [raw, dir.file(name)]).requireSuccess()
            images.append(dir.file(name))
        }
        let expected = try independentDiskDigest(raw)
        let digests = try rehostDigests(images)
        for image in images { #expect(digests[image] == expected, "\(image)") }
        // A disk that differs in one byte has another digest.
        let handle = try #require(FileHandle(forUpdatingAtPath: raw))
        try handle.seek(toOffset: 20 << 20)
        try handle.write(contentsOf: [0x5A])
        try handle.close()
        #expect(try rehostDigests([raw])[raw] != expected)
    }

    @Test func convertDigestsMatchSha256sumForTheRawAndTheStreamedOutputs() throws {
        let dir = try TemporaryDirectory(prefix: "rehost-digests")
        try dir.makeWorldWritable()
        let fixture = try Fixture.xenInstance()
        let outputs = ["disk.raw", "disk.qcow2", "disk.vdi"].map(dir.file)
        let result = try Command.runRehost(["convert", fixture.imagePath, "--json", "--digest", "all"] + outputs.flatMap { ["-o", $0] },
                                           asUser: "nobody")
        #expect(result.status == 0, "\(result.stderr)")
        let digests = try reportedDigests(result)
        let diskDigests = try reportedDigests(result, key: "diskDigest")
        let expected = try independentDiskDigest(outputs[0])
        for path in outputs {
            #expect(digests[path] == (try sha256sum(path)), "\(path)")
            #expect(diskDigests[path] == expected, "the disk digest reported for \(path)")
        }
        // Only a raw output: both digests run while it is fsynced.
        let alone = dir.file("alone.raw")
        let single = try Command.runRehost(["convert", fixture.imagePath, "--json", "--digest", "all", "-o", alone], asUser: "nobody")
        #expect(try reportedDigests(single)[alone] == (try sha256sum(alone)))
        #expect(try reportedDigests(single, key: "diskDigest")[alone] == (try independentDiskDigest(alone)))
    }

    /// A guest with large files (written straight to the file in long runs, so hashed during the
    /// copy), many small ones (written through libext2fs's cache, so hashed at the end), a swap
    /// file and the repairs' rewrites: the digest taken as the disk was built is the finished
    /// disk's, for the raw output and the qcow2 one streamed from it.
    @Test func theDigestTakenWhileTheDiskIsBuiltIsTheFinishedDisks() throws {
        let dir = try TemporaryDirectory(prefix: "rehost-digests")
        let tree = dir.file("tree")
        var generator = SplitMix(seed: 11)
        for (name, size) in [("opt/big1.bin", 3 << 20), ("opt/big2.bin", (1 << 20) + 4096 * 3 + 100), ("opt/odd.bin", 70_000)] {
            try FileManager.default.createDirectory(atPath: "\(tree)/opt", withIntermediateDirectories: true)
            try Data((0..<size).map { _ in UInt8(truncatingIfNeeded: generator.next()) }).write(to: URL(fileURLWithPath: "\(tree)/\(name)"))
        }
        for index in 0..<300 {
            let directory = "\(tree)/usr/share/doc\(index % 10)"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            try Data(String(repeating: "line \(index)\n", count: index * 7 + 1).utf8).write(to: URL(fileURLWithPath: "\(directory)/f\(index)"))
        }
        try FileManager.default.createDirectory(atPath: "\(tree)/etc", withIntermediateDirectories: true)
        try "/dev/sda1 / ext3 defaults 1 1\n".write(toFile: "\(tree)/etc/fstab", atomically: true, encoding: .utf8)
        let source = dir.file("source.img")
        try Command.run("mke2fs", ["-q", "-F", "-t", "ext3", "-d", tree, source, "64M"]).requireSuccess()
        let raw = dir.file("disk.raw"), qcow2 = dir.file("disk.qcow2")
        let result = try Command.runRehost(["convert", source, "-o", raw, "-o", qcow2, "--skip", "bootloader", "--swap-file", "8M", "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let reported = try reportedDigests(result, key: "diskDigest")
        let expected = try independentDiskDigest(raw)
        #expect(reported[raw] == expected)
        #expect(reported[qcow2] == expected)
        #expect(try rehostDigests([qcow2])[qcow2] == expected)
    }

    /// `--manifest sha1` and the default sha256: every manifest line is `ALG(name)= hex` for a
    /// member of the archive, and sha1sum/sha256sum agree with it.
    @Test(arguments: [("sha1", "SHA1", "sha1sum"), ("sha256", "SHA256", "sha256sum")])
    func ovaManifestLinesMatchTheMembers(option: String, label: String, tool: String) throws {
        let dir = try TemporaryDirectory(prefix: "rehost-manifest")
        let raw = dir.file("source.raw")
        try SyntheticDisk.make(at: raw, size: 16 << 20)
        let ova = dir.file("vm.ova")
        let extra = option == "sha256" ? [] : ["--manifest", option]
        let result = try Command.runRehost(["export", raw, "-o", ova, "--name", "vm"] + extra)
        #expect(result.status == 0, "\(result.stderr)")
        try Command.run("tar", ["-xf", ova, "-C", dir.path]).requireSuccess()
        let manifest = try String(contentsOfFile: dir.file("vm.mf"), encoding: .utf8)
        let lines = manifest.split(separator: "\n").map(String.init)
        #expect(lines.count == 2 && manifest.hasSuffix("\n"))
        for (line, member) in zip(lines, ["vm.ovf", "vm-disk1.vmdk"]) {
            let digest = String(try Command.run(tool, [dir.file(member)]).requireSuccess().stdout.prefix(option == "sha1" ? 40 : 64))
            #expect(line == "\(label)(\(member))= \(digest)")
        }
    }
}
