import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A real one-node Slurm cluster (munged, slurmctld, slurmd; no slurmdbd) on 127.0.0.1 for the
/// batch tests, started by `Tests/Tools/slurm-local.sh` from the Debian packages that
/// `scripts/install-deps.sh` installs. Everything (munge key and socket, slurm.conf, state, spool,
/// logs) lives in its own temporary directory, on two free ports; the daemons are stopped by
/// their pids when `stop()` is called or the object goes away, and a watchdog stops them if the
/// test process dies. Jobs run as the test's user (root in CI). Job state comes from
/// `scontrol -o show job`, which keeps finished jobs for 10 minutes (MinJobAge=600).
/// A cluster that does not come up throws `SlurmClusterError` with the end of its logs: tests
/// fail, never skip.
public final class SlurmCluster: Sendable {
    /// One task of a job array as `scontrol -o show job` reports it.
    public struct ArrayTask: Sendable, Equatable, CustomStringConvertible {
        public let index: Int
        /// COMPLETED, FAILED, PENDING, RUNNING, CANCELLED, …
        public let state: String
        /// The first half of `ExitCode=3:0`: the script's exit status.
        public let exitCode: Int32
        /// The second half: the signal that ended it, 0 if none.
        public let signal: Int32

        public init(index: Int, state: String, exitCode: Int32, signal: Int32) {
            self.index = index
            self.state = state
            self.exitCode = exitCode
            self.signal = signal
        }

        public var description: String { "\(index): \(state) \(exitCode):\(signal)" }
    }

    public static var script: String { "\(Fixture.repositoryRoot)/Tests/Tools/slurm-local.sh" }

    public let directory: TemporaryDirectory
    /// DIR/slurm.conf: every Slurm client finds the cluster through SLURM_CONF.
    public let slurmConf: String
    /// munged, slurmctld and slurmd, in start order (DIR/pids).
    public let pids: [Int32]
    /// The watchdogs that stop the daemons if this process dies (DIR/watchdog.pids).
    public let watchdogPIDs: [Int32]
    private let stopped = Mutex(false)

    /// Starts the cluster (about 1 s) and waits until its node is idle.
    public init() throws {
        for tool in ["munged", "slurmctld", "slurmd", "sbatch", "scontrol", "squeue", "sinfo"] {
            try Command.require(tool)
        }
        directory = try TemporaryDirectory(prefix: "rehost-slurm")
        let result = try Command.run(Self.script, ["start", directory.path],
                                     environment: ["REHOST_SLURM_OWNER_PID": String(getpid())],
                                     timeout: .seconds(120))
        let recorded = Self.readPIDs("\(directory.path)/pids")
        let watchdogs = Self.readPIDs("\(directory.path)/watchdog.pids")
        guard result.succeeded else {
            // The script stops what it started when it fails; this is for a timeout.
            _ = try? Command.run(Self.script, ["stop", directory.path], timeout: .seconds(60))
            throw SlurmClusterError(reason: "`\(result.commandLine)` \(result.timedOut ? "timed out" : "exited with status \(result.status)")",
                                    log: result.stdout + result.stderr)
        }
        slurmConf = "\(directory.path)/slurm.conf"
        pids = recorded
        watchdogPIDs = watchdogs
        guard result.stdout.contains("SLURM_CONF=\(slurmConf)"), pids.count == 3 else {
            stop()
            throw SlurmClusterError(reason: "slurm-local.sh start printed \(result.stdout.debugDescription) and recorded pids \(recorded)",
                                    log: result.stderr)
        }
    }

    deinit { stop() }

    /// What a Slurm client (sbatch, scontrol, squeue, or `rehost batch` under them) needs to reach
    /// this cluster.
    public var environment: [String: String] { ["SLURM_CONF": slurmConf] }

    /// Runs a Slurm client against this cluster; throws with its stderr and the logs when it fails.
    @discardableResult
    public func run(_ tool: String, _ arguments: [String], timeout: Duration = .seconds(60)) throws -> CommandResult {
        let result = try Command.run(tool, arguments, environment: environment, timeout: timeout)
        guard result.succeeded else {
            throw SlurmClusterError(reason: "`\(result.commandLine)` \(result.timedOut ? "timed out" : "exited with status \(result.status)"): \(result.stderr)",
                                    log: logTail)
        }
        return result
    }

    /// `sbatch --parsable ARGUMENTS`: the job id (for an array, the array's job id).
    public func sbatch(_ arguments: [String]) throws -> String {
        let output = try run("sbatch", ["--parsable"] + arguments).stdout
        // --parsable prints "ID" or "ID;CLUSTER".
        let id = output.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ";").first.map(String.init) ?? ""
        guard !id.isEmpty, id.allSatisfy(\.isNumber) else {
            throw SlurmClusterError(reason: "sbatch printed \(output.debugDescription), not a job id", log: logTail)
        }
        return id
    }

    /// Until `squeue -h -j ID` lists nothing: every task of the job has finished.
    public func waitForJob(_ id: String, timeout: Duration = .seconds(120)) throws {
        let deadline = ContinuousClock.now + timeout
        var last = ""
        while true {
            let result = try Command.run("squeue", ["-h", "-j", id], environment: environment, timeout: .seconds(30))
            if result.succeeded && result.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { return }
            // A job purged from slurmctld's memory (older than MinJobAge) has finished too.
            if result.stderr.contains("Invalid job id") { return }
            last = result.succeeded ? "still queued:\n\(result.stdout)" : "squeue failed: \(result.stderr)"
            if let daemon = pids.first(where: { !Self.isAlive($0) }) {
                throw SlurmClusterError(reason: "waiting for job \(id): daemon pid \(daemon) is gone; \(last)", log: logTail)
            }
            if ContinuousClock.now >= deadline {
                throw SlurmClusterError(reason: "job \(id) not finished within \(timeout); \(last)", log: logTail)
            }
            Thread.sleep(forTimeInterval: 0.2)
        }
    }

    /// Every task of array job `jobID`, by index, from `scontrol -o show job` (one line per task).
    /// Throws when a line has no single task index (e.g. `ArrayTaskId=0-3` while tasks are pending).
    public func arrayTasks(_ jobID: String) throws -> [ArrayTask] {
        let output = try run("scontrol", ["-o", "show", "job", jobID]).stdout
        var tasks: [ArrayTask] = []
        for line in output.split(separator: "\n") where !line.trimmingCharacters(in: .whitespaces).isEmpty {
            do {
                tasks.append(try Self.parseTask(String(line)))
            } catch let error as SlurmClusterError {
                throw SlurmClusterError(reason: "job \(jobID): \(error.reason)", log: output)
            }
        }
        return tasks.sorted { $0.index < $1.index }
    }

    /// One `scontrol -o show job` line: its ArrayTaskId, JobState and ExitCode fields.
    public static func parseTask(_ line: String) throws -> ArrayTask {
        var fields: [String: String] = [:]
        for token in line.split(separator: " ") {
            guard let equals = token.firstIndex(of: "=") else { continue }
            let key = String(token[..<equals])
            if fields[key] == nil { fields[key] = String(token[token.index(after: equals)...]) }
        }
        guard let indexText = fields["ArrayTaskId"], let index = Int(indexText) else {
            throw SlurmClusterError(reason: "no single ArrayTaskId in \(line.debugDescription)")
        }
        guard let state = fields["JobState"], !state.isEmpty else {
            throw SlurmClusterError(reason: "no JobState in \(line.debugDescription)")
        }
        let code = fields["ExitCode"]?.split(separator: ":").map { Int32($0) } ?? []
        guard code.count == 2, let exitCode = code[0], let signal = code[1] else {
            throw SlurmClusterError(reason: "no ExitCode=STATUS:SIGNAL in \(line.debugDescription)")
        }
        return ArrayTask(index: index, state: state, exitCode: exitCode, signal: signal)
    }

    /// Cancels the jobs, stops the watchdogs, then slurmd, slurmctld and munged by their pids
    /// (KILL after 10 s each), and any job process left over; safe to call twice.
    public func stop() {
        let already = stopped.withLock { value in
            defer { value = true }
            return value
        }
        if !already { _ = try? Command.run(Self.script, ["stop", directory.path], timeout: .seconds(120)) }
    }

    /// The process exists and is not a zombie (init may reap a stopped daemon late).
    public static func isAlive(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        let state = stat[stat.index(after: close)...].split(separator: " ").first
        return state != nil && state != "Z"
    }

    /// The last lines of slurmctld's, slurmd's and munged's logs, for failure messages.
    public var logTail: String {
        ["slurmctld.log", "slurmctld.out", "slurmd.log", "slurmd.out", "munged.log", "munged.err"].compactMap { name in
            let path = "\(directory.path)/log/\(name)"
            guard let text = try? String(contentsOfFile: path, encoding: .utf8), !text.isEmpty else { return nil }
            return "--- last lines of \(path):\n" + text.split(separator: "\n").suffix(20).joined(separator: "\n")
        }.joined(separator: "\n")
    }

    static func readPIDs(_ path: String) -> [Int32] {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { Int32($0.trimmingCharacters(in: .whitespaces)) }
    }
}

/// A Slurm cluster that would not start or a client that failed, with the end of the logs.
public struct SlurmClusterError: Error, CustomStringConvertible, Sendable {
    public let reason: String
    public let log: String

    public init(reason: String, log: String = "") {
        self.reason = reason
        self.log = log
    }

    public var description: String {
        let tail = log.split(separator: "\n", omittingEmptySubsequences: false).suffix(60).joined(separator: "\n")
        return tail.isEmpty ? "slurm: \(reason)" : "slurm: \(reason)\n\(tail)"
    }
}
