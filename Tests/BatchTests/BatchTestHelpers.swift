@testable import Batch
import Foundation
import Testing
import TestSupport

/// Writes `text` to `path`, making its directory.
func write(_ text: String, to path: String) throws {
    try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    guard FileManager.default.createFile(atPath: path, contents: Data(text.utf8)) else {
        throw ManifestError(file: path, line: nil, message: "test: cannot write")
    }
}

/// A manifest file in a fresh directory, read.
func loadManifest(_ text: String, name: String = "fleet.jsonl", defaults: String? = nil) throws -> (TemporaryDirectory, BatchManifest) {
    let directory = try TemporaryDirectory(prefix: "rehost-batch")
    try write(text, to: directory.file(name))
    var defaultsPath: String?
    if let defaults {
        defaultsPath = directory.file("defaults.json")
        try write(defaults, to: defaultsPath!)
    }
    return (directory, try BatchManifest(path: directory.file(name), defaultsFile: defaultsPath))
}

/// The error a manifest is refused with; records an issue when it is accepted.
func manifestError(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> ManifestError? {
    let directory = try TemporaryDirectory(prefix: "rehost-batch")
    let path = directory.file("m.jsonl")
    try write(text, to: path)
    do {
        let manifest = try BatchManifest(path: path)
        Issue.record("accepted, with \(manifest.entries.count) entries", sourceLocation: sourceLocation)
        return nil
    } catch let error as ManifestError {
        #expect(error.file == path, sourceLocation: sourceLocation)
        return error
    }
}

/// `description` without the file name: "LINE: message" or the message alone.
func located(_ error: ManifestError?) -> String {
    guard let error else { return "" }
    return String(error.description.dropFirst(error.file.count + 1)).trimmingCharacters(in: .whitespaces)
}
