import Foundation
import ImageCore

#if canImport(Glibc)
import Glibc
#endif

/// Runs one entry: claims it, skips it when its record is current, else runs `rehost convert` on
/// it in the manifest's directory, in a process of its own (a crash or a kill takes only that
/// entry, and memory goes back when it ends), and records what happened.
public struct EntryRunner: Sendable {
    public struct Settings: Sendable {
        /// The rehost executable the conversions run.
        public var executable: String
        public var version: String
        /// Put each input's SHA-256 in the key (reads every input once more).
        public var contentDigest = false
        /// Convert even when the record is current.
        public var force = false
        /// Try again an entry that failed for good with the same key.
        public var retryFailed = false
        public var engine: ResultRecord.Engine

        public init(executable: String, version: String, engine: ResultRecord.Engine) {
            self.executable = executable
            self.version = version
            self.engine = engine
        }
    }

    public let manifest: BatchManifest
    public let store: ResultStore
    public let settings: Settings

    public init(manifest: BatchManifest, store: ResultStore, settings: Settings) {
        self.manifest = manifest
        self.store = store
        self.settings = settings
    }

    /// `slot`: the worker's place in the table of running conversions (for passing on signals).
    public func run(_ entry: BatchEntry, slot: Int = 0) throws -> EntryOutcome {
        let lock: EntryLock
        do {
            lock = try EntryLock(path: store.lockPath(entry.id))
        } catch let error as BatchError {
            return .busy(error.description)
        }
        defer { withExtendedLifetime(lock) {} }

        let started = Date()
        let arguments = entry.convertArguments
        // An input that is not there fails the entry without a conversion, under a key of the
        // arguments alone: tried again once the input is there (its key then differs).
        var inputs: [ResultRecord.Input] = []
        var missingInput: RehostError?
        do {
            inputs = try EntryIdentity.inputs(of: entry, in: manifest.directory, contentDigest: settings.contentDigest)
        } catch let error as RehostError {
            missingInput = error
        }
        let key = key(inputs: inputs, arguments)
        let previous = store.record(entry.id)
        if let previous, previous.key == key, !settings.force {
            if previous.status == .succeeded, outputsMatch(previous) { return .skipped(previous) }
            if previous.status == .failed, previous.retryable == false, !settings.retryFailed {
                return .failed(previous, repeated: true)
            }
        }
        let attempt = (previous?.key == key ? previous?.attempt ?? 0 : 0) + 1
        var record = newRecord(entry, key: key, inputs: inputs, started: started, attempt: attempt)
        if let missingInput {
            finish(&record, cause: missingInput.isTransient ? .ioError : .badInput, exitCode: missingInput.isTransient ? ExitCodes.retry : ExitCodes.permanent,
                   error: missingInput.description, started: started)
            try store.write(record)
            return .failed(record, repeated: false)
        }
        removeLeftovers(of: entry)
        try store.write(record)

        let result = try convert(arguments, slot: slot)
        if result.status == 0, let report = result.report {
            record.status = .succeeded
            record.report = report
            record.uploads = report["uploads"]
            record.outputs = outputs(of: report)
            record.exitCode = 0
            stamp(&record, started: started)
        } else {
            let cause = result.status == 0 ? FailureCause.crashed
                : FailureCause.classify(exitStatus: result.status, signal: result.signal, error: result.error)
            finish(&record, cause: cause, exitCode: result.signal.map { 128 + $0 } ?? result.status,
                   error: result.status == 0 ? "rehost convert printed no report" : result.error, started: started)
        }
        try store.write(record)
        return record.status == .succeeded ? .succeeded(record) : .failed(record, repeated: false)
    }

    func key(inputs: [ResultRecord.Input], _ arguments: [String]) -> String {
        EntryIdentity.key(inputs: inputs, arguments: arguments, directory: manifest.directory, version: settings.version)
    }

    func newRecord(_ entry: BatchEntry, key: String, inputs: [ResultRecord.Input], started: Date, attempt: Int) -> ResultRecord {
        ResultRecord(id: entry.id, index: entry.index, manifest: manifest.path, key: key, rehostVersion: settings.version,
                     status: .running, inputs: inputs, arguments: entry.convertArguments, outputs: [], engine: settings.engine,
                     started: Self.timestamp(started), attempt: attempt)
    }

    func finish(_ record: inout ResultRecord, cause: FailureCause, exitCode: Int32, error: String, started: Date) {
        record.status = .failed
        record.cause = cause.rawValue
        record.retryable = cause.retryable
        record.exitCode = exitCode
        record.error = error
        stamp(&record, started: started)
    }

    func stamp(_ record: inout ResultRecord, started: Date) {
        let now = Date()
        record.finished = Self.timestamp(now)
        record.seconds = (now.timeIntervalSince(started) * 1000).rounded() / 1000
    }

    /// Every output still there with the size and time recorded.
    public func outputsMatch(_ record: ResultRecord) -> Bool {
        record.outputs.allSatisfy { output in
            guard let now = EntryIdentity.fileState(absolute(output.path)) else { return false }
            return now.size == output.size && now.mtimeNanoseconds == output.mtimeNanoseconds
        }
    }

    func absolute(_ path: String) -> String { path.hasPrefix("/") ? path : "\(manifest.directory)/\(path)" }

    /// The outputs as the report names them, with their size and time as they are now.
    func outputs(of report: JSONValue) -> [ResultRecord.Output] {
        guard case let .array(items)? = report["outputs"] else { return [] }
        return items.compactMap { item in
            guard let path = item["path"]?.string, let state = EntryIdentity.fileState(absolute(path)) else { return nil }
            return ResultRecord.Output(path: path, format: item["format"]?.string, size: state.size, mtimeNanoseconds: state.mtimeNanoseconds,
                                       virtualSize: item["virtualSize"]?.number.map { UInt64($0) },
                                       diskDigest: item["diskDigest"]?.string, sha256: item["sha256"]?.string)
        }
    }

    /// Partial outputs a killed conversion of this entry left (`.NAME.rehost-PID.partial`, and
    /// `.NAME.raw-scratch.rehost-PID.partial` for the disk built before a format's): with the
    /// entry's lock held, nothing else writes them.
    func removeLeftovers(of entry: BatchEntry) {
        for output in entry.outputs {
            let path = absolute(output)
            let directory = (path as NSString).deletingLastPathComponent
            let name = (path as NSString).lastPathComponent
            let prefixes = [".\(name).rehost-", ".\(name).raw-scratch.rehost-"]
            for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
            where prefixes.contains(where: name.hasPrefix) && name.hasSuffix(".partial") {
                unlink("\(directory)/\(name)")
            }
        }
    }

    struct ConversionResult {
        var status: Int32
        var signal: Int32?
        var report: JSONValue?
        var error: String
    }

    func convert(_ arguments: [String], slot: Int) throws -> ConversionResult {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: settings.executable)
        process.arguments = ["convert"] + arguments + ["--json"]
        process.currentDirectoryURL = URL(fileURLWithPath: manifest.directory)
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        if Interruption.signal != nil {
            return ConversionResult(status: -1, signal: Interruption.signal, report: nil, error: "interrupted before it started")
        }
        try process.run()
        Interruption.pids[slot] = process.processIdentifier
        // Both pipes read to the end before the wait, so a long report never blocks the child.
        nonisolated(unsafe) var errorData = Data()
        let group = DispatchGroup()
        group.enter()
        Thread.detachNewThread {
            errorData = err.fileHandleForReading.readDataToEndOfFile()
            group.leave()
        }
        let outputData = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        process.waitUntilExit()
        Interruption.pids[slot] = 0
        let signal = process.terminationReason == .uncaughtSignal ? process.terminationStatus : nil
        let lines = String(decoding: errorData, as: UTF8.self).split(separator: "\n").map(String.init)
        let error = Self.errorLine(lines) ?? (signal.map { "killed by signal \($0)" } ?? "exit status \(process.terminationStatus)")
        let report = try? JSONDecoder().decode(JSONValue.self, from: outputData)
        return ConversionResult(status: signal == nil ? process.terminationStatus : -1, signal: signal, report: report, error: error)
    }

    /// rehost's own one-line error, else ArgumentParser's, else the last line written.
    static func errorLine(_ lines: [String]) -> String? {
        for prefix in ["rehost: error: ", "Error: "] {
            if let line = lines.last(where: { $0.hasPrefix(prefix) }) { return String(line.dropFirst(prefix.count)) }
        }
        return lines.last
    }

    static func timestamp(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: date)
    }
}
