import Foundation

/// Runs a helper program (grub-mkimage) and captures its output.
public struct ToolResult: Sendable {
    public let status: Int32
    public let stdout: [UInt8]
    public let stderr: String
}

public enum ToolError: RehostError {
    case notFound(tool: String, hint: String)
    case failed(tool: String, status: Int32, stderr: String)

    public var description: String {
        switch self {
        case let .notFound(tool, hint): return "\(tool) not found: \(hint)"
        case let .failed(tool, status, stderr):
            let firstLine = stderr.split(separator: "\n").first.map(String.init) ?? ""
            return "\(tool) failed with status \(status): \(firstLine)"
        }
    }
}

public enum Tool {
    /// Finds an executable on PATH (and in the sbin directories, which unprivileged PATHs lack).
    public static func find(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        let dirs = path.split(separator: ":").map(String.init) + ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        for dir in dirs where FileManager.default.isExecutableFile(atPath: "\(dir)/\(name)") {
            return "\(dir)/\(name)"
        }
        return nil
    }

    public static func run(_ executable: String, _ arguments: [String]) throws -> ToolResult {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // Read both pipes to the end before waiting, so a chatty tool never blocks on a full pipe.
        nonisolated(unsafe) var errData = Data()
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async {
            errData = err.fileHandleForReading.readDataToEndOfFile()
            group.leave()
        }
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        process.waitUntilExit()
        return ToolResult(status: process.terminationStatus, stdout: Array(outData),
                          stderr: String(decoding: errData, as: UTF8.self))
    }
}
