import ArgumentParser
import Batch
import Foundation
import ImageCore

#if canImport(Glibc)
import Glibc
#endif

struct BatchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "batch",
        abstract: "Convert many images from a manifest: on this host, or one entry per task of Slurm or Kubernetes.",
        discussion: """
            A manifest is JSON Lines, one image per line; an optional first line gives defaults:

              {"defaults": {"outputs": ["out/{id}.qcow2"], "options": {"target": "kvm", "clean": true}}}
              {"id": "web1", "input": "instances/i-1a2b/root.img"}
              {"id": "db1", "input": "instances/i-3c4d/root.img", "options": {"size": "20G", "skip": ["network"]}}
              {"id": "lvm1", "input": "d1.img", "disks": ["d2.img"], "outputs": ["out/lvm1.vmdk"], "options": {"upload": "glance", "os-cloud": "prod"}}

            Entry N is the N+1-th entry line. "options" are `rehost convert`'s long options without the \
            dashes (a value, true for a flag, false to drop a default's flag, a list to repeat one); \
            relative paths are relative to the manifest's directory, where every entry runs.

            Each entry leaves a result record, RESULTS/ID.json (default RESULTS: MANIFEST-NAME.results \
            beside the manifest), written atomically: its key (inputs' size, mtime and, with \
            --input-digest, SHA-256; the options; the Rehost version), the outputs with their size, \
            time and digests, uploads' ids, times, the engine's task, and the error if any. An entry \
            whose record is current and whose outputs are as recorded is skipped, so running a batch \
            again only does what is left. A lock per entry (RESULTS/ID.lock) keeps two workers off one \
            entry.

            Exit codes of `run`: 0 done or skipped; 1 failed, do not retry (bad input); 64 a wrong \
            manifest, entry or argument; 75 failed, retry (I/O error, out of space, network, a signal, \
            or another worker has the entry).

            Examples:
              rehost batch validate fleet.jsonl
              rehost batch run fleet.jsonl                       # all entries here, a few at a time
              rehost batch run fleet.jsonl --index 7             # one entry (an engine's task)
              rehost batch run fleet.jsonl --shard 2/8           # entries 2, 10, 18, ...
              rehost batch status fleet.jsonl --html status.html
              rehost batch emit slurm fleet.jsonl -o fleet.sbatch && sbatch fleet.sbatch
              sbatch --array=$(rehost batch status fleet.jsonl --to-do) fleet.sbatch
              rehost batch emit kubernetes fleet.jsonl --image registry.example/rehost:0.1.0 --claim fleet-data
            """,
        subcommands: [BatchValidateCommand.self, BatchRunCommand.self, BatchStatusCommand.self, BatchEmitCommand.self])
}

/// What every batch subcommand reads: the manifest and where its records are.
struct BatchManifestOptions: ParsableArguments {
    @Argument(help: ArgumentHelp("The manifest: JSON Lines, one image per line.", valueName: "manifest"))
    var manifest: String

    @Option(help: ArgumentHelp("Defaults for every entry, a JSON object like the manifest's defaults line (over it; entries win).", valueName: "file"))
    var defaults: String?

    @Option(help: ArgumentHelp("The directory of result records. Default: MANIFEST-NAME.results beside the manifest.", valueName: "dir"))
    var results: String?

    func load() throws -> BatchManifest {
        do {
            return try BatchManifest(path: manifest, defaultsFile: defaults)
        } catch let error as ManifestError {
            printError("rehost: error: \(error.description.escapedForTerminal())")
            throw ExitCode(ExitCodes.usage)
        }
    }

    func resultsDirectory(_ manifest: BatchManifest) -> String {
        guard let results else { return manifest.defaultResultsDirectory }
        return results.hasPrefix("/") ? results : FileManager.default.currentDirectoryPath + "/" + results
    }

    func runner(_ manifest: BatchManifest, store: ResultStore, configure: (inout EntryRunner.Settings) -> Void = { _ in }) -> EntryRunner {
        var settings = EntryRunner.Settings(executable: BatchEngine.executable, version: Rehost.configuration.version ?? "0",
                                            engine: BatchEngine.current())
        configure(&settings)
        return EntryRunner(manifest: manifest, store: store, settings: settings)
    }
}

/// The engine an entry runs under, from its environment.
enum BatchEngine {
    static var environment: [String: String] { ProcessInfo.processInfo.environment }

    /// The index an engine gives this task: REHOST_INDEX, then a Kubernetes Indexed Job's
    /// JOB_COMPLETION_INDEX, then a Slurm array's SLURM_ARRAY_TASK_ID.
    static var index: Int? {
        ["REHOST_INDEX", "JOB_COMPLETION_INDEX", "SLURM_ARRAY_TASK_ID"].lazy.compactMap { environment[$0].flatMap(Int.init) }.first
    }

    static func current() -> ResultRecord.Engine {
        let env = environment
        var host = [CChar](repeating: 0, count: 256)
        gethostname(&host, host.count)
        let kind = env["SLURM_JOB_ID"] != nil ? "slurm" : env["JOB_COMPLETION_INDEX"] != nil ? "kubernetes" : "local"
        return ResultRecord.Engine(kind: kind, host: String(cString: host), pid: getpid(), jobID: env["SLURM_JOB_ID"],
                                   arrayJobID: env["SLURM_ARRAY_JOB_ID"],
                                   taskID: env["SLURM_ARRAY_TASK_ID"] ?? env["JOB_COMPLETION_INDEX"],
                                   pod: kind == "kubernetes" ? env["HOSTNAME"] : nil)
    }

    /// This rehost, run again for each conversion.
    static var executable: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }
}
