import Foundation
import ImageCore

/// A fresh directory under /tmp, removed with everything in it when released.
final class TestDirectory {
    let path: String

    init() throws {
        var template = Array("/tmp/rehost-formats-test-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw FixtureError("mkdtemp failed: \(errno)") }
        path = String(cString: made)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    func file(_ name: String) -> String { "\(path)/\(name)" }

    /// Names of the entries in the directory (hidden ones included).
    func contents() throws -> [String] { try FileManager.default.contentsOfDirectory(atPath: path).sorted() }
}

struct FixtureError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Runs a real tool and fails loudly if it fails.
@discardableResult
func run(_ tool: String, _ arguments: [String], stdin: String? = nil) throws -> [UInt8] {
    guard let executable = Tool.find(tool) else { throw FixtureError("\(tool) is not installed") }
    if let stdin {
        // sfdisk reads its script from standard input.
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let input = Pipe(), output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = output
        try process.run()
        input.fileHandleForWriting.write(Data(stdin.utf8))
        try input.fileHandleForWriting.close()
        let text = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw FixtureError("\(tool) \(arguments) failed: \(String(decoding: text, as: UTF8.self))")
        }
        return Array(text)
    }
    let result = try Tool.run(executable, arguments)
    guard result.status == 0 else { throw FixtureError("\(tool) \(arguments) failed: \(result.stderr)") }
    return result.stdout
}

/// A sparse file of `size` bytes.
func makeSparseFile(_ path: String, size: UInt64) throws {
    guard FileManager.default.createFile(atPath: path, contents: nil) else { throw FixtureError("cannot create \(path)") }
    let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
    try handle.truncate(atOffset: size)
    try handle.close()
}

/// An ext3 filesystem made by mke2fs: in a file of its own, or at `offset` inside an existing disk file.
func makeExt3(_ path: String, sizeKiB: UInt64, label: String, uuid: String, offset: UInt64? = nil) throws {
    var arguments = ["-q", "-F", "-t", "ext3", "-L", label, "-U", uuid, "-b", "1024"]
    if let offset {
        arguments += ["-E", "offset=\(offset)"]
    } else {
        try makeSparseFile(path, size: sizeKiB * 1024)
    }
    try run("mke2fs", arguments + [path, "\(sizeKiB)k"])
}

/// A sparse MBR disk of `sizeMiB` with the given sfdisk script lines.
func makeMBRDisk(_ path: String, sizeMiB: UInt64, partitions: [String]) throws {
    try makeSparseFile(path, size: sizeMiB * ByteCount.MiB)
    let script = (["label: dos"] + partitions).joined(separator: "\n") + "\n"
    try run("sfdisk", ["--no-reread", "--no-tell-kernel", "-q", path], stdin: script)
}

func gzipBytes(_ path: String) throws -> [UInt8] { try run("gzip", ["-n", "-c", path]) }

func readAll(_ path: String) throws -> [UInt8] { Array(try Data(contentsOf: URL(fileURLWithPath: path))) }

func writeAll(_ path: String, _ bytes: [UInt8]) throws {
    try Data(bytes).write(to: URL(fileURLWithPath: path))
}

/// Bytes and modification time, to show an input was left alone.
struct FileFingerprint: Equatable {
    let bytes: [UInt8]
    let modified: Timestamp

    init(_ path: String) throws {
        bytes = try readAll(path)
        var st = stat()
        guard stat(path, &st) == 0 else { throw FixtureError("stat \(path) failed") }
        modified = Timestamp(seconds: Int(st.st_mtim.tv_sec), nanoseconds: Int(st.st_mtim.tv_nsec))
    }
}

struct Timestamp: Equatable {
    let seconds: Int
    let nanoseconds: Int
}

/// Deterministic bytes that compress somewhat: a mix of noise, text-like runs and zero runs.
func sampleBytes(count: Int, seed: UInt64) -> [UInt8] {
    var state = seed | 1
    var bytes = [UInt8](repeating: 0, count: count)
    var index = 0
    while index < count {
        state ^= state << 13; state ^= state >> 7; state ^= state << 17
        let run = Int(state % 4096) + 1
        let mode = (state >> 20) % 3
        for i in index..<min(count, index + run) {
            switch mode {
            case 0: state ^= state << 13; state ^= state >> 7; state ^= state << 17; bytes[i] = UInt8(truncatingIfNeeded: state)
            case 1: bytes[i] = UInt8(0x61 + (i % 23))
            default: bytes[i] = 0
            }
        }
        index += run
    }
    return bytes
}

/// Allocated bytes on disk, to check sparseness.
func allocatedBytes(_ path: String) throws -> UInt64 {
    var st = stat()
    guard stat(path, &st) == 0 else { throw FixtureError("stat \(path) failed") }
    return UInt64(st.st_blocks) * 512
}
