import Foundation

/// What became of one entry: DIR/ID.json, written atomically when the entry starts (status
/// `running`) and when it ends. A rerun skips the entry when the record succeeded with the key it
/// would compute now and every output is still as recorded.
public struct ResultRecord: Codable, Sendable {
    public static let schemaVersion = 1

    public enum Status: String, Codable, Sendable {
        case running, succeeded, failed
    }

    public struct Input: Codable, Sendable, Equatable {
        public var path: String
        /// The path with symbolic links resolved.
        public var realPath: String
        public var size: UInt64
        /// Modification time, nanoseconds since the epoch.
        public var mtimeNanoseconds: Int64
        /// The content's SHA-256, with `--input-digest`.
        public var sha256: String?
    }

    public struct Output: Codable, Sendable {
        public var path: String
        public var format: String?
        public var size: UInt64
        public var mtimeNanoseconds: Int64
        public var virtualSize: UInt64?
        /// blk-sha256 of the disk, as `rehost digest` prints it.
        public var diskDigest: String?
        /// The file's SHA-256 (convert's `--digest file` or `all`).
        public var sha256: String?
    }

    /// Where the entry ran: the engine's own names for the task, for finding its log.
    public struct Engine: Codable, Sendable {
        /// slurm, kubernetes or local.
        public var kind: String
        public var host: String
        public var pid: Int32
        public var jobID: String?
        public var arrayJobID: String?
        public var taskID: String?
        public var pod: String?
        /// The niceness and I/O class the conversion ran at.
        public var nice: Int32?
        public var ioClass: String?

        public init(kind: String, host: String, pid: Int32, jobID: String? = nil, arrayJobID: String? = nil, taskID: String? = nil, pod: String? = nil) {
            self.kind = kind
            self.host = host
            self.pid = pid
            self.jobID = jobID
            self.arrayJobID = arrayJobID
            self.taskID = taskID
            self.pod = pod
        }
    }

    public var schema = ResultRecord.schemaVersion
    public var id: String
    public var index: Int
    public var manifest: String
    /// SHA-256 over the inputs' identity, the convert arguments, the directory they run in and the
    /// Rehost version: a record whose key differs is stale.
    public var key: String
    public var rehostVersion: String
    public var status: Status
    /// For a failure: whether running it again may succeed (a transient fault).
    public var retryable: Bool?
    /// For a failure: bad-input, usage, no-space, io-error, network, interrupted, crashed, failed.
    public var cause: String?
    public var exitCode: Int32?
    /// The conversion's error, one line.
    public var error: String?
    public var inputs: [Input]
    public var arguments: [String]
    public var outputs: [Output]
    /// What the conversion's `--json` printed for its uploads (image, snapshot or AMI ids).
    public var uploads: JSONValue?
    /// The conversion's whole `--json` report.
    public var report: JSONValue?
    public var engine: Engine
    public var started: String
    public var finished: String?
    public var seconds: Double?
    /// How many times this key was started here (1 on the first run).
    public var attempt: Int
}
