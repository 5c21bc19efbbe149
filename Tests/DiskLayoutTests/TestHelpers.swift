import Foundation
import ImageCore
import Testing

/// A fresh directory under the temporary directory, removed with its contents on deinit.
final class ScratchDirectory {
    let path: String

    init() throws {
        path = NSTemporaryDirectory() + "rehost-disklayout-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    func file(_ name: String) -> String { "\(path)/\(name)" }
}

struct ToolFailure: Error, CustomStringConvertible {
    let description: String
}

/// Runs a host tool that the project set-up installs, and returns its stdout; a missing tool or a
/// non-zero status fails the test with the tool's message.
@discardableResult
func runTool(_ name: String, _ arguments: [String]) throws -> String {
    guard let executable = Tool.find(name) else { throw ToolFailure(description: "\(name) is not installed") }
    let result = try Tool.run(executable, arguments)
    guard result.status == 0 else {
        throw ToolFailure(description: "\(name) \(arguments.joined(separator: " ")) exited \(result.status): \(result.stderr)")
    }
    return String(decoding: result.stdout, as: UTF8.self)
}

/// A sparse disk file of `size` bytes with `sector0` at its start.
func makeDisk(at path: String, size: UInt64, sector0: [UInt8]) throws {
    let file = try RawFile(path: path, mode: .createExclusive)
    try file.truncate(to: size)
    try file.write(sector0, at: 0)
}

/// `sfdisk --json`'s answer, as far as the tests read it.
struct SfdiskTable: Decodable {
    struct Table: Decodable {
        let label: String
        let id: String
        let partitions: [Partition]
    }
    struct Partition: Decodable {
        let start: UInt64
        let size: UInt64
        let type: String
        let bootable: Bool?
    }
    let partitiontable: Table
}

/// What `sfdisk --json` reads from a disk file.
func sfdiskTable(_ path: String) throws -> SfdiskTable.Table {
    try JSONDecoder().decode(SfdiskTable.self, from: Data(try runTool("sfdisk", ["--json", path]).utf8)).partitiontable
}
