import DiskLayout
import Foundation
import GuestFixups
import ImageCore

#if canImport(Glibc)
import Glibc
#endif

/// What `rehost build` did, step by step: written next to the outputs as NAME.build.json and
/// printed by `--json`.
public struct BuildRecord: Codable, Sendable {
    public struct Base: Codable, Sendable {
        public var path: String
        public var size: UInt64
        /// Modification time, seconds since the epoch, and as UTC ISO 8601.
        public var mtime: Int64
        public var modified: String
    }

    /// One step of the build and what it did.
    public struct Step: Codable, Sendable {
        /// "convert", "clean", "customize", "cloud-init" or "write".
        public var step: String
        public var summary: String
        /// convert: the repairs made.
        public var changes: [GuestChange]?
        /// clean and customize: every file touched.
        public var edits: [GuestEdit]?
        /// write: every output.
        public var outputs: [OutputReport]?
    }

    public var recipe: String
    public var recipeSHA256: String
    public var rehostVersion: String
    public var base: Base
    public var dryRun: Bool
    public var started: String
    public var finished: String
    public var seconds: Double
    public var steps: [Step]
    public var outputs: [OutputReport]
    /// Where this record was written (nil on a dry run).
    public var record: String?
    public var warnings: [String]
    /// The password `root-password: random` chose.
    public var randomRootPassword: String?
}

/// `rehost build`: a recipe made into ConvertOptions and run through the Converter, once.
public struct Builder {
    public let recipe: BuildRecipe
    public let version: String

    public init(recipe: BuildRecipe, version: String) {
        self.recipe = recipe
        self.version = version
    }

    /// Where the record goes: NAME.build.json in the first output's directory.
    public var recordPath: String {
        let first = recipe.outputs[0].path
        let directory = first.lastIndex(of: "/").map { String(first[..<$0]) } ?? "."
        return (directory.isEmpty ? "" : directory + "/") + recipe.name + ".build.json"
    }

    public func run(dryRun: Bool, progress: ProgressSink) throws -> BuildRecord {
        let start = Date()
        var info = stat()
        guard stat(recipe.base, &info) == 0 else { throw FileError.open(path: recipe.base, errno: errno) }
        let base = BuildRecord.Base(path: recipe.base, size: UInt64(info.st_size), mtime: Int64(info.st_mtim.tv_sec),
                                    modified: Self.iso8601(Date(timeIntervalSince1970: TimeInterval(info.st_mtim.tv_sec))))
        let options = try recipe.convertOptions(dryRun: dryRun)
        guard !recipe.outputs.contains(where: { $0.path == recordPath }) else {
            throw RecipeError(file: recipe.file, line: nil, message: "an output is named like the record, \(recordPath)")
        }
        let report = try Converter(options: options, progress: progress).run()

        // The edits come in order: clean's, then customize's, each followed by the labels of
        // what it created; customize's start at its first operation.
        let edits = report.guestEdits ?? []
        let customizeStart = recipe.clean == nil ? 0 : edits.firstIndex { Self.customizeOperations.contains($0.operation) } ?? edits.count
        var steps: [BuildRecord.Step] = []
        let disk = report.disk.map { " into a \(ByteCount.format($0.diskSize)) disk" } ?? ""
        let repairs = report.changes.filter { $0.repair != NoCloudSeed.repairName || recipe.cloudInit == nil }
        steps.append(.init(step: "convert", summary: "\(report.input.kind) \(report.input.path)\(disk) for \(report.target): \(repairs.count) repair\(repairs.count == 1 ? "" : "s")",
                           changes: repairs))
        if recipe.clean != nil {
            let done = Array(edits[..<customizeStart])
            steps.append(.init(step: "clean", summary: "\(options.clean.map(\.name).joined(separator: ", ")): \(done.count) change\(done.count == 1 ? "" : "s")", edits: done))
        }
        if !options.customize.isEmpty {
            let done = Array(edits[customizeStart...])
            let packages = recipe.packages.isEmpty ? "" : "; first-boot install of \(recipe.packages.joined(separator: " "))"
            steps.append(.init(step: "customize", summary: "\(done.count) change\(done.count == 1 ? "" : "s")\(packages)", edits: done))
        }
        // The seed is written last, after clean (whose cloud-init operation would remove it) and customize.
        if recipe.cloudInit != nil {
            let seeded = report.changes.filter { $0.repair == NoCloudSeed.repairName }
            steps.append(.init(step: "cloud-init", summary: "a NoCloud seed: \(seeded.count) change\(seeded.count == 1 ? "" : "s")", changes: seeded))
        }
        let written = recipe.outputs.map { "\($0.path) (\($0.format.rawValue))" }.joined(separator: ", ")
        steps.append(.init(step: "write", summary: dryRun ? "would write \(written)" : written,
                           outputs: report.outputs))
        let end = Date()
        var record = BuildRecord(recipe: recipe.file, recipeSHA256: recipe.sha256, rehostVersion: version, base: base, dryRun: dryRun,
                                 started: Self.iso8601(start), finished: Self.iso8601(end), seconds: end.timeIntervalSince(start),
                                 steps: steps, outputs: report.outputs, record: dryRun ? nil : recordPath, warnings: report.warnings,
                                 randomRootPassword: report.randomRootPassword)
        record.seconds = (record.seconds * 1000).rounded() / 1000
        if !dryRun {
            let output = try AtomicOutput(finalPath: recordPath)
            try output.file.write(Array(try Self.json(record)), at: 0)
            try output.commit()
        }
        return record
    }

    /// The operations of `rehost customize`, as its edits name them.
    static let customizeOperations: Set<String> = ["mkdir", "copy-in", "write", "append-line", "delete", "chmod", "hostname", "timezone",
                                                   "root-password", "ssh-inject", "firstboot"]

    public static func json(_ record: BuildRecord) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        var data = try encoder.encode(record)
        data.append(0x0a)
        return data
    }

    static func iso8601(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: date)
    }
}
