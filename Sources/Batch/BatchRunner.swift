import Foundation
import Synchronization

/// `rehost batch run` on one host: the entries, `jobs` at a time, each by the EntryRunner.
public final class BatchRunner: Sendable {
    public struct Progress: Sendable {
        public var total: Int
        public var finished = 0
        public var converted = 0
        public var skipped = 0
        public var failed = 0
        public var running: [String] = []
        public var inputBytesTotal: UInt64
        public var inputBytesDone: UInt64 = 0
    }

    let runner: EntryRunner
    let jobs: Int
    let report: @Sendable (Progress) -> Void

    public init(runner: EntryRunner, jobs: Int, progress: @escaping @Sendable (Progress) -> Void = { _ in }) {
        self.runner = runner
        self.jobs = max(1, min(jobs, Interruption.slotCount))
        self.report = progress
    }

    /// Runs them all (or until a signal: the rest are then left, not recorded) and returns
    /// each entry's outcome, nil for those not started, in the entries' order.
    public func run(_ entries: [BatchEntry]) -> [Result<EntryOutcome, Error>?] {
        Interruption.install()
        let sizes = entries.map { entry in
            entry.inputs.reduce(UInt64(0)) { $0 + (EntryIdentity.fileState(runner.absolute($1))?.size ?? 0) }
        }
        let state = Mutex((next: 0, outcomes: [Result<EntryOutcome, Error>?](repeating: nil, count: entries.count),
                           progress: Progress(total: entries.count, inputBytesTotal: sizes.reduce(0, +))))
        let group = DispatchGroup()
        for slot in 0..<min(jobs, entries.count) {
            group.enter()
            Thread.detachNewThread { [self] in
                defer { group.leave() }
                while Interruption.signal == nil {
                    let taken: Int? = state.withLock { state in
                        guard state.next < entries.count else { return nil }
                        defer { state.next += 1 }
                        state.progress.running.append(entries[state.next].id)
                        report(state.progress)
                        return state.next
                    }
                    guard let index = taken else { return }
                    let outcome = Result { try runner.run(entries[index], slot: slot) }
                    state.withLock { state in
                        state.outcomes[index] = outcome
                        state.progress.running.removeAll { $0 == entries[index].id }
                        state.progress.finished += 1
                        state.progress.inputBytesDone += sizes[index]
                        switch outcome {
                        case .success(.succeeded): state.progress.converted += 1
                        case .success(.skipped): state.progress.skipped += 1
                        default: state.progress.failed += 1
                        }
                        report(state.progress)
                    }
                }
            }
        }
        group.wait()
        return state.withLock { $0.outcomes }
    }
}

/// How many conversions one host runs at once, and why.
public struct Concurrency: Sendable {
    public let jobs: Int
    public let reason: String

    /// Memory a conversion may use at its peak: its own structures, the page cache it streams
    /// through, and an initrd or kernel package unpacked in memory.
    static let memoryPerJob: UInt64 = 1536 << 20

    /// One per core, no more than memory allows, and two at most when the outputs go to a
    /// spinning disk (more only makes its head seek between them).
    public static func choose(entries: Int, outputDirectory: String) -> Concurrency {
        let cores = max(1, ProcessInfo.processInfo.activeProcessorCount)
        let available = availableMemory()
        let byMemory = available.map { max(1, Int($0 / memoryPerJob)) } ?? cores
        let rotational = isRotational(outputDirectory)
        let byDisk = rotational == true ? 2 : cores
        let jobs = max(1, min(cores, byMemory, byDisk, entries))
        var why = ["\(cores) core\(cores == 1 ? "" : "s")"]
        if let available { why.append("\(available >> 20) MiB of memory available (\(memoryPerJob >> 20) MiB each)") }
        if let rotational { why.append(rotational ? "outputs on a spinning disk" : "outputs on a solid-state or virtual disk") }
        if entries < min(cores, byMemory, byDisk) { why.append("\(entries) entr\(entries == 1 ? "y" : "ies")") }
        return Concurrency(jobs: jobs, reason: why.joined(separator: ", "))
    }

    public init(jobs: Int, reason: String) {
        self.jobs = jobs
        self.reason = reason
    }

    static func availableMemory() -> UInt64? {
        guard let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("MemAvailable:") {
            let fields = line.split(separator: " ")
            if fields.count >= 2, let kib = UInt64(fields[1]) { return kib << 10 }
        }
        return nil
    }

    /// Whether the block device under `path` spins (sysfs `queue/rotational`), nil when unknown.
    static func isRotational(_ path: String) -> Bool? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        let device = "/sys/dev/block/\(major(info.st_dev)):\(minor(info.st_dev))"
        for candidate in ["\(device)/queue/rotational", "\(device)/../queue/rotational"] {
            if let text = try? String(contentsOfFile: candidate, encoding: .utf8) {
                return text.trimmingCharacters(in: .whitespacesAndNewlines) == "1"
            }
        }
        return nil
    }

    static func major(_ device: UInt) -> UInt { ((device >> 8) & 0xfff) | ((device >> 32) & ~0xfff) }
    static func minor(_ device: UInt) -> UInt { (device & 0xff) | ((device >> 12) & ~0xff) }
}
