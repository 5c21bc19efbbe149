import Foundation
import ImageCore

/// Errors from the test helpers; each `description` is one line that a failing test prints as is.
public enum TestSupportError: RehostError, Equatable {
    case toolMissing(tool: String)
    case launchFailed(program: String, reason: String)
    case commandFailed(commandLine: String, status: Int32, stderr: String)
    case timedOut(commandLine: String, seconds: Double)
    case rehostNotBuilt(searched: [String])
    case debugfsFailed(image: String, command: String, stderr: String)
    case debugfsOutput(image: String, command: String, expected: String, got: String)
    case fixtureFailed(script: String, reason: String)
    case temporaryDirectory(path: String, errno: Int32)

    public var description: String {
        switch self {
        case let .toolMissing(tool):
            return "\(tool): not installed (not on PATH, /usr/sbin or /sbin); the project set-up must install it"
        case let .launchFailed(program, reason):
            return "\(program): cannot start: \(reason)"
        case let .commandFailed(commandLine, status, stderr):
            return "`\(commandLine)` exited with status \(status): \(Self.lastLine(of: stderr))"
        case let .timedOut(commandLine, seconds):
            return "`\(commandLine)` was killed after its \(seconds) s timeout"
        case let .rehostNotBuilt(searched):
            return "rehost executable not found (looked in \(searched.joined(separator: ", "))); build it with swift build first"
        case let .debugfsFailed(image, command, stderr):
            return "debugfs on \(image): `\(command)` failed: \(Self.lastLine(of: stderr))"
        case let .debugfsOutput(image, command, expected, got):
            return "debugfs on \(image): `\(command)`: expected \(expected), got \(got.debugDescription)"
        case let .fixtureFailed(script, reason):
            return "fixture script \(script) failed: \(reason)"
        case let .temporaryDirectory(path, errno):
            return "\(path): cannot create a temporary directory: \(errnoText(errno))"
        }
    }

    /// Tools put the useful part of a failure on their last non-empty stderr line.
    static func lastLine(of text: String) -> String {
        text.split(separator: "\n").last { !$0.trimmingCharacters(in: .whitespaces).isEmpty }.map(String.init) ?? "(no stderr)"
    }
}
