import ArgumentParser
import Batch
import Foundation
import ImageCore

struct BatchStatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Where a batch stands: done, failed, to do; errors by cause; what to resubmit.",
        discussion: """
            Reads the manifest and the result records (safe while workers run). An entry is done when \
            its record succeeded with the key it would have now and its outputs are as recorded; \
            failed when it failed for good (bad input or options); retry after a transient fault; \
            running while a worker holds its lock; to do otherwise (never run, its inputs or options \
            changed, an output changed, or its worker died in it).

            Prints the counts, the failures grouped by cause, and the indices still to do in the form \
            `sbatch --array=` takes; --to-do prints only those. Exit code: 0 when every entry is done, \
            1 when only entries failed for good are left, 75 while any is to do, retry or running.
            """)

    @OptionGroup var batch: BatchManifestOptions

    @Flag(help: "Print the status as JSON.")
    var json = false

    @Flag(name: .customLong("to-do"), help: "Print only the indices to do (to do and retry), e.g. 3,7,12-15, for sbatch --array=.")
    var toDo = false

    @Option(help: ArgumentHelp("Also write a one-page HTML report (counts, throughput, failures by cause, per-image times) to this file.", valueName: "file"))
    var html: String?

    func run() throws {
        try runReportingErrors {
            let manifest = try batch.load()
            let store = try ResultStore(directory: batch.resultsDirectory(manifest), create: false)
            let status = BatchStatus(manifest: manifest, store: store, runner: batch.runner(manifest, store: store))
            if let html {
                let output = try AtomicOutput(finalPath: html)
                try output.file.write(Array(StatusPage.render(status).utf8), at: 0)
                try output.commit()
            }
            if toDo {
                print(status.toDo)
            } else if json {
                try printJSON(status)
            } else {
                print(BatchText.status(status), terminator: "")
            }
            if !status.isSettled { throw ExitCode(ExitCodes.retry) }
            if (status.counts[BatchStatus.State.failed.rawValue] ?? 0) > 0 { throw ExitCode(ExitCodes.permanent) }
        }
    }
}
