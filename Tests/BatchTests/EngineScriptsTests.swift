@testable import Batch
import Foundation
import Testing
import TestSupport

@Suite struct EngineScriptsTests {
    static func job(rehost: String = "/usr/local/bin/rehost", manifest: String, results: String, retries: Int = 3) -> EngineJob {
        EngineJob(rehost: rehost, manifest: manifest, results: results, indices: "0-3,7", count: 8, parallelism: 4, retries: retries, contentDigest: true)
    }

    @Test func jobNamesAreDNSLabels() {
        #expect(Self.job(manifest: "/x/My Fleet_2026.jsonl", results: "/x/r").jobName == "rehost-my-fleet-2026")
        #expect(Self.job(manifest: "/x/--.jsonl", results: "/x/r").jobName == "rehost-batch")
        #expect(Self.job(manifest: "fleet", results: "r").jobName == "rehost-fleet")
        let long = Self.job(manifest: "/x/" + String(repeating: "a", count: 100) + ".jsonl", results: "/x/r").jobName
        #expect(long.count == 52 && long.hasPrefix("rehost-aaa"))
        // Cut at 52, it still ends with a letter or digit (a DNS-1123 label must).
        let cut = Self.job(manifest: "/x/" + String(repeating: "a", count: 44) + "-bbbbbbbbbb.jsonl", results: "/x/r").jobName
        #expect(cut == "rehost-" + String(repeating: "a", count: 44))
        for name in [long, cut] { #expect(name.last.map { $0.isLetter || $0.isNumber } == true, "\(name)") }
    }

    @Test func slurmScriptHasTheArrayLogsAndRetries() throws {
        let job = Self.job(manifest: "/data/my fleet/it's.jsonl", results: "/data/my fleet/it's.results")
        let script = SlurmScript.render(job, logDirectory: "/logs/batch", memory: "4G", time: "02:00:00", partition: "convert")
        let lines = script.split(separator: "\n").map(String.init)
        #expect(lines.first == "#!/bin/bash")
        for line in ["#SBATCH --array=0-3,7%4", "#SBATCH --output=/logs/batch/%A_%a.log", "#SBATCH --mem=4G", "#SBATCH --time=02:00:00",
                     "#SBATCH --partition=convert", "#SBATCH --job-name=rehost-it-s", "#SBATCH --open-mode=append"] {
            #expect(lines.contains(line), "\(line)")
        }
        #expect(lines.contains(#"  /usr/local/bin/rehost batch run '/data/my fleet/it'\''s.jsonl' --results '/data/my fleet/it'\''s.results' --input-digest"#))
        #expect(lines.contains(#"  if [ "$status" -ne 75 ] || [ "$attempt" -ge 3 ]; then exit "$status"; fi"#))
        // Every #SBATCH line comes before the first command, or sbatch ignores it.
        let lastDirective = try #require(lines.lastIndex { $0.hasPrefix("#SBATCH") })
        let firstCommand = try #require(lines.firstIndex { !$0.hasPrefix("#") })
        #expect(lastDirective < firstCommand)
        let bare = SlurmScript.render(job, logDirectory: "/l", memory: "1G", time: nil, partition: nil)
        #expect(!bare.contains("--time") && !bare.contains("--partition"))
        #expect(SlurmScript.shellQuoted("plain/path-1.jsonl") == "plain/path-1.jsonl")
        #expect(SlurmScript.shellQuoted("") == "''")
        #expect(SlurmScript.shellQuoted("$(rm -rf /)") == "'$(rm -rf /)'")

        let directory = try TemporaryDirectory(prefix: "rehost-batch")
        try write(script, to: directory.file("job.sh"))
        let check = try Command.run("bash", ["-n", directory.file("job.sh")])
        #expect(check.status == 0, "\(check.stderr)")
    }

    /// The script run with a stand-in rehost that writes down its arguments and exits as told.
    func runScript(exit code: Int32, retries: Int) throws -> (status: Int32, calls: [[String]]) {
        let directory = try TemporaryDirectory(prefix: "rehost-batch")
        let fake = directory.file("bin dir/rehost")
        try write("#!/bin/sh\nprintf '%s\\n' \"$@\" >> \"$(dirname \"$0\")/calls\"\necho --- >> \"$(dirname \"$0\")/calls\"\nexit \(code)\n", to: fake)
        #expect(chmod(fake, 0o755) == 0)
        let job = Self.job(rehost: fake, manifest: "/data/my fleet/it's \"quoted\".jsonl", results: "/r $HOME`x`", retries: retries)
        try write(SlurmScript.render(job, logDirectory: "/l", memory: "1G", time: nil, partition: nil), to: directory.file("job.sh"))
        let result = try Command.run("bash", [directory.file("job.sh")], environment: ["SLURM_ARRAY_TASK_ID": "3"], timeout: .seconds(20))
        let calls = (try? String(contentsOfFile: directory.file("bin dir/calls"), encoding: .utf8)) ?? ""
        return (result.status, calls.components(separatedBy: "---\n").filter { !$0.isEmpty }.map { $0.split(separator: "\n").map(String.init) })
    }

    @Test func slurmScriptPassesArgumentsIntactAndStopsOnAPermanentFailure() throws {
        let expected = ["batch", "run", "/data/my fleet/it's \"quoted\".jsonl", "--results", "/r $HOME`x`", "--input-digest"]
        let permanent = try runScript(exit: 1, retries: 3)
        #expect(permanent.status == 1)
        #expect(permanent.calls == [expected])
        let usage = try runScript(exit: 64, retries: 3)
        #expect(usage.status == 64 && usage.calls.count == 1)
        let noRetries = try runScript(exit: 75, retries: 0)
        #expect(noRetries.status == 75 && noRetries.calls == [expected])
        let done = try runScript(exit: 0, retries: 2)
        #expect(done.status == 0 && done.calls.count == 1)
    }

    @Test func kubernetesJobIsIndexedAndLockedDown() {
        let job = Self.job(manifest: "/srv/fleets/My Fleet_2026.jsonl", results: "/srv/fleets/state/My Fleet_2026.results")
        // JSON's "\/" for "/" is a YAML 1.2 escape too; read past it.
        let yaml = KubernetesJob.render(job, image: "registry.example/rehost:1.0", claim: "fleet-data", memory: "4Gi")
            .replacingOccurrences(of: "\\/", with: "/")
        for line in ["  name: rehost-my-fleet-2026", "  completionMode: Indexed", "  completions: 8", "  parallelism: 4", "  backoffLimitPerIndex: 3",
                     "  maxFailedIndexes: 8", "        values: [1, 64]", "        runAsNonRoot: true", "          readOnlyRootFilesystem: true",
                     "          allowPrivilegeEscalation: false", "            drop: [ALL]", "      restartPolicy: Never",
                     #"        image: "registry.example/rehost:1.0""#, #"          claimName: "fleet-data""#, #"            memory: "4Gi""#,
                     #"        args: ["batch", "run", "/data/My Fleet_2026.jsonl", "--results", "/data/state/My Fleet_2026.results", "--input-digest"]"#] {
            #expect(yaml.contains("\n" + line + "\n"), "\(line)")
        }
        // Results outside the manifest's directory: by name, under /data.
        var outside = job
        outside.results = "/elsewhere/res"
        outside.contentDigest = false
        let other = KubernetesJob.render(outside, image: "i", claim: "c", memory: "1Gi").replacingOccurrences(of: "\\/", with: "/")
        #expect(other.contains(#"args: ["batch", "run", "/data/My Fleet_2026.jsonl", "--results", "/data/res"]"#))
        #expect(KubernetesJob.yamlString("a\"b\\c") == #""a\"b\\c""#)
        #expect(!yaml.contains("\\"))
        // No tabs (YAML forbids them for indentation).
        #expect(!yaml.contains("\t"))
    }
}
