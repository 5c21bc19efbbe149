import Batch
import ImageCore

/// The plain-text forms of batch results.
enum BatchText {
    static func line(entry: BatchEntry, outcome: EntryOutcome) -> String {
        let head = "entry \(entry.index) (\(entry.id)):"
        switch outcome {
        case let .succeeded(record):
            return "\(head) converted in \(record.seconds.map { String(format: "%.1f s", $0) } ?? "?"): \(record.outputs.map(\.path).joined(separator: ", "))"
        case .skipped:
            return "\(head) skipped: its record is current and its outputs are as recorded"
        case let .failed(record, repeated):
            let retry = record.retryable == true ? "retry" : "do not retry"
            let again = repeated ? " (failed before with the same inputs and options; --retry-failed to try again)" : ""
            return "\(head) failed, \(retry) [\(record.cause ?? "failed")]: \((record.error ?? "").escapedForTerminal())\(again)"
        case let .busy(message):
            return "\(head) busy: \(message)"
        }
    }

    static func progress(_ progress: BatchRunner.Progress) -> String {
        var line = "batch: \(progress.finished)/\(progress.total) (\(progress.converted) converted, \(progress.skipped) skipped, \(progress.failed) failed)"
        if progress.inputBytesTotal > 0 {
            line += " \(ByteCount.format(progress.inputBytesDone)) / \(ByteCount.format(progress.inputBytesTotal))"
        }
        if !progress.running.isEmpty { line += "; running: \(progress.running.joined(separator: ", "))" }
        return line
    }

    static func summary(_ summary: BatchSummary) -> String {
        var text = ""
        let idWidth = min(32, summary.entries.map(\.id.count).max() ?? 2)
        text += "index  \("id".padding(toLength: idWidth, withPad: " ", startingAt: 0))  outcome    seconds  error\n"
        for entry in summary.entries {
            let seconds = entry.seconds.map { String(format: "%7.1f", $0) } ?? "      -"
            let error = entry.error.map { "[\(entry.cause ?? entry.outcome)] \($0)" } ?? ""
            text += "\(String(entry.index).leftPadded(5))  \(entry.id.padding(toLength: idWidth, withPad: " ", startingAt: 0))  "
                + "\(entry.outcome.padding(toLength: 9, withPad: " ", startingAt: 0))  \(seconds)  \(error.escapedForTerminal())\n"
        }
        let counts = ["converted", "skipped", "failed", "busy", "not-run"].compactMap { key in summary.counts[key].map { "\($0) \(key)" } }
        text += "\(summary.entries.count) entries: \(counts.joined(separator: ", ")) in \(String(format: "%.1f", summary.seconds)) s, "
            + "\(summary.jobs) at a time (\(summary.jobsReason))\n"
        if summary.inputBytesConverted > 0 {
            text += "throughput: \(summary.imagesPerMinute) images/min, \(summary.gibPerMinute) GiB/min of input\n"
        }
        return text
    }
}

extension String {
    func leftPadded(_ width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
}

extension BatchText {
    static func status(_ status: BatchStatus) -> String {
        var text = "\(status.manifest): \(status.total) entr\(status.total == 1 ? "y" : "ies"); records in \(status.results)\n"
        for state in ["done", "failed", "retry", "running", "todo"] {
            text += "  \(state.padding(toLength: 8, withPad: " ", startingAt: 0)) \(status.counts[state] ?? 0)\n"
        }
        if let throughput = status.throughput {
            text += "throughput: \(throughput.images) images, \(ByteCount.format(throughput.inputBytes)) of input in \(String(format: "%.1f", throughput.wallSeconds)) s: "
                + "\(throughput.imagesPerMinute) images/min, \(throughput.gibPerMinute) GiB/min\n"
        }
        for group in status.failures {
            text += "\(group.cause) (\(group.retryable ? "retry" : "do not retry"); \(group.explanation)): \(group.ids.count): \(group.ids.joined(separator: ", ").escapedForTerminal())\n"
            for example in group.examples { text += "    \(example.escapedForTerminal())\n" }
        }
        for entry in status.entries where entry.state == .todo && entry.reason != nil {
            text += "entry \(entry.index) (\(entry.id)) to do again: \(entry.reason!)\n"
        }
        if !status.toDo.isEmpty { text += "to do: \(status.toDo)\n" }
        if !status.failed.isEmpty { text += "failed for good: \(status.failed) (fix, then rehost batch run --retry-failed --index N)\n" }
        return text
    }
}
