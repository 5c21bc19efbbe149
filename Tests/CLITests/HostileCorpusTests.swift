import Foundation
import Testing
import TestSupport

/// Every image in the hostile corpus (Tests/Tools/make-hostile-corpus.py: absurd header fields,
/// shared clusters and grains, tables past the end of the file, a gzip bomb, truncated files of
/// every format, files a descriptor must not open) is refused the same way: a non-zero exit, not
/// by a signal or the clock, one line on standard error that says what is wrong, nothing opened
/// outside the files of the case, nothing left in the output or scratch directory.
///
/// Each case runs as `nobody`, under `prlimit --as` (2 GiB of address space: a table sized from
/// a header cannot be allocated), under `timeout 60`, and under `strace -f` recording every
/// open, openat and openat2. The opens of the rehost process (those after its execve; setpriv
/// and prlimit exec in place, so one process runs before it) must name one of:
/// - the case's own files (its manifest entry lists them; not the corpus directory, which holds
///   the files other cases must not reach, e.g. `../outside.raw`);
/// - the case's output directory and its scratch directory ($TMPDIR);
/// - what the dynamic loader and runtimes read: /etc/ld.so.cache, /etc/ld.so.preload, /lib,
///   /lib64, /usr/lib, /usr/lib64, /usr/share/locale (glibc's locale.alias), the directories
///   of the libraries `ldd` finds for the binary (the Swift runtime, the build directory), and
///   what a successful run reads besides (/etc/localtime, /usr/share/zoneinfo, OpenSSL's
///   /etc/ssl/openssl.cnf for the digests): a case that wrongly succeeds fails on its status,
///   not on these;
/// - the process's own /proc/<pid>/ (any pid strace saw in the case or a clone returned: its
///   threads) and
///   /proc/self/, /sys/devices/system/cpu/ and /sys/fs/cgroup/ (Dispatch sizes its thread pool
///   from them), /dev/null and /dev/urandom.
/// Paths are compared after `standardizingPath`, which also resolves symbolic links: an open
/// through a link beside the descriptor that points outside counts as the outside path.
/// A case marked `pending` in the manifest (a refusal still being built; none today) is run and
/// must not crash or hang; its message and opens are not checked until the refusal is in.
struct HostileCorpusTests {
    struct Case: Decodable {
        var name: String
        var input: String
        var files: [String]
        var command: String
        var output: String?
        var args: [String]
        var expect: String
        var pending: String?
    }

    struct Manifest: Decodable { var cases: [Case] }

    @Test func everyHostileImageIsRefusedCleanly() throws {
        let strace = try Command.require("strace")
        let prlimit = try Command.require("prlimit")
        let timeout = try Command.require("timeout")
        let setpriv = try Command.require("setpriv")
        let rehost = try Command.rehostExecutable()

        let root = try TemporaryDirectory(prefix: "rehost-hostile")
        try root.makeWorldWritable()
        let corpus = root.file("corpus")
        try Command.run("/usr/bin/python3", ["\(Fixture.repositoryRoot)/Tests/Tools/make-hostile-corpus.py", corpus],
                        timeout: .seconds(120)).requireSuccess()
        try Command.run("chmod", ["-R", "a+rX", corpus]).requireSuccess()
        let manifest = try JSONDecoder().decode(Manifest.self, from: Data(contentsOf: URL(fileURLWithPath: "\(corpus)/manifest.json")))
        #expect(manifest.cases.count >= 40, "the corpus lost cases: \(manifest.cases.count)")

        let libraryDirectories = try Self.libraryDirectories(of: rehost)
        for testCase in manifest.cases {
            let work = root.file("run-\(testCase.name)")
            let output = "\(work)/out", scratch = "\(work)/tmp", trace = "\(work)/strace.log"
            for directory in [work, output, scratch] {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                        attributes: [.posixPermissions: 0o777])
            }
            var arguments = [testCase.command, "\(corpus)/\(testCase.input)"]
            if let name = testCase.output { arguments += ["-o", "\(output)/\(name)"] }
            arguments += testCase.args
            let result = try Command.run(timeout, ["-s", "KILL", "60",
                                                   strace, "-f", "-qq", "-e", "trace=open,openat,openat2,execve,clone,clone3,fork,vfork", "-o", trace,
                                                   setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--",
                                                   prlimit, "--as=\(2 << 30)", "--", rehost] + arguments,
                                         environment: ["TMPDIR": scratch, "LC_ALL": "C"], timeout: .seconds(90),
                                         currentDirectory: scratch)
            let label = "\(testCase.name): \(testCase.command) \(testCase.input)"
            #expect(!result.timedOut && result.status != 124 && result.status < 128,
                    "\(label) ended by a signal or the clock (status \(result.status)):\n\(result.stderr.prefix(2000))")
            if let pending = testCase.pending {
                print("hostile corpus: \(testCase.name) pending (\(pending)); status \(result.status): \(result.stderr.prefix(300))")
                continue
            }
            #expect(result.status != 0, "\(label) succeeded")
            let lines = result.stderr.split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.isEmpty }
            #expect(lines.count == 1 && result.stderr.hasSuffix("\n"), "\(label): expected one line on stderr, got:\n\(result.stderr.prefix(2000))")
            // Without the input's path, which may hold the very word expected.
            let message = result.stderr.replacingOccurrences(of: "\(corpus)/\(testCase.input)", with: "INPUT")
            #expect(message.contains(testCase.expect), "\(label): \(result.stderr) should contain \"\(testCase.expect)\"")
            #expect(result.stderr.hasPrefix("rehost: error: "), "\(label): \(result.stderr)")

            let allowedFiles = Set((testCase.files.map { "\(corpus)/\($0)" } + [output, scratch]).map { ($0 as NSString).standardizingPath })
            let escapes = try Self.opens(in: trace, after: rehost).filter { open in
                !Self.allowed(open.path, pids: open.pids, workingDirectory: scratch, files: allowedFiles,
                              directories: [output, scratch], libraries: libraryDirectories)
            }
            #expect(escapes.isEmpty, "\(label) opened paths outside its files: \(escapes.map(\.path))")
            for directory in [output, scratch] {
                let left = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
                #expect(left.isEmpty, "\(label) left \(left) in \(directory)")
            }
        }
    }

    @Test func maxOutputSizeMustBeASize() throws {
        for command in [["inspect", "/nonexistent.qcow2"], ["export", "/nonexistent.qcow2", "-o", "/tmp/never.qcow2"],
                        ["convert", "/nonexistent.qcow2", "-o", "/tmp/never.raw"]] {
            let result = try Command.runRehost(command + ["--max-output-size", "lots"])
            #expect(result.status == 64, "ArgumentParser's usage-error status: \(result.stderr)")
            #expect(result.stderr.contains("--max-output-size lots: expected a size"), "\(result.stderr)")
        }
    }

    /// The paths the traced rehost process (and its threads and children) asked to open, from
    /// the first execve of `executable` on (relative ones as given: `allowed` resolves them
    /// against the working directory). `pids` holds every pid seen after the execve.
    static func opens(in trace: String, after executable: String) throws -> [(path: String, pids: Set<String>)] {
        let text = try String(contentsOfFile: trace, encoding: .utf8)
        var started = false
        var pids = Set<String>()
        var paths: [String] = []
        for line in text.split(separator: "\n") {
            // "PID  call(...)": strace pads the pid to five columns.
            let fields = line.split(separator: " ", maxSplits: 1)
            guard fields.count == 2 else { continue }
            let call = fields[1].drop { $0 == " " }
            if !started {
                if call.hasPrefix("execve(\"\(executable)\"") { started = true }
                continue
            }
            pids.insert(String(fields[0]))
            // A thread or child that never opens anything is still named by the clone that made
            // it (its /proc/<tid>/ may be read by another thread).
            let spawns = ["clone", "fork", "vfork"].contains { call.hasPrefix($0) || call.hasPrefix("<... \($0)") }
            if spawns,
               let equals = call.range(of: ") = ", options: .backwards) {
                let value = call[equals.upperBound...].prefix { $0.isNumber }
                if !value.isEmpty { pids.insert(String(value)) }
            }
            guard call.hasPrefix("open"), let quote = call.firstIndex(of: "\"") else { continue }
            let rest = call[call.index(after: quote)...]
            guard let end = rest.firstIndex(of: "\"") else { continue }
            paths.append(String(rest[..<end]))
        }
        #expect(started, "no execve of \(executable) in \(trace)")
        return paths.map { ($0, pids) }
    }

    static func allowed(_ path: String, pids: Set<String>, workingDirectory: String, files: Set<String>,
                        directories: [String], libraries: [String]) -> Bool {
        let absolute = path.hasPrefix("/") ? path : "\(workingDirectory)/\(path)"
        let normalized = (absolute as NSString).standardizingPath
        if files.contains(normalized) { return true }
        if directories.contains(where: { normalized.hasPrefix($0 + "/") }) { return true }
        let exact: Set<String> = ["/etc/ld.so.cache", "/etc/ld.so.preload", "/etc/localtime", "/etc/ssl/openssl.cnf",
                                  "/dev/null", "/dev/urandom"]
        if exact.contains(normalized) { return true }
        var prefixes = ["/lib/", "/lib64/", "/usr/lib/", "/usr/lib64/", "/usr/share/locale/", "/usr/share/zoneinfo/",
                        "/proc/self/", "/sys/devices/system/cpu/", "/sys/fs/cgroup/"]
        prefixes += pids.map { "/proc/\($0)/" }
        prefixes += libraries.map { $0 + "/" }
        return prefixes.contains { normalized.hasPrefix($0) }
    }

    /// The directories `ldd` resolves the binary's libraries to, and the binary's own directory.
    static func libraryDirectories(of executable: String) throws -> [String] {
        let ldd = try Command.run("ldd", [executable]).requireSuccess()
        let real = URL(fileURLWithPath: executable).resolvingSymlinksInPath().path
        var directories = Set([(executable as NSString).deletingLastPathComponent, (real as NSString).deletingLastPathComponent])
        for line in ldd.stdout.split(separator: "\n") {
            guard let arrow = line.range(of: "=> /") else { continue }
            let path = line[line.index(before: arrow.upperBound)...].split(separator: " ").first.map(String.init) ?? ""
            directories.insert((path as NSString).deletingLastPathComponent)
        }
        return directories.sorted()
    }
}
