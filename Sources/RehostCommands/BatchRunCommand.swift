import ArgumentParser
import Batch
import Foundation
import ImageCore

struct BatchRunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Convert a manifest's entries: all of them here, a shard, or the one an engine's task is for.",
        discussion: """
            With --index N, or under an engine that sets REHOST_INDEX, JOB_COMPLETION_INDEX (a \
            Kubernetes Indexed Job) or SLURM_ARRAY_TASK_ID (a Slurm array), converts that one entry and \
            exits with its code: 0 done or skipped, 1 failed for good, 64 a wrong entry, 75 retry. \
            Otherwise converts every entry (or those of --shard i/n), --jobs at a time, with progress \
            on a terminal and a summary at the end; the exit code is 75 if any entry should be retried, \
            else 1 if any failed, else 0.

            Each conversion is `rehost convert` with the entry's options in a process of its own, at \
            lower CPU and I/O priority (--nice, --io-class) so that guests still running on a node \
            controller keep their share. SIGTERM, SIGINT and SIGHUP are passed on to the conversions, whose \
            partial outputs are removed; their entries are recorded as interrupted (retry).
            """)

    @OptionGroup var batch: BatchManifestOptions

    @Option(help: ArgumentHelp("Convert only entry N (from 0). Default: the engine's index from the environment, else every entry.", valueName: "n"))
    var index: Int?

    @Option(name: .customLong("index-offset"),
            help: ArgumentHelp("Added to the index from the environment: for manifests longer than an engine's array limit (Slurm's MaxArraySize is 1001 by default), submitted in parts.", valueName: "k"))
    var indexOffset: Int = 0

    @Option(help: ArgumentHelp("Only the entries k with k mod n = i, for engines that give each worker a share.", valueName: "i/n"))
    var shard: String?

    @Option(name: .shortAndLong, help: ArgumentHelp("Conversions at once. Default: chosen from the cores, the memory available and whether the outputs' disk spins (the summary says which and why).", valueName: "n"))
    var jobs: Int?

    @Option(help: ArgumentHelp("Added to the batch's niceness, and so to every conversion's (0 leaves it).", valueName: "n"))
    var nice: Int32 = 10

    @Option(name: .customLong("io-class"),
            help: ArgumentHelp("The I/O priority of the conversions: best-effort (the lowest level of the normal class; the default), idle (only when the disk is otherwise idle) or unchanged.",
                               valueName: "best-effort|idle|unchanged"))
    var ioClass: ProcessPriority.IOClass = .bestEffort

    @Flag(name: .customLong("input-digest"), help: "Put each input's SHA-256 in the entry's key, not only its size and time (reads every input once more).")
    var inputDigest = false

    @Flag(help: "Convert even entries whose record is current.")
    var force = false

    @Flag(name: .customLong("retry-failed"), help: "Try again entries that failed for good with the same inputs and options (after fixing what was wrong around them).")
    var retryFailed = false

    @Flag(help: "Print the records (one entry) or the summary (several) as JSON.")
    var json = false

    @Flag(name: .shortAndLong, help: "No progress line.")
    var quiet = false

    func validate() throws {
        if let index, index < 0 { throw ValidationError("--index \(index): entries are numbered from 0") }
        if let shard, Shard(shard) == nil { throw ValidationError("--shard \(shard): expected i/n with 0 <= i < n, e.g. 0/4") }
        if index != nil, shard != nil { throw ValidationError("--index and --shard: choose one") }
        if let jobs, jobs < 1 { throw ValidationError("--jobs \(jobs): at least 1") }
        if !(0...19).contains(nice) { throw ValidationError("--nice \(nice): from 0 to 19") }
    }

    func run() throws {
        try runReportingErrors {
            let manifest = try batch.load()
            let store = try ResultStore(directory: batch.resultsDirectory(manifest), create: true)
            let priority = ProcessPriority(nice: nice, ioClass: ioClass).apply()
            let runner = batch.runner(manifest, store: store) { settings in
                settings.contentDigest = inputDigest
                settings.force = force
                settings.retryFailed = retryFailed
                settings.engine.nice = priority.nice
                settings.engine.ioClass = priority.ioClass
            }

            // An engine's index only when no shard was asked for: a shard's worker runs many.
            let chosen = index ?? (shard == nil ? BatchEngine.index.map { $0 + indexOffset } : nil)
            if let chosen {
                guard chosen < manifest.entries.count else {
                    printError("rehost: error: \(BatchError.noSuchIndex(index: chosen, count: manifest.entries.count, manifest: manifest.path))")
                    throw ExitCode(ExitCodes.usage)
                }
                try runOne(manifest.entries[chosen], runner: runner)
            } else {
                let entries = shard.flatMap(Shard.init).map { shard in manifest.entries.filter { shard.contains($0.index) } } ?? manifest.entries
                try runAll(entries, runner: runner, manifest: manifest)
            }
        }
    }

    func runOne(_ entry: BatchEntry, runner: EntryRunner) throws {
        guard let result = BatchRunner(runner: runner, jobs: 1).run([entry])[0] else {
            // A signal came before the entry started: nothing done, nothing recorded.
            printError("rehost: error: entry \(entry.index) (\(entry.id)): interrupted before it started")
            throw ExitCode(ExitCodes.retry)
        }
        let outcome = try result.get()
        if json, let record = outcome.record {
            try printJSON(record)
        } else {
            print(BatchText.line(entry: entry, outcome: outcome))
        }
        if outcome.exitCode != 0 { throw ExitCode(outcome.exitCode) }
    }

    func runAll(_ entries: [BatchEntry], runner: EntryRunner, manifest: BatchManifest) throws {
        let concurrency = jobs.map { Concurrency(jobs: $0, reason: "--jobs") }
            ?? Concurrency.choose(entries: entries.count, outputDirectory: manifest.directory)
        let terminal = !quiet && !json && FileHandleOutput.standardErrorIsTerminal
        let started = Date()
        let outcomes = BatchRunner(runner: runner, jobs: concurrency.jobs) { progress in
            if terminal { FileHandleOutput.writeStandardError("\r\u{1B}[K" + BatchText.progress(progress).escapedForTerminal()) }
        }.run(entries)
        if terminal { FileHandleOutput.writeStandardError("\r\u{1B}[K") }
        let summary = BatchSummary(entries: entries, outcomes: outcomes, concurrency: concurrency, seconds: Date().timeIntervalSince(started))
        if json {
            try printJSON(summary)
        } else {
            print(BatchText.summary(summary), terminator: "")
        }
        if summary.exitCode != 0 { throw ExitCode(summary.exitCode) }
    }
}

extension ProcessPriority.IOClass: ExpressibleByArgument {}
