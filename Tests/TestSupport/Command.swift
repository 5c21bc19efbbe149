import Foundation
import ImageCore
#if canImport(Glibc)
import Glibc
#endif

/// What a finished program left behind.
public struct CommandResult: Sendable {
    public let commandLine: String
    /// The exit status, or 128 + the signal number when a signal ended the program (as shells report it).
    public let status: Int32
    public let timedOut: Bool
    public let stdoutBytes: [UInt8]
    public let stderrBytes: [UInt8]

    public var stdout: String { String(decoding: stdoutBytes, as: UTF8.self) }
    public var stderr: String { String(decoding: stderrBytes, as: UTF8.self) }
    public var succeeded: Bool { status == 0 && !timedOut }

    /// Returns self when the program exited 0, otherwise throws with its last stderr line.
    @discardableResult
    public func requireSuccess() throws -> CommandResult {
        if timedOut { throw TestSupportError.commandFailed(commandLine: commandLine, status: status, stderr: "timed out") }
        guard status == 0 else {
            throw TestSupportError.commandFailed(commandLine: commandLine, status: status, stderr: stderr)
        }
        return self
    }
}

/// Runs programs for tests: real tools only, output captured whole, with a timeout.
public enum Command {
    /// Runs `program` (a path, or a name looked up like `Tool.find`) and waits for it.
    /// Output goes to temporary files rather than pipes, so a program that forks a long-lived child
    /// holding its stdout open cannot make the test hang.
    /// - Parameters:
    ///   - environment: added to (and overriding) this process's environment.
    ///   - timeout: the program gets SIGTERM after this, then SIGKILL 2 s later; the result says `timedOut`.
    ///   - asUser: runs it through `setpriv` with that user's uid, group `nogroup` and no supplementary groups.
    public static func run(
        _ program: String, _ arguments: [String] = [], stdin: [UInt8]? = nil,
        environment: [String: String] = [:], timeout: Duration = .seconds(600),
        asUser: String? = nil, currentDirectory: String? = nil
    ) throws -> CommandResult {
        let executable = program.contains("/") ? program : try require(program)
        var argv = [executable] + arguments
        if let user = asUser {
            argv = [try require("setpriv"), "--reuid=\(user)", "--regid=nogroup", "--clear-groups", "--"] + argv
        }
        let commandLine = argv.map(shellQuoted).joined(separator: " ")

        let scratch = try TemporaryDirectory(prefix: "rehost-command")
        let outPath = scratch.file("stdout"), errPath = scratch.file("stderr"), inPath = scratch.file("stdin")
        _ = FileManager.default.createFile(atPath: outPath, contents: nil)
        _ = FileManager.default.createFile(atPath: errPath, contents: nil)
        _ = FileManager.default.createFile(atPath: inPath, contents: Data(stdin ?? []))
        guard let outHandle = FileHandle(forWritingAtPath: outPath),
              let errHandle = FileHandle(forWritingAtPath: errPath),
              let inHandle = FileHandle(forReadingAtPath: inPath)
        else { throw TestSupportError.launchFailed(program: executable, reason: "cannot open capture files in \(scratch.path)") }
        defer { try? outHandle.close(); try? errHandle.close(); try? inHandle.close() }

        let process = Process()
        process.executableURL = URL(fileURLWithPath: argv[0])
        process.arguments = Array(argv.dropFirst())
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        if let currentDirectory { process.currentDirectoryURL = URL(fileURLWithPath: currentDirectory) }
        process.standardInput = inHandle
        process.standardOutput = outHandle
        process.standardError = errHandle

        let finished = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in finished.signal() }
        do {
            try process.run()
        } catch {
            throw TestSupportError.launchFailed(program: executable, reason: "\(error)")
        }

        var timedOut = false
        if finished.wait(timeout: .now() + timeout.timeInterval) == .timedOut {
            timedOut = true
            process.terminate()
            if finished.wait(timeout: .now() + 2) == .timedOut {
                kill(process.processIdentifier, SIGKILL)
                finished.wait()
            }
        }
        process.waitUntilExit()

        let status = process.terminationReason == .uncaughtSignal
            ? 128 + process.terminationStatus : process.terminationStatus
        let outBytes = FileManager.default.contents(atPath: outPath) ?? Data()
        let errBytes = FileManager.default.contents(atPath: errPath) ?? Data()
        return CommandResult(commandLine: commandLine, status: status, timedOut: timedOut,
                             stdoutBytes: Array(outBytes), stderrBytes: Array(errBytes))
    }

    /// The path of `tool`; throws (so the test fails, never skips) with a clear message when it is missing.
    @discardableResult
    public static func require(_ tool: String) throws -> String {
        guard let path = Tool.find(tool) else { throw TestSupportError.toolMissing(tool: tool) }
        return path
    }

    /// Runs the `rehost` built alongside the running tests.
    public static func runRehost(
        _ arguments: [String], asUser: String? = nil, stdin: [UInt8]? = nil,
        environment: [String: String] = [:], timeout: Duration = .seconds(600),
        currentDirectory: String? = nil
    ) throws -> CommandResult {
        try run(rehostExecutable(), arguments, stdin: stdin, environment: environment, timeout: timeout,
                asUser: asUser, currentDirectory: currentDirectory)
    }

    /// Finds the `rehost` executable: $REHOST_EXECUTABLE if set, else next to the running test
    /// binary (which covers `--scratch-path` builds), else `.build*/{debug,release}` in the package root.
    public static func rehostExecutable() throws -> String {
        var candidates: [String] = []
        if let explicit = ProcessInfo.processInfo.environment["REHOST_EXECUTABLE"] { candidates.append(explicit) }
        for binary in [runningExecutable(), CommandLine.arguments.first].compactMap({ $0 }) {
            let absolute = binary.hasPrefix("/") ? binary : FileManager.default.currentDirectoryPath + "/" + binary
            // The test binary is `<products>/X.xctest` (a file on Linux, a bundle on macOS).
            var directory = (absolute as NSString).deletingLastPathComponent
            for _ in 0..<4 {
                candidates.append(directory + "/rehost")
                directory = (directory as NSString).deletingLastPathComponent
            }
        }
        let root = Fixture.repositoryRoot
        let buildDirectories = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? [])
            .filter { $0.hasPrefix(".build") }.sorted()
        for build in buildDirectories {
            candidates += ["\(root)/\(build)/debug/rehost", "\(root)/\(build)/release/rehost"]
        }
        for candidate in candidates where FileManager.default.isExecutableFile(atPath: candidate) {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: candidate, isDirectory: &isDirectory), !isDirectory.boolValue {
                return candidate
            }
        }
        throw TestSupportError.rehostNotBuilt(searched: Array(Set(candidates.map {
            ($0 as NSString).deletingLastPathComponent
        })).sorted())
    }

    /// /proc/self/exe names the test binary even when it was started through a relative path or a symlink.
    private static func runningExecutable() -> String? {
        try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
    }
}

/// Quotes one argument for display in a failure message, so it can be pasted into a shell.
func shellQuoted(_ argument: String) -> String {
    let plain = argument.allSatisfy { $0.isLetter || $0.isNumber || "-_./=:,+@%".contains($0) }
    if plain && !argument.isEmpty { return argument }
    return "'" + argument.replacingOccurrences(of: "'", with: "'\\''") + "'"
}

extension Duration {
    var timeInterval: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
