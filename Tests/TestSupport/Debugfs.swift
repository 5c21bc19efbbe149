import Foundation

/// Runs batches of read-only debugfs commands against one filesystem and hands back each command's
/// stdout separately. debugfs echoes every command of a `-f` file as `debugfs: COMMAND` before its
/// output, which is what lets one process serve hundreds of commands.
struct DebugfsSession {
    let image: String
    let offset: UInt64

    /// debugfs's own syntax for a filesystem inside a bigger file.
    var target: String { offset == 0 ? image : "\(image)?offset=\(offset)" }
    var displayName: String { offset == 0 ? image : "\(image) at byte \(offset)" }

    func run(_ commands: [String], scratch: TemporaryDirectory) throws -> [ArraySlice<UInt8>] {
        if commands.isEmpty { return [] }
        let commandFile = scratch.file("debugfs-\(UUID().uuidString).cmd")
        try Data((commands.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: commandFile))
        defer { try? FileManager.default.removeItem(atPath: commandFile) }

        let result = try Command.run(Command.require("debugfs"), ["-f", commandFile, target], timeout: .seconds(600))
        // debugfs reports a filesystem it cannot open on stderr and then runs every command against nothing.
        if result.status != 0 || result.stderr.contains("Filesystem not open") || result.stderr.contains("while trying to open") {
            throw TestSupportError.debugfsFailed(image: displayName, command: commands[0], stderr: result.stderr)
        }
        let output = result.stdoutBytes
        var starts: [(echo: Int, body: Int)] = []
        var cursor = 0
        for command in commands {
            let echo = Array("debugfs: \(command)\n".utf8)
            guard let found = find(echo, in: output, from: cursor) else {
                throw TestSupportError.debugfsOutput(image: displayName, command: command,
                                                     expected: "its echo line in the output", got: result.stderr)
            }
            starts.append((found, found + echo.count))
            cursor = found + echo.count
        }
        return starts.indices.map { index in
            let end = index + 1 < starts.count ? starts[index + 1].echo : output.count
            return output[starts[index].body..<end]
        }
    }

    /// Index of the first `needle` in `haystack` at or after `start` (commands always start a line).
    private func find(_ needle: [UInt8], in haystack: [UInt8], from start: Int) -> Int? {
        guard !needle.isEmpty, haystack.count >= needle.count else { return nil }
        var index = start
        let last = haystack.count - needle.count
        while index <= last {
            if haystack[index] == needle[0], index == 0 || haystack[index - 1] == UInt8(ascii: "\n"),
               haystack[index..<index + needle.count].elementsEqual(needle) {
                return index
            }
            index += 1
        }
        return nil
    }
}
