import Foundation
import Testing
import TestSupport

/// The containment rule end to end, as `nobody`: a VMDK descriptor that names a file outside its
/// own directory is refused before the file is opened (strace shows no open of it), with one line
/// naming the option; with `--allow-external-files` the file is read and listed in the report.
struct ExternalFilesTests {
    /// `images/disk.vmdk` whose one FLAT extent is `../outside/secret.raw`, a 16 MiB disk.
    struct Layout {
        let root: TemporaryDirectory
        var descriptor: String { root.file("images/disk.vmdk") }
        var secret: String { root.file("outside/secret.raw") }
        var outputs: String { root.file("out") }

        init() throws {
            root = try TemporaryDirectory(prefix: "rehost-external-files")
            for directory in ["images", "outside", "out", "trace"] {
                try FileManager.default.createDirectory(atPath: root.file(directory), withIntermediateDirectories: true)
            }
            try SyntheticDisk.make(at: secret, size: 16 << 20, seed: 3)
            let text = ["# Disk DescriptorFile", "version=1", "CID=12345678", "parentCID=ffffffff",
                        "createType=\"monolithicFlat\"", "RW 32768 FLAT \"../outside/secret.raw\" 0", ""]
            try Data(text.joined(separator: "\n").utf8).write(to: URL(fileURLWithPath: descriptor))
            // `nobody` reads the inputs and writes the outputs.
            try Command.run("chmod", ["-R", "a+rX", root.path]).requireSuccess()
            try Command.run("chmod", ["a+rwx", outputs, root.file("trace")]).requireSuccess()
        }
    }

    @Test func anExtentOutsideTheDescriptorsDirectoryIsNeverOpened() throws {
        let layout = try Layout()
        let output = layout.outputs + "/disk.qcow2"
        let trace = layout.root.file("trace/calls")
        let result = try Command.run("strace", ["-f", "-qq", "-e", "trace=open,openat,openat2,stat,newfstatat,statx,readlink,readlinkat",
                                                "-o", trace, try Command.rehostExecutable(), "export", layout.descriptor, "-o", output],
                                     asUser: "nobody")
        #expect(result.status == 1, "\(result.stdout)\(result.stderr)")
        let lines = result.stderr.split(separator: "\n")
        #expect(lines.count == 1, "\(result.stderr)")
        #expect(result.stderr.contains("extent line 6 (byte 92) names \"../outside/secret.raw\", a path outside the image's own directory"),
                "\(result.stderr)")
        #expect(result.stderr.contains("--allow-external-files"), "\(result.stderr)")
        let calls = try String(contentsOfFile: trace, encoding: .utf8)
        #expect(calls.contains("disk.vmdk"), "the trace shows the descriptor being read")
        #expect(!calls.contains("secret.raw"), "the outside file was looked at:\n\(calls.split(separator: "\n").filter { $0.contains("secret") }.joined(separator: "\n"))")
        #expect(try FileManager.default.contentsOfDirectory(atPath: layout.outputs).isEmpty, "nothing is left behind")
    }

    /// `rehost upload` reads its input with the same rule, before any request is made: the
    /// outside file is never opened and nothing is sent (strace sees no connect).
    @Test func anUploadRefusesTheDescriptorBeforeAnyRequest() throws {
        let layout = try Layout()
        let trace = layout.root.file("trace/upload")
        for target in ["glance", "aws-ebs"] {
            let result = try Command.run("strace", ["-f", "-qq", "-e", "trace=openat,connect", "-o", trace,
                                                    try Command.rehostExecutable(), "upload", layout.descriptor, "--to", target],
                                         environment: ["OS_AUTH_URL": "http://127.0.0.1:9/v3", "OS_USERNAME": "u", "OS_PASSWORD": "p",
                                                       "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret",
                                                       "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": "http://127.0.0.1:9"],
                                         asUser: "nobody")
            #expect(result.status == 1, "\(target): \(result.stderr)")
            #expect(result.stderr.contains("a path outside the image's own directory"), "\(target): \(result.stderr)")
            let calls = try String(contentsOfFile: trace, encoding: .utf8)
            #expect(!calls.contains("secret.raw"), "\(target): the outside file was opened")
            #expect(!calls.contains("connect("), "\(target): a connection was made")
        }
    }

    @Test func allowedExternalFilesAreReadAndListed() throws {
        let layout = try Layout()
        let output = layout.outputs + "/disk.qcow2"
        let json = try Command.runRehost(["export", layout.descriptor, "-o", output, "--allow-external-files", "--json"], asUser: "nobody")
        #expect(json.status == 0, "\(json.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(json.stdoutBytes)) as? [String: Any]
        #expect(report?["inputFiles"] as? [String] == [layout.descriptor, layout.secret])
        let compare = try Command.run("qemu-img", ["compare", "-f", "raw", "-F", "qcow2", layout.secret, output])
        #expect(compare.status == 0, "\(compare.stdout)\(compare.stderr)")
        let text = try Command.runRehost(["export", layout.descriptor, "-o", layout.outputs + "/disk.vdi", "--allow-external-files", "-q"],
                                         asUser: "nobody")
        #expect(text.status == 0, "\(text.stderr)")
        #expect(text.stdout.contains("  also read:    \(layout.secret)\n"), "\(text.stdout)")
    }
}
