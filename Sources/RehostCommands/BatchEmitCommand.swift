import ArgumentParser
import Batch
import Foundation
import ImageCore

struct BatchEmitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "emit",
        abstract: "Write the job for a cluster engine: a Slurm array script or a Kubernetes Indexed Job.",
        subcommands: [Slurm.self, Kubernetes.self])

    /// What both engines' jobs take.
    struct JobOptions: ParsableArguments {
        @OptionGroup var batch: BatchManifestOptions

        @Option(help: ArgumentHelp("Tasks running at once.", valueName: "n"))
        var parallel: Int = 4

        @Option(help: ArgumentHelp("Times an entry that failed with a transient fault (exit 75) is tried again.", valueName: "n"))
        var retries: Int = 2

        @Option(help: ArgumentHelp("Memory each task asks for (Slurm --mem, Kubernetes requests).", valueName: "size"))
        var memory: String = "1536M"

        @Flag(name: .customLong("input-digest"), help: "The tasks put each input's SHA-256 in the entries' keys.")
        var inputDigest = false

        @Option(name: .shortAndLong, help: ArgumentHelp("Write it to this file instead of standard output.", valueName: "file"))
        var output: String?

        func validate() throws {
            if parallel < 1 { throw ValidationError("--parallel \(parallel): at least 1") }
            if retries < 0 { throw ValidationError("--retries \(retries): 0 or more") }
        }

        func job(indices: String, manifest: BatchManifest, rehost: String) -> EngineJob {
            let absolute = manifest.path.hasPrefix("/") ? manifest.path : "\(manifest.directory)/\((manifest.path as NSString).lastPathComponent)"
            return EngineJob(rehost: rehost, manifest: absolute, results: batch.resultsDirectory(manifest), indices: indices,
                             count: manifest.entries.count, parallelism: parallel, retries: retries, contentDigest: inputDigest)
        }

        func write(_ text: String) throws {
            guard let output else { return print(text, terminator: "") }
            let file = try AtomicOutput(finalPath: output)
            try file.file.write(Array(text.utf8), at: 0)
            try file.commit()
        }
    }

    struct Slurm: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write an sbatch job-array script: one task per entry still to do.",
            discussion: """
                The array covers the entries still to do (all of them for a new batch; --all for every \
                entry), --parallel at a time (`%` throttle). Each task runs `rehost batch run MANIFEST \
                --results DIR` for SLURM_ARRAY_TASK_ID, tries a transient failure (exit 75) again up to \
                --retries times, and logs to DIR/logs/JOB_TASK.log. Submitting it again is safe: \
                finished entries are skipped. Indices above Slurm's MaxArraySize (1001 by default) are \
                refused: submit such a manifest in parts with `rehost batch run --index-offset`.
                """)

        @OptionGroup var options: JobOptions

        @Flag(help: "Every entry, not only those still to do.")
        var all = false

        @Option(help: ArgumentHelp("The rehost the tasks run, as the compute nodes see it. Default: this one.", valueName: "path"))
        var rehost: String?

        @Option(help: ArgumentHelp("sbatch --time for each task.", valueName: "time"))
        var time: String?

        @Option(help: ArgumentHelp("sbatch --partition.", valueName: "name"))
        var partition: String?

        @Option(name: .customLong("retry-delay"), help: ArgumentHelp("Seconds before the first retry of a transient failure; each further retry waits that much longer.", valueName: "seconds"))
        var retryDelay: Int = 30

        @Option(name: .customLong("max-array-index"), help: ArgumentHelp("The cluster's MaxArraySize minus one.", valueName: "n"))
        var maxArrayIndex: Int = SlurmScript.defaultMaxArrayIndex

        func run() throws {
            try runReportingErrors {
                let manifest = try options.batch.load()
                let results = options.batch.resultsDirectory(manifest)
                var indices = manifest.entries.map(\.index)
                if !all, let store = try? ResultStore(directory: results, create: false) {
                    let status = BatchStatus(manifest: manifest, store: store, runner: options.batch.runner(manifest, store: store))
                    indices = status.entries.filter { $0.state == .todo || $0.state == .retry }.map(\.index)
                }
                guard !indices.isEmpty else {
                    printError("rehost: every entry is done or failed for good: nothing to submit (--all for every entry)")
                    throw ExitCode(1)
                }
                if let last = indices.max(), last > maxArrayIndex {
                    printError("rehost: error: index \(last) is above Slurm's MaxArraySize (\(maxArrayIndex + 1)): submit in parts with `rehost batch run --index-offset`, or raise --max-array-index to the cluster's")
                    throw ExitCode(ExitCodes.usage)
                }
                let job = options.job(indices: IndexRanges.format(indices), manifest: manifest, rehost: rehost ?? BatchEngine.executable)
                try FileManager.default.createDirectory(atPath: "\(results)/logs", withIntermediateDirectories: true)
                try options.write(SlurmScript.render(job, logDirectory: "\(results)/logs", memory: options.memory, time: time, partition: partition,
                                                     retryDelay: retryDelay))
            }
        }
    }

    struct Kubernetes: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a Kubernetes Indexed Job: one pod per entry, unprivileged.",
            discussion: """
                completionMode Indexed over every entry, --parallel pods at a time; exit 1 and 64 fail \
                an index at once (podFailurePolicy FailIndex), 75 is retried up to --retries times \
                (backoffLimitPerIndex). The pods run the image (see the Containerfile) as uid 65534, \
                with no privileges, no capabilities and a read-only root; the manifest's directory is \
                the volume --claim, mounted at /data, so entries' paths must be relative to it. It has \
                been checked against the Kubernetes API schema offline, not run against a live cluster.
                """)

        @OptionGroup var options: JobOptions

        @Option(help: ArgumentHelp("The container image with rehost (built from the Containerfile).", valueName: "image"))
        var image: String

        @Option(help: ArgumentHelp("The PersistentVolumeClaim holding the manifest's directory.", valueName: "name"))
        var claim: String = "rehost-data"

        func run() throws {
            try runReportingErrors {
                let manifest = try options.batch.load()
                let results = options.batch.resultsDirectory(manifest)
                let inside = manifest.directory + "/"
                for entry in manifest.entries {
                    for path in entry.inputs + entry.outputs where path.hasPrefix("/") && !path.hasPrefix(inside) {
                        printError("rehost: error: \(manifest.path):\(entry.line): \(path): outside the manifest's directory, which is all the pods see (/data)")
                        throw ExitCode(ExitCodes.usage)
                    }
                }
                guard results.hasPrefix(inside) else {
                    printError("rehost: error: --results \(results): outside the manifest's directory, which is all the pods see (/data)")
                    throw ExitCode(ExitCodes.usage)
                }
                let job = options.job(indices: "0-\(manifest.entries.count - 1)", manifest: manifest, rehost: "rehost")
                try options.write(KubernetesJob.render(job, image: image, claim: claim, memory: options.memory))
            }
        }
    }
}
