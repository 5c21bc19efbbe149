import Foundation
import Testing
import TestSupport

/// `rehost batch emit`: the Kubernetes Indexed Job checked against the API's schema offline (no
/// API server runs here), and the Slurm script's array following the batch's status.
struct BatchEmitTests {
    @Test func theKubernetesJobPassesTheAPISchemaCheckAndRunsUnprivileged() throws {
        let fleet = try BatchFleet(good: [])
        try fleet.writeManifest((0..<12).map { "{\"id\": \"vm\($0)\", \"input\": \"in/vm\($0).img\", \"outputs\": [\"out/vm\($0).qcow2\"]}" })
        let result = try fleet.batch(["emit", "kubernetes", fleet.manifest, "--image", "registry.example/rehost:0.1.0", "--claim", "fleet-data",
                                      "--parallel", "3", "--retries", "2"])
        #expect(result.status == 0, "\(result.stderr)")
        let yaml = result.stdout
        let check = try KubernetesValidator.validate(yaml: yaml)
        #expect(check.ok, "\(check.lines)\n\(yaml)")
        for line in ["completionMode: Indexed", "completions: 12", "parallelism: 3", "backoffLimitPerIndex: 2", "maxFailedIndexes: 12",
                     "values: [1, 64]", "runAsNonRoot: true", "runAsUser: 65534", "readOnlyRootFilesystem: true", "allowPrivilegeEscalation: false",
                     "drop: [ALL]", "claimName: \"fleet-data\"", "image: \"registry.example/rehost:0.1.0\"",
                     "args: [\"batch\", \"run\", \"/data/fleet.jsonl\", \"--results\", \"/data/fleet.results\"]"] {
            #expect(yaml.contains(line), "\(line) missing from\n\(yaml)")
        }
        // The schema check can fail: the same Job with a misspelt field does.
        let broken = try KubernetesValidator.validate(yaml: yaml.replacingOccurrences(of: "backoffLimitPerIndex:", with: "backoffLimitPerIndx:"))
        #expect(!broken.ok && broken.lines.contains { $0.contains("backoffLimitPerIndx") }, "\(broken.lines)")

        // The pods see only the volume: a path outside the manifest's directory is refused.
        try fleet.writeManifest(["{\"id\": \"a\", \"input\": \"/etc/hostname\", \"outputs\": [\"out/a.qcow2\"]}"])
        let outside = try fleet.batch(["emit", "kubernetes", fleet.manifest, "--image", "rehost:0.1.0"])
        #expect(outside.status == 64 && outside.stderr.contains("/etc/hostname: outside the manifest's directory"), "\(outside.stderr)")
    }

    @Test func theSlurmArrayCoversWhatIsLeftToDo() throws {
        let fleet = try BatchFleet(good: ["a", "b"])
        try fleet.writeManifest(ids: ["a", "b", "c"])
        let script = fleet.directory.file("fleet.sbatch")
        #expect(try fleet.batch(["emit", "slurm", fleet.manifest, "-o", script]).status == 0)
        #expect(try String(contentsOfFile: script, encoding: .utf8).contains("#SBATCH --array=0-2%4\n"))
        #expect(try Command.run("bash", ["-n", script]).status == 0)

        _ = try fleet.batch(["run", fleet.manifest, "--index", "1"])
        #expect(try fleet.batch(["emit", "slurm", fleet.manifest, "-o", script]).status == 0)
        let text = try String(contentsOfFile: script, encoding: .utf8)
        #expect(text.contains("#SBATCH --array=0,2%4\n") && text.contains("#SBATCH --output=\(fleet.results)/logs/%A_%a.log"), "\(text)")
        #expect(try fleet.batch(["emit", "slurm", fleet.manifest, "--all"]).stdout.contains("#SBATCH --array=0-2%4\n"))
        let tooMany = try fleet.batch(["emit", "slurm", fleet.manifest, "--all", "--max-array-index", "1"])
        #expect(tooMany.status == 64 && tooMany.stderr.contains("MaxArraySize"), "\(tooMany.stderr)")
    }
}
