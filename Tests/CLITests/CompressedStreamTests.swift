import Foundation
import Testing
import TestSupport

/// Compressed raw streams (`x.raw.gz`, `.raw.xz`, `.raw.zst`) and `x.qcow2.gz` as outputs
/// written in one pass beside a qcow2, checked by the system tools; and the same files read back
/// as inputs.
@Suite(.serialized) struct CompressedStreamTests {
    /// Data extents between large holes; a size that is no multiple of a MiB.
    static let size: UInt64 = (160 << 20) + 7 * 512

    static func makeOutputs(_ dir: TemporaryDirectory) throws -> (raw: String, result: CommandResult) {
        let raw = dir.file("disk.raw")
        try SyntheticDisk.make(at: raw, size: size, seed: 5)
        let result = try Command.runRehost(["export", raw, "-o", dir.file("x.raw.gz"), "-o", dir.file("x.raw.xz"),
                                            "-o", dir.file("x.raw.zst"), "-o", dir.file("x.qcow2.gz"), "-o", dir.file("x.qcow2")])
        return (raw, result)
    }

    @Test func everyCompressedStreamDecompressesToTheDisk() throws {
        let dir = try TemporaryDirectory(prefix: "rehost-rawstreams")
        let started = Date()
        let (raw, result) = try Self.makeOutputs(dir)
        print("export to .raw.gz .raw.xz .raw.zst .qcow2.gz .qcow2 in one pass: \(Date().timeIntervalSince(started)) s")
        #expect(result.status == 0, "\(result.stderr)")
        print(result.stdout)
        for (file, tool) in [("x.raw.gz", "gzip"), ("x.raw.xz", "xz"), ("x.raw.zst", "zstd")] {
            let path = dir.file(file)
            let test = try Command.run(tool, ["-t", path])
            #expect(test.status == 0, "\(tool) -t \(file): \(test.stderr)")
            let plain = dir.file("\(file).out")
            let decompressed = try Command.run("/bin/sh", ["-c", "\(tool) -dc '\(path)' > '\(plain)'"])
            #expect(decompressed.status == 0, "\(tool) -dc \(file): \(decompressed.stderr)")
            let compare = try Command.run("cmp", [raw, plain])
            #expect(compare.status == 0, "\(file): \(compare.stdout)\(compare.stderr)")
            try? FileManager.default.removeItem(atPath: plain)
        }
        // zcat, Python's gzip module and 7-Zip read every member of the pigz-style gzip.
        let zcat = try Command.run("/bin/sh", ["-c", "zcat '\(dir.file("x.raw.gz"))' | cmp - '\(raw)'"])
        #expect(zcat.status == 0, "zcat: \(zcat.stdout)\(zcat.stderr)")
        let python = try Command.run("python3", ["-c", """
            import gzip, sys
            a = gzip.open(sys.argv[1]).read()
            b = open(sys.argv[2], 'rb').read()
            sys.exit(0 if a == b else 1)
            """, dir.file("x.raw.gz"), raw])
        #expect(python.status == 0, "python gzip: \(python.stderr)")
        if let sevenZip = ["7z", "7za"].compactMap({ try? Command.require($0) }).first {
            let extracted = try Command.run("/bin/sh", ["-c", "'\(sevenZip)' e -so '\(dir.file("x.raw.gz"))' | cmp - '\(raw)'"])
            #expect(extracted.status == 0, "7-Zip: \(extracted.stdout)\(extracted.stderr)")
        }
        // qcow2.gz: gunzip, then qemu-img check and compare.
        let qcow2 = dir.file("unpacked.qcow2")
        try Command.run("/bin/sh", ["-c", "gzip -dc '\(dir.file("x.qcow2.gz"))' > '\(qcow2)'"]).requireSuccess()
        let check = try Command.run("qemu-img", ["check", "-f", "qcow2", qcow2])
        #expect(check.status == 0, "\(check.stdout)\(check.stderr)")
        let compare = try Command.run("qemu-img", ["compare", "-f", "raw", "-F", "qcow2", raw, qcow2])
        #expect(compare.status == 0, "\(compare.stdout)\(compare.stderr)")
        // The uncompressed qcow2 beside them is unchanged by their presence.
        let plainCompare = try Command.run("qemu-img", ["compare", "-f", "raw", "-F", "qcow2", raw, dir.file("x.qcow2")])
        #expect(plainCompare.status == 0, "\(plainCompare.stdout)\(plainCompare.stderr)")
    }

    /// The JSON report: format raw, the compression beside it, the variant naming the threads.
    @Test func theReportSaysFormatAndCompression() throws {
        let dir = try TemporaryDirectory(prefix: "rehost-rawstreams-json")
        let raw = dir.file("disk.raw")
        try SyntheticDisk.make(at: raw, size: 16 << 20, seed: 4)
        let result = try Command.runRehost(["export", raw, "-o", dir.file("a.img.gz"), "-o", dir.file("b.qcow2.gz"), "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(result.stdoutBytes)) as? [String: Any]
        let outputs = report?["outputs"] as? [[String: Any]] ?? []
        #expect(outputs.count == 2)
        #expect(outputs.first?["format"] as? String == "raw" && outputs.first?["compression"] as? String == "gzip")
        #expect((outputs.first?["variant"] as? String)?.contains("thread") == true, "\(outputs)")
        #expect(outputs.last?["format"] as? String == "qcow2" && outputs.last?["compression"] as? String == "gzip")
        #expect(try Command.run("gzip", ["-t", dir.file("b.qcow2.gz")]).status == 0)
    }

    @Test func compressedStreamsAreInputsToo() throws {
        let dir = try TemporaryDirectory(prefix: "rehost-rawstreams-in")
        let (raw, result) = try Self.makeOutputs(dir)
        #expect(result.status == 0, "\(result.stderr)")
        // Named without their suffix: detected by magic, not by name.
        for (file, renamed) in [("x.raw.gz", "a.img"), ("x.raw.xz", "b.data"), ("x.raw.zst", "c.raw.zst"), ("x.qcow2.gz", "d.bin")] {
            try FileManager.default.moveItem(atPath: dir.file(file), toPath: dir.file(renamed))
            let back = dir.file("\(renamed).back.raw")
            let started = Date()
            let export = try Command.runRehost(["export", dir.file(renamed), "-o", back])
            print("export \(file) (as \(renamed)) back to raw: \(Date().timeIntervalSince(started)) s")
            #expect(export.status == 0, "\(file): \(export.stderr)")
            let compare = try Command.run("cmp", [raw, back])
            #expect(compare.status == 0, "\(file): \(compare.stdout)\(compare.stderr)")
            try? FileManager.default.removeItem(atPath: back)
        }
    }

    @Test func aTruncatedXzOrZstdInputIsOneLineAndExitOne() throws {
        let dir = try TemporaryDirectory(prefix: "rehost-rawstreams-trunc")
        let raw = dir.file("disk.raw")
        try SyntheticDisk.make(at: raw, size: 32 << 20, seed: 9)
        for suffix in ["xz", "zst"] {
            let whole = dir.file("whole.raw.\(suffix)")
            try Command.runRehost(["export", raw, "-o", whole]).requireSuccess()
            let bytes = try Data(contentsOf: URL(fileURLWithPath: whole))
            let cut = dir.file("cut.raw.\(suffix)")
            try bytes.prefix(bytes.count * 2 / 3).write(to: URL(fileURLWithPath: cut))
            let result = try Command.runRehost(["export", cut, "-o", dir.file("out-\(suffix).raw")])
            #expect(result.status == 1, "\(suffix): status \(result.status)")
            let lines = result.stderr.split(separator: "\n")
            #expect(lines.count == 1 && result.stderr.contains("truncated"), "\(suffix): \(result.stderr)")
            #expect(!FileManager.default.fileExists(atPath: dir.file("out-\(suffix).raw")))
        }
    }

    /// A compressed input that inflates past --max-output-size (a bomb) is refused in one line,
    /// and leaves no output; `rehost digest` reads a compressed stream as the disk it holds.
    @Test func aBombIsRefusedAndDigestReadsThroughTheCompression() throws {
        let dir = try TemporaryDirectory(prefix: "rehost-rawstreams-bomb")
        let raw = dir.file("disk.raw")
        try SyntheticDisk.make(at: raw, size: 64 << 20, seed: 3)
        for suffix in ["gz", "xz", "zst"] {
            let packed = dir.file("disk.raw.\(suffix)")
            try Command.runRehost(["export", raw, "-o", packed]).requireSuccess()
            let out = dir.file("out-\(suffix).raw")
            let result = try Command.runRehost(["export", packed, "-o", out, "--max-output-size", "8M"])
            #expect(result.status == 1, "\(suffix): status \(result.status) \(result.stderr)")
            #expect(result.stderr.split(separator: "\n").count == 1 && result.stderr.contains("--max-output-size"), "\(suffix): \(result.stderr)")
            #expect(!FileManager.default.fileExists(atPath: out))
            let plain = try Command.runRehost(["digest", raw]).requireSuccess().stdout.split(separator: " ").first
            let digest = try Command.runRehost(["digest", packed]).requireSuccess().stdout.split(separator: " ").first
            #expect(plain != nil && plain == digest, "\(suffix): \(String(describing: plain)) against \(String(describing: digest))")
        }
        // Nothing left behind in the directory but the inputs.
        let left = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
        #expect(left == ["disk.raw", "disk.raw.gz", "disk.raw.xz", "disk.raw.zst"], "\(left)")
    }
}
