import Foundation
import ImageCore

/// A batch: JSON Lines, one image per line. An optional first line `{"defaults": {...}}` gives what
/// every entry has unless it says otherwise; entry N is then the N+1-th entry line (its line number
/// is in every message). An entry:
///
///     {"id": "web1", "input": "instances/i-1a2b/root.img", "outputs": ["out/web1.qcow2"],
///      "options": {"target": "kvm", "size": "10G", "skip": ["network"], "upload": "glance"}}
///
/// `options` are `rehost convert`'s long options without the dashes: a string or number is the
/// value, `true` a flag (`false` leaves out a flag a default set), a list a repeated option.
/// Relative paths, in the entry and in its options, are relative to the manifest's directory.
public struct BatchManifest: Sendable {
    public let path: String
    /// The manifest's directory, absolute: every entry runs there.
    public let directory: String
    public let entries: [BatchEntry]

    /// Where result records go unless told: MANIFEST-NAME.results beside the manifest.
    public var defaultResultsDirectory: String {
        let name = (path as NSString).lastPathComponent
        let stem = name.hasSuffix(".jsonl") ? String(name.dropLast(6)) : name
        return "\(directory)/\(stem).results"
    }

    /// Options the batch sets itself, or that would make an entry's run mean something else.
    public static let reservedOptions: Set<String> = ["output", "o", "json", "quiet", "q", "dry-run", "help", "h", "version"]

    public init(path: String, defaultsFile: String? = nil) throws {
        let bytes = try Self.readAll(path)
        let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        self.path = path
        self.directory = (absolute as NSString).deletingLastPathComponent.isEmpty ? "/" : (absolute as NSString).deletingLastPathComponent
        var defaults = Defaults()
        if let defaultsFile {
            let object = try Self.parseObject(Self.readAll(defaultsFile), file: defaultsFile, line: nil)
            defaults = try Defaults(object, file: defaultsFile, line: nil)
        }
        var entries: [BatchEntry] = []
        var seen: [String: Int] = [:]
        let lines = bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        for (offset, raw) in lines.enumerated() {
            let number = offset + 1
            let text = raw.last == UInt8(ascii: "\r") ? raw.dropLast() : raw
            if text.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) {
                // A final newline ends the last line; an empty line anywhere else would shift the
                // engines' idea of which line is entry N.
                if number == lines.count { continue }
                throw ManifestError(file: path, line: number, message: "an empty line; every line is one entry (or the defaults line first)")
            }
            let object = try Self.parseObject(Array(text), file: path, line: number)
            if entries.isEmpty, number == 1, object["defaults"] != nil {
                guard object.count == 1, case let .object(values)? = object["defaults"] else {
                    throw ManifestError(file: path, line: number, message: "the defaults line is {\"defaults\": {\"outputs\": [...], \"options\": {...}}} and nothing else")
                }
                // A --defaults file is given on the command line: it wins over the header.
                defaults = try Defaults(values, file: path, line: number).overridden(by: defaults)
                continue
            }
            let entry = try BatchEntry(object, index: entries.count, line: number, defaults: defaults, file: path)
            if let first = seen[entry.id] {
                throw ManifestError(file: path, line: number, message: "id \"\(entry.id)\" is already the id of entry \(first) (line \(entries[first].line)); ids name the result records and must be unique")
            }
            seen[entry.id] = entry.index
            entries.append(entry)
        }
        guard !entries.isEmpty else { throw ManifestError(file: path, line: nil, message: "no entries") }
        self.entries = entries
    }

    static func readAll(_ path: String) throws -> [UInt8] {
        let file = try RawFile(path: path, mode: .readOnly)
        let size = try file.size
        // A manifest of a million entries is about 200 MiB; anything bigger is not a manifest.
        guard size <= 1 << 30 else { throw ManifestError(file: path, line: nil, message: "\(size) bytes: too large for a manifest (1 GiB at most)") }
        return try file.read(count: Int(size), at: 0)
    }

    static func parseObject(_ bytes: [UInt8], file: String, line: Int?) throws -> [String: JSONValue] {
        let value: JSONValue
        do {
            value = try JSONDecoder().decode(JSONValue.self, from: Data(bytes))
        } catch {
            throw ManifestError(file: file, line: line, message: "not valid JSON")
        }
        guard case let .object(object) = value else {
            throw ManifestError(file: file, line: line, message: "expected a JSON object, found \(value.kindName)")
        }
        return object
    }

    /// What every entry has unless it says otherwise.
    struct Defaults {
        /// Output paths with `{id}` standing for the entry's id.
        var outputs: [String]?
        var options: [String: JSONValue] = [:]

        init() {}

        init(_ object: [String: JSONValue], file: String, line: Int?) throws {
            for key in object.keys where !["outputs", "options"].contains(key) {
                throw ManifestError(file: file, line: line, message: "defaults: unknown key \"\(key)\" (expected outputs, options)")
            }
            if let value = object["outputs"] { outputs = try BatchEntry.strings(value, key: "defaults.outputs", file: file, line: line) }
            if let value = object["options"] { options = try BatchEntry.options(value, key: "defaults.options", file: file, line: line) }
        }

        func overridden(by other: Defaults) -> Defaults {
            var merged = self
            if let outputs = other.outputs { merged.outputs = outputs }
            merged.options.merge(other.options) { _, new in new }
            return merged
        }
    }
}

/// One image of a batch.
public struct BatchEntry: Sendable, Equatable {
    public let index: Int
    /// Its line in the manifest, from 1.
    public let line: Int
    public let id: String
    public let input: String
    /// More disks of the same guest (an LVM2 group spread over several).
    public let disks: [String]
    public let outputs: [String]
    /// Defaults merged in, sorted by name.
    public let options: [(name: String, value: JSONValue)]

    public static func == (a: BatchEntry, b: BatchEntry) -> Bool {
        a.index == b.index && a.id == b.id && a.input == b.input && a.disks == b.disks && a.outputs == b.outputs
            && a.options.map(\.name) == b.options.map(\.name) && a.options.map(\.value) == b.options.map(\.value)
    }

    static let keys = ["id", "input", "disks", "outputs", "options"]

    init(_ object: [String: JSONValue], index: Int, line: Int, defaults: BatchManifest.Defaults, file: String) throws {
        func fail(_ message: String) -> ManifestError { ManifestError(file: file, line: line, message: message) }
        for key in object.keys.sorted() where !Self.keys.contains(key) {
            throw fail("unknown key \"\(key)\" (an entry has \(Self.keys.joined(separator: ", ")); convert's options go in \"options\")")
        }
        guard let id = object["id"]?.string else { throw fail("\"id\": a string is required (it names the entry's result record)") }
        guard !id.isEmpty, id.count <= 200, id.first != ".", id.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) }) else {
            throw fail("id \"\(id)\": use letters, digits, '.', '_' and '-' (not first '.'), at most 200; it becomes a file name")
        }
        guard let input = object["input"]?.string, !input.isEmpty else { throw fail("\"input\": the image to convert, a path, is required") }
        self.index = index
        self.line = line
        self.id = id
        self.input = input
        disks = try object["disks"].map { try Self.strings($0, key: "disks", file: file, line: line) } ?? []
        var options = defaults.options
        if let value = object["options"] {
            options.merge(try Self.options(value, key: "options", file: file, line: line)) { _, entry in entry }
        }
        self.options = options.sorted { $0.key < $1.key }.map { (name: $0.key, value: $0.value) }
        if let value = object["outputs"] {
            outputs = try Self.strings(value, key: "outputs", file: file, line: line)
        } else {
            outputs = (defaults.outputs ?? []).map { $0.replacingOccurrences(of: "{id}", with: id) }
        }
        if outputs.isEmpty && options["upload"] == nil {
            throw fail("no outputs: give \"outputs\" (or defaults' outputs with {id}), or an \"upload\" option")
        }
    }

    static func strings(_ value: JSONValue, key: String, file: String, line: Int?) throws -> [String] {
        guard case let .array(items) = value else {
            throw ManifestError(file: file, line: line, message: "\"\(key)\": expected a list of strings, found \(value.kindName)")
        }
        return try items.map {
            guard let text = $0.string, !text.isEmpty else {
                throw ManifestError(file: file, line: line, message: "\"\(key)\": expected a list of strings, found \($0.kindName) in it")
            }
            return text
        }
    }

    static func options(_ value: JSONValue, key: String, file: String, line: Int?) throws -> [String: JSONValue] {
        guard case let .object(object) = value else {
            throw ManifestError(file: file, line: line, message: "\"\(key)\": expected an object of convert options, found \(value.kindName)")
        }
        for (name, option) in object {
            func fail(_ message: String) -> ManifestError { ManifestError(file: file, line: line, message: "\(key).\(name): \(message)") }
            guard name.first?.isLetter == true, name.allSatisfy({ $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "-") }) else {
                throw fail("not an option name; write convert's long options without the dashes, e.g. \"skip\", \"root-ref\"")
            }
            if BatchManifest.reservedOptions.contains(name) {
                throw fail(name == "output" || name == "o" ? "outputs go in the entry's \"outputs\"" : "set by the batch itself; not allowed in a manifest")
            }
            switch option {
            case .bool, .integer, .number, .string: break
            case let .array(items):
                for item in items {
                    switch item {
                    case .integer, .number, .string: break
                    default: throw fail("a list holds strings or numbers, found \(item.kindName)")
                    }
                }
            case .null, .object: throw fail("expected a string, number, boolean or list, found \(option.kindName)")
            }
        }
        return object
    }

    /// `rehost convert`'s arguments for this entry, run in the manifest's directory.
    public var convertArguments: [String] {
        var arguments = [input] + disks
        for output in outputs { arguments += ["-o", output] }
        for (name, value) in options {
            switch value {
            case .bool(true): arguments.append("--\(name)")
            case .bool(false), .null, .object: break
            case let .array(items): for item in items { arguments += ["--\(name)", Self.text(item)] }
            default: arguments += ["--\(name)", Self.text(value)]
            }
        }
        return arguments
    }

    static func text(_ value: JSONValue) -> String {
        switch value {
        case let .string(text): return text
        case let .integer(number): return String(number)
        case let .number(number): return number == number.rounded() && abs(number) < 1e15 ? String(Int64(number)) : String(number)
        default: return value.canonicalText()
        }
    }

    /// Every file the entry reads: the input and its further disks.
    public var inputs: [String] { [input] + disks }
}

/// A manifest that cannot be used, with the file and line.
public struct ManifestError: RehostError {
    public let file: String
    public let line: Int?
    public let message: String

    public var description: String {
        "\(file)\(line.map { ":\($0)" } ?? ""): \(message)"
    }
}
