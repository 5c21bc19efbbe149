import ArgumentParser
import Batch
import Foundation
import ImageCore

#if canImport(Glibc)
import Glibc
#endif

struct BatchValidateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Check every entry of a manifest before anything runs.",
        discussion: """
            Checks the manifest's syntax and ids; each entry's options, as `rehost convert` would take \
            them; that its inputs are there and readable, that its outputs' directories exist and are \
            writable, and that no two entries write the same output; and that the results directory \
            can be written. Reads no image. Prints every problem, MANIFEST:LINE: entry N (ID): what is \
            wrong, and exits 64 if there is any.
            """)

    @OptionGroup var batch: BatchManifestOptions

    @Flag(help: "Print the entries and problems as JSON.")
    var json = false

    struct Report: Encodable {
        var manifest: String
        var entries: Int
        var results: String
        var problems: [String]
    }

    func run() throws {
        let manifest = try batch.load()
        let results = batch.resultsDirectory(manifest)
        var problems: [String] = []
        var writers: [String: BatchEntry] = [:]
        for entry in manifest.entries {
            let head = "\(manifest.path):\(entry.line): entry \(entry.index) (\(entry.id))"
            for problem in Self.problems(of: entry, in: manifest.directory) { problems.append("\(head): \(problem)") }
            for output in entry.outputs {
                let path = Self.absolute(output, in: manifest.directory)
                if let other = writers[path] {
                    problems.append("\(head): output \(output) is also entry \(other.index)'s (\(other.id))")
                } else {
                    writers[path] = entry
                }
            }
        }
        if let problem = Self.writableDirectoryProblem(results, creatable: true) { problems.append("results directory \(results): \(problem)") }
        if json {
            try printJSON(Report(manifest: manifest.path, entries: manifest.entries.count, results: results, problems: problems))
        } else {
            for problem in problems { print(problem.escapedForTerminal()) }
            print("\(manifest.entries.count) entr\(manifest.entries.count == 1 ? "y" : "ies"): "
                  + (problems.isEmpty ? "no problems" : "\(problems.count) problem\(problems.count == 1 ? "" : "s")"))
        }
        if !problems.isEmpty { throw ExitCode(ExitCodes.usage) }
    }

    static func absolute(_ path: String, in directory: String) -> String { path.hasPrefix("/") ? path : "\(directory)/\(path)" }

    static func problems(of entry: BatchEntry, in directory: String) -> [String] {
        var problems: [String] = []
        // The options as convert parses them, in the manifest's directory (for relative paths
        // that convert's own checks open).
        let previous = FileManager.default.currentDirectoryPath
        FileManager.default.changeCurrentDirectoryPath(directory)
        do {
            _ = try ConvertCommand.parse(entry.convertArguments)
        } catch {
            problems.append(ConvertCommand.message(for: error).split(separator: "\n").first.map(String.init) ?? "invalid options")
        }
        FileManager.default.changeCurrentDirectoryPath(previous)
        for input in entry.inputs {
            let path = absolute(input, in: directory)
            let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
            if fd < 0 { problems.append("input \(input): \(errnoText(errno))") } else { close(fd) }
        }
        for output in entry.outputs {
            let parent = (absolute(output, in: directory) as NSString).deletingLastPathComponent
            if let problem = writableDirectoryProblem(parent, creatable: false) { problems.append("output \(output): \(parent): \(problem)") }
        }
        return problems
    }

    /// Why `path` cannot take new files, or nil; `creatable`: it may not exist yet if its parent can.
    static func writableDirectoryProblem(_ path: String, creatable: Bool) -> String? {
        var info = stat()
        if stat(path, &info) != 0 {
            let code = errno
            if code == ENOENT, creatable {
                let parent = (path as NSString).deletingLastPathComponent
                return writableDirectoryProblem(parent.isEmpty ? "/" : parent, creatable: true).map { "cannot be made: \($0)" }
            }
            return code == ENOENT ? "no such directory" : errnoText(code)
        }
        guard info.st_mode & S_IFMT == S_IFDIR else { return "not a directory" }
        return access(path, W_OK | X_OK) == 0 ? nil : "not writable: \(errnoText(errno))"
    }
}
