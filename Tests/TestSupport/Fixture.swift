import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The generated Xen instance: a bare ext3 root filesystem image and the facts its script recorded.
public struct FixtureImage: Sendable, Equatable {
    /// `DIR/xen-instance.img`.
    public let imagePath: String
    /// The output directory the script was run with.
    public let directory: String
    /// The KEY=VALUE lines of `DIR/xen-instance.env` (FS_LABEL, FS_UUID, KERNEL_VERSION, ...), quotes removed.
    public let environment: [String: String]

    public subscript(key: String) -> String? { environment[key] }

    public init(imagePath: String, directory: String, environment: [String: String]) {
        self.imagePath = imagePath
        self.directory = directory
        self.environment = environment
    }
}

public enum Fixture {
    /// The package root, found from this file's own path (Tests/TestSupport/Fixture.swift).
    public static let repositoryRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    public static var defaultScript: String { "\(repositoryRoot)/Fixtures/make-xen-instance.sh" }
    public static var defaultDirectory: String { "/tmp/rehost-fixture-\(getuid())" }

    /// Results per (script, directory), so the script runs once per test process. The lock is held
    /// while the script runs: parallel tests asking for the fixture wait for the one run.
    private static let cache = Mutex<[String: Result<FixtureImage, TestSupportError>]>([:])

    /// Builds (or reuses, thanks to the script's own cache) the Xen instance image.
    public static func xenInstance(script: String = defaultScript, directory: String = defaultDirectory) throws -> FixtureImage {
        let key = "\(script)\u{0}\(directory)"
        let result = cache.withLock { results in
            if let known = results[key] { return known }
            let made = Result { () throws(TestSupportError) -> FixtureImage in try build(script: script, directory: directory) }
            results[key] = made
            return made
        }
        return try result.get()
    }

    private static func build(script: String, directory: String) throws(TestSupportError) -> FixtureImage {
        guard FileManager.default.fileExists(atPath: script) else {
            throw .fixtureFailed(script: script, reason: "no such file")
        }
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw .fixtureFailed(script: script, reason: "cannot create \(directory): \(error)")
        }
        let result: CommandResult
        do {
            // The first run downloads and unpacks a kernel: give it plenty of time.
            result = try Command.run("/bin/bash", [script, directory], timeout: .seconds(1800))
        } catch let error as TestSupportError {
            throw error
        } catch {
            throw .fixtureFailed(script: script, reason: "\(error)")
        }
        guard result.succeeded else {
            let why = result.timedOut ? "timed out" : "status \(result.status)"
            throw .fixtureFailed(script: script, reason: "\(why): \(TestSupportError.lastLine(of: result.stderr))")
        }
        let imagePath = "\(directory)/xen-instance.img"
        let envPath = "\(directory)/xen-instance.env"
        guard FileManager.default.fileExists(atPath: imagePath) else {
            throw .fixtureFailed(script: script, reason: "it exited 0 but wrote no \(imagePath)")
        }
        guard let envData = FileManager.default.contents(atPath: envPath) else {
            throw .fixtureFailed(script: script, reason: "it exited 0 but wrote no \(envPath)")
        }
        return FixtureImage(imagePath: imagePath, directory: directory,
                            environment: parseEnvironmentFile(String(decoding: envData, as: UTF8.self)))
    }

    /// Reads shell-sourceable KEY=VALUE lines: comments, blank lines and `export ` are skipped,
    /// one level of single or double quotes is removed. No variable expansion.
    public static func parseEnvironmentFile(_ text: String) -> [String: String] {
        var values: [String: String] = [:]
        for rawLine in text.split(separator: "\n", omittingEmptySubsequences: true) {
            var line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            if line.hasPrefix("export ") { line = String(line.dropFirst("export ".count)).trimmingCharacters(in: .whitespaces) }
            guard let equals = line.firstIndex(of: "=") else { continue }
            let key = String(line[..<equals])
            var value = String(line[line.index(after: equals)...])
            if value.count >= 2, let first = value.first, first == value.last, first == "\"" || first == "'" {
                value = String(value.dropFirst().dropLast())
                if first == "\"" {
                    value = value.replacingOccurrences(of: "\\\"", with: "\"").replacingOccurrences(of: "\\\\", with: "\\")
                }
            }
            values[key] = value
        }
        return values
    }
}
