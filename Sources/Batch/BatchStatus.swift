import Foundation

/// Where a batch stands, from its manifest and its result records (read-only: safe while workers
/// run).
public struct BatchStatus: Codable, Sendable {
    public enum State: String, Codable, Sendable {
        /// Succeeded, with the key it would have now, and every output as recorded.
        case done
        /// Failed for good: bad input or options; redone only when they change (or asked).
        case failed
        /// Failed with a transient fault: to be run again.
        case retry
        /// A worker holds its lock now.
        case running
        /// Never run, or its record no longer fits (inputs, options or version changed; an output
        /// changed or went away; a worker died in it).
        case todo
    }

    public struct Entry: Codable, Sendable {
        public var index: Int
        public var id: String
        public var state: State
        /// Why a todo entry is to do again, when it has a record.
        public var reason: String?
        public var cause: String?
        public var error: String?
        public var attempt: Int?
        public var seconds: Double?
        public var started: String?
        public var finished: String?
        public var inputBytes: UInt64
        public var outputBytes: UInt64?
    }

    public struct FailureGroup: Codable, Sendable {
        public var cause: String
        public var explanation: String
        public var retryable: Bool
        public var ids: [String]
        public var indices: String
        /// Up to three distinct messages.
        public var examples: [String]
    }

    public struct Throughput: Codable, Sendable {
        /// Converted in this batch's records (skips do not count).
        public var images: Int
        public var inputBytes: UInt64
        /// From the first start to the last finish among them.
        public var wallSeconds: Double
        public var imagesPerMinute: Double
        public var gibPerMinute: Double
    }

    public var manifest: String
    public var results: String
    public var total: Int
    public var counts: [String: Int]
    /// What is left to run, as `sbatch --array=` takes it: todo and retry entries.
    public var toDo: String
    /// Failed for good, as a list for `--index`/`--array=` once fixed.
    public var failed: String
    public var failures: [FailureGroup]
    public var throughput: Throughput?
    public var entries: [Entry]

    /// Done, or failed for good: nothing an engine could still do.
    public var isSettled: Bool { (counts[State.todo.rawValue] ?? 0) + (counts[State.retry.rawValue] ?? 0) + (counts[State.running.rawValue] ?? 0) == 0 }

    public init(manifest: BatchManifest, store: ResultStore, runner: EntryRunner) {
        self.manifest = manifest.path
        results = store.directory
        total = manifest.entries.count
        var entries: [Entry] = []
        for entry in manifest.entries {
            let inputBytes = entry.inputs.reduce(UInt64(0)) { $0 + (EntryIdentity.fileState(runner.absolute($1))?.size ?? 0) }
            var item = Entry(index: entry.index, id: entry.id, state: .todo, inputBytes: inputBytes)
            if let record = store.record(entry.id) {
                item.cause = record.cause
                item.error = record.error
                item.attempt = record.attempt
                item.seconds = record.seconds
                item.started = record.started
                item.finished = record.finished
                item.outputBytes = record.outputs.isEmpty ? nil : record.outputs.reduce(0) { $0 + $1.size }
                (item.state, item.reason) = Self.state(of: record, entry: entry, store: store, runner: runner)
            }
            entries.append(item)
        }
        self.entries = entries
        counts = Dictionary(grouping: entries, by: \.state.rawValue).mapValues(\.count)
        toDo = IndexRanges.format(entries.filter { $0.state == .todo || $0.state == .retry }.map(\.index))
        failed = IndexRanges.format(entries.filter { $0.state == .failed }.map(\.index))
        failures = Dictionary(grouping: entries.filter { $0.state == .failed || $0.state == .retry }) { $0.cause ?? "failed" }
            .map { cause, items in
                let known = FailureCause(rawValue: cause)
                var examples: [String] = []
                for item in items { if let error = item.error, !examples.contains(error), examples.count < 3 { examples.append(error) } }
                return FailureGroup(cause: cause, explanation: known?.explanation ?? cause, retryable: known?.retryable ?? false,
                                    ids: items.map(\.id), indices: IndexRanges.format(items.map(\.index)), examples: examples)
            }
            .sorted { ($0.ids.count, $1.cause) > ($1.ids.count, $0.cause) }
        throughput = Self.throughput(entries.filter { $0.state == .done })
    }

    static func state(of record: ResultRecord, entry: BatchEntry, store: ResultStore, runner: EntryRunner) -> (State, String?) {
        if record.status == .running {
            return store.isRunning(entry.id) ? (.running, nil) : (.todo, "its worker stopped in the middle (killed, or its host went away)")
        }
        let digest = record.inputs.contains { $0.sha256 != nil }
        guard let inputs = try? EntryIdentity.inputs(of: entry, in: runner.manifest.directory, contentDigest: digest) else {
            return record.status == .failed ? (record.retryable == true ? .retry : .failed, nil) : (.todo, "an input is gone")
        }
        if runner.key(inputs: inputs, entry.convertArguments) != record.key {
            return (.todo, "the inputs, the options or the rehost version changed since its record")
        }
        switch record.status {
        case .succeeded:
            return runner.outputsMatch(record) ? (.done, nil) : (.todo, "an output changed or is gone")
        case .failed:
            return (record.retryable == true ? .retry : .failed, nil)
        case .running:
            return (.running, nil)
        }
    }

    static func throughput(_ done: [Entry]) -> Throughput? {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let starts = done.compactMap { $0.started.flatMap(formatter.date(from:)) }
        let ends = done.compactMap { $0.finished.flatMap(formatter.date(from:)) }
        guard let first = starts.min(), let last = ends.max(), last > first else { return nil }
        let wall = last.timeIntervalSince(first)
        let bytes = done.reduce(UInt64(0)) { $0 + $1.inputBytes }
        return Throughput(images: done.count, inputBytes: bytes, wallSeconds: (wall * 1000).rounded() / 1000,
                          imagesPerMinute: (Double(done.count) / wall * 60 * 100).rounded() / 100,
                          gibPerMinute: (Double(bytes) / Double(1 << 30) / wall * 60 * 1000).rounded() / 1000)
    }
}
