import Foundation

/// The unit of work an engine runs for each index: `rehost batch run MANIFEST --results DIR`,
/// which takes its index from the engine's environment.
public struct EngineJob: Sendable {
    public var rehost: String
    public var manifest: String
    public var results: String
    /// Entry indices to run, as `--array=` takes them.
    public var indices: String
    public var count: Int
    /// How many run at once.
    public var parallelism: Int
    /// Times a transient failure (exit 75) is tried again.
    public var retries: Int
    public var contentDigest: Bool

    public init(rehost: String, manifest: String, results: String, indices: String, count: Int, parallelism: Int, retries: Int, contentDigest: Bool) {
        self.rehost = rehost
        self.manifest = manifest
        self.results = results
        self.indices = indices
        self.count = count
        self.parallelism = parallelism
        self.retries = retries
        self.contentDigest = contentDigest
    }

    var runArguments: [String] {
        ["batch", "run", manifest, "--results", results] + (contentDigest ? ["--input-digest"] : [])
    }

    /// A name engines accept (DNS-1123 label for Kubernetes, fine for Slurm too).
    public var jobName: String {
        let stem = ((manifest as NSString).lastPathComponent as NSString).deletingPathExtension.lowercased()
        let cleaned = String(stem.map { $0.isASCII && ($0.isLetter || $0.isNumber) ? $0 : "-" })
            .split(separator: "-").joined(separator: "-")
        // Cut to 52 (room for the pods' suffixes), it must still end with a letter or digit.
        var name = String(("rehost-" + (cleaned.isEmpty ? "batch" : cleaned)).prefix(52))
        while name.hasSuffix("-") { name.removeLast() }
        return name
    }
}

/// `rehost batch emit slurm`: an sbatch job-array script.
public enum SlurmScript {
    /// Slurm's default MaxArraySize: indices 0-1000.
    public static let defaultMaxArrayIndex = 1000

    public static func render(_ job: EngineJob, logDirectory: String, memory: String, time: String?, partition: String?, retryDelay: Int = 30) -> String {
        let command = ([job.rehost] + job.runArguments).map(shellQuoted).joined(separator: " ")
        var lines = [
            "#!/bin/bash",
            "# Written by `rehost batch emit slurm`. Submit: sbatch THIS-FILE",
            "# One array task per manifest entry (SLURM_ARRAY_TASK_ID is its index); finished entries are",
            "# skipped, so submitting again is always safe. Exit codes: 0 done or skipped; 1 failed, do not",
            "# retry (bad input: see the record); 64 a wrong entry; 75 a transient fault (I/O, space,",
            "# network, a signal), tried again here up to \(job.retries) time\(job.retries == 1 ? "" : "s"), \(retryDelay) s apart and more each time.",
            "# What is left afterwards:",
            "#   \(shellQuoted(job.rehost)) batch status \(shellQuoted(job.manifest)) --results \(shellQuoted(job.results))",
            "# and to run it:",
            "#   sbatch --array=$(\(shellQuoted(job.rehost)) batch status \(shellQuoted(job.manifest)) --results \(shellQuoted(job.results)) --to-do) THIS-FILE",
            "#SBATCH --job-name=\(job.jobName)",
            "#SBATCH --array=\(job.indices)%\(job.parallelism)",
            "#SBATCH --output=\(logDirectory)/%A_%a.log",
            "#SBATCH --open-mode=append",
            "#SBATCH --ntasks=1",
            "#SBATCH --cpus-per-task=1",
            "#SBATCH --mem=\(memory)",
        ]
        if let time { lines.append("#SBATCH --time=\(time)") }
        if let partition { lines.append("#SBATCH --partition=\(partition)") }
        lines += [
            "set -u",
            "attempt=0",
            "while :; do",
            "  \(command)",
            "  status=$?",
            "  if [ \"$status\" -ne 75 ] || [ \"$attempt\" -ge \(job.retries) ]; then exit \"$status\"; fi",
            "  attempt=$((attempt + 1))",
            "  echo \"rehost batch: index ${SLURM_ARRAY_TASK_ID}: transient failure, attempt $((attempt + 1)) in $((attempt * \(retryDelay))) s\"",
            "  sleep $((attempt * \(retryDelay)))",
            "done",
        ]
        return lines.joined(separator: "\n") + "\n"
    }

    static func shellQuoted(_ text: String) -> String {
        if !text.isEmpty, text.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "/._-+=:,@%".contains($0)) }) { return text }
        return "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}

/// `rehost batch emit kubernetes`: an Indexed Job. Not run against a live API server here: checked
/// against the API's schema offline (README).
public enum KubernetesJob {
    public static func render(_ job: EngineJob, image: String, claim: String, memory: String) -> String {
        // The manifest's directory is the volume, mounted at /data: entries' relative paths hold.
        let manifestName = (job.manifest as NSString).lastPathComponent
        let resultsName = job.results.hasPrefix(((job.manifest as NSString).deletingLastPathComponent) + "/")
            ? String(job.results.dropFirst((job.manifest as NSString).deletingLastPathComponent.count + 1)) : (job.results as NSString).lastPathComponent
        var arguments = ["batch", "run", "/data/\(manifestName)", "--results", "/data/\(resultsName)"]
        if job.contentDigest { arguments.append("--input-digest") }
        let quoted = arguments.map(yamlString).joined(separator: ", ")
        return """
            # Written by `rehost batch emit kubernetes`: one pod per manifest entry (JOB_COMPLETION_INDEX
            # is its index). The volume \(claim) holds the manifest's directory (inputs, outputs, records).
            # Exit 1 and 64 fail the index at once (bad input or entry); 75 (transient) is retried up to
            # backoffLimitPerIndex times. Finished entries are skipped, so the Job can be run again.
            # Checked offline against the Kubernetes API schema; not run against a live cluster by
            # Rehost's tests.
            apiVersion: batch/v1
            kind: Job
            metadata:
              name: \(job.jobName)
              labels:
                app.kubernetes.io/name: rehost
            spec:
              completionMode: Indexed
              completions: \(job.count)
              parallelism: \(job.parallelism)
              backoffLimitPerIndex: \(job.retries)
              maxFailedIndexes: \(job.count)
              podReplacementPolicy: Failed
              podFailurePolicy:
                rules:
                - action: FailIndex
                  onExitCodes:
                    containerName: rehost
                    operator: In
                    values: [1, 64]
              template:
                metadata:
                  labels:
                    app.kubernetes.io/name: rehost
                spec:
                  restartPolicy: Never
                  automountServiceAccountToken: false
                  securityContext:
                    runAsNonRoot: true
                    runAsUser: 65534
                    runAsGroup: 65534
                    fsGroup: 65534
                    seccompProfile:
                      type: RuntimeDefault
                  containers:
                  - name: rehost
                    image: \(yamlString(image))
                    args: [\(quoted)]
                    env:
                    - name: TMPDIR
                      value: /tmp
                    resources:
                      requests:
                        cpu: "1"
                        memory: \(yamlString(memory))
                    securityContext:
                      allowPrivilegeEscalation: false
                      readOnlyRootFilesystem: true
                      privileged: false
                      capabilities:
                        drop: [ALL]
                    volumeMounts:
                    - name: data
                      mountPath: /data
                    - name: tmp
                      mountPath: /tmp
                  volumes:
                  - name: data
                    persistentVolumeClaim:
                      claimName: \(yamlString(claim))
                  - name: tmp
                    emptyDir: {}

            """
    }

    /// A YAML double-quoted scalar (JSON's string syntax is valid YAML).
    static func yamlString(_ text: String) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .withoutEscapingSlashes
        let data = try? encoder.encode(text)
        return data.map { String(decoding: $0, as: UTF8.self) } ?? "\"\""
    }
}
