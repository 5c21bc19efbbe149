import Foundation

/// What one `rehost batch run` over several entries did.
public struct BatchSummary: Codable, Sendable {
    public struct Entry: Codable, Sendable {
        public var index: Int
        public var id: String
        /// converted, skipped, failed, busy (another worker had it) or not-run (after a signal).
        public var outcome: String
        public var exitCode: Int32?
        public var cause: String?
        public var error: String?
        public var seconds: Double?
        public var inputBytes: UInt64
    }

    public var jobs: Int
    public var jobsReason: String
    public var seconds: Double
    public var counts: [String: Int]
    /// Converted entries only.
    public var inputBytesConverted: UInt64
    public var imagesPerMinute: Double
    public var gibPerMinute: Double
    public var exitCode: Int32
    public var entries: [Entry]

    public init(entries batch: [BatchEntry], outcomes: [Result<EntryOutcome, Error>?], concurrency: Concurrency, seconds: Double) {
        jobs = concurrency.jobs
        jobsReason = concurrency.reason
        self.seconds = (seconds * 1000).rounded() / 1000
        var entries: [Entry] = []
        var exit: Int32 = 0
        for (entry, outcome) in zip(batch, outcomes) {
            let record = (try? outcome?.get())?.record
            var item = Entry(index: entry.index, id: entry.id, outcome: "not-run", exitCode: nil,
                             inputBytes: record?.inputs.reduce(0) { $0 + $1.size } ?? 0)
            switch outcome {
            case nil:
                exit = max(exit, ExitCodes.retry)
            case let .failure(error):
                // The record itself could not be written (the results directory went away).
                item.outcome = "failed"
                item.error = "\(error)"
                item.exitCode = ExitCodes.retry
            case let .success(result):
                item.exitCode = result.exitCode
                switch result {
                case .succeeded: item.outcome = "converted"
                case .skipped: item.outcome = "skipped"
                case let .busy(message): item.outcome = "busy"; item.error = message
                case .failed: item.outcome = "failed"
                }
                if case .failed = result {
                    item.cause = record?.cause
                    item.error = record?.error
                }
                if case .succeeded = result { item.seconds = record?.seconds }
            }
            if let code = item.exitCode, code != 0 {
                // Retry wins over a permanent failure: running the batch again is still worth it.
                exit = exit == ExitCodes.retry || code == ExitCodes.retry ? ExitCodes.retry : max(exit, ExitCodes.permanent)
            }
            entries.append(item)
        }
        self.entries = entries
        exitCode = exit
        counts = Dictionary(grouping: entries, by: \.outcome).mapValues(\.count)
        let converted = entries.filter { $0.outcome == "converted" }
        inputBytesConverted = converted.reduce(0) { $0 + $1.inputBytes }
        let minutes = max(seconds, 0.001) / 60
        imagesPerMinute = (Double(converted.count) / minutes * 100).rounded() / 100
        gibPerMinute = (Double(inputBytesConverted) / Double(1 << 30) / minutes * 1000).rounded() / 1000
    }
}
