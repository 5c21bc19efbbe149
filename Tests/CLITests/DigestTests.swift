import Foundation
import Testing
import TestSupport

/// The SHA-256 the report gives for each output is the digest of the file as written, for every
/// format, whether the digest ran during the streaming pass or over the finished file.
struct DigestTests {
    func reportedDigests(_ result: CommandResult) throws -> [String: String] {
        let report = try #require(try JSONSerialization.jsonObject(with: Data(result.stdoutBytes)) as? [String: Any])
        var digests: [String: String] = [:]
        for output in report["outputs"] as? [[String: Any]] ?? [] {
            if let path = output["path"] as? String, let sha = output["sha256"] as? String { digests[path] = sha }
        }
        return digests
    }

    func sha256sum(_ path: String) throws -> String {
        String(try Command.run("sha256sum", [path]).requireSuccess().stdout.prefix(64))
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
            let result = try Command.runRehost(["export", raw, "--json"] + outputs.flatMap { ["-o", $0] } + extra)
            #expect(result.status == 0, "\(result.stderr)")
            let digests = try reportedDigests(result)
            for path in outputs {
                #expect(digests[path] == (try sha256sum(path)), "\(path)")
            }
        }
    }

    @Test func convertDigestsMatchSha256sumForTheRawAndTheStreamedOutputs() throws {
        let dir = try TemporaryDirectory(prefix: "rehost-digests")
        try dir.makeWorldWritable()
        let fixture = try Fixture.xenInstance()
        let outputs = ["disk.raw", "disk.qcow2", "disk.vdi"].map(dir.file)
        let result = try Command.runRehost(["convert", fixture.imagePath, "--json"] + outputs.flatMap { ["-o", $0] }, asUser: "nobody")
        #expect(result.status == 0, "\(result.stderr)")
        let digests = try reportedDigests(result)
        for path in outputs {
            #expect(digests[path] == (try sha256sum(path)), "\(path)")
        }
        // Only a raw output: its digest runs while it is fsynced.
        let alone = dir.file("alone.raw")
        let single = try Command.runRehost(["convert", fixture.imagePath, "--json", "-o", alone], asUser: "nobody")
        #expect(try reportedDigests(single)[alone] == (try sha256sum(alone)))
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
