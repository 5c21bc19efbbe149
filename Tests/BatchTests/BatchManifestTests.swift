@testable import Batch
import Foundation
import Testing
import TestSupport

@Suite struct BatchManifestTests {
    static let entry = #"{"id": "a", "input": "in/a.img", "outputs": ["out/a.qcow2"]}"#

    @Test func defaultsHeaderGivesOutputsWithIdAndMergedOptions() throws {
        let (directory, manifest) = try loadManifest("""
            {"defaults": {"outputs": ["out/{id}.qcow2", "vmdk/{id}-{id}.vmdk"], "options": {"target": "kvm", "size": "10G", "compress": true}}}
            {"id": "web1", "input": "in/web1.img"}
            {"id": "db-2", "input": "/abs/db.img", "disks": ["d2.img", "d3.img"], "options": {"size": "20G", "compress": false, "skip": ["network", "selinux"]}}
            {"id": "own", "input": "own.img", "outputs": ["x/own.raw"]}

            """)
        #expect(manifest.entries.count == 3)
        #expect(manifest.directory == directory.path)
        #expect(manifest.defaultResultsDirectory == directory.path + "/fleet.results")
        let web1 = manifest.entries[0]
        #expect(web1.outputs == ["out/web1.qcow2", "vmdk/web1-web1.vmdk"])
        #expect(web1.options.map(\.name) == ["compress", "size", "target"])
        #expect(web1.convertArguments == ["in/web1.img", "-o", "out/web1.qcow2", "-o", "vmdk/web1-web1.vmdk", "--compress", "--size", "10G", "--target", "kvm"])
        // The entry's options win; false drops the default's flag; a list repeats its option.
        let db = manifest.entries[1]
        #expect(db.inputs == ["/abs/db.img", "d2.img", "d3.img"])
        #expect(db.convertArguments == ["/abs/db.img", "d2.img", "d3.img", "-o", "out/db-2.qcow2", "-o", "vmdk/db-2-db-2.vmdk",
                                        "--size", "20G", "--skip", "network", "--skip", "selinux", "--target", "kvm"])
        // Outputs of its own replace the defaults'.
        #expect(manifest.entries[2].outputs == ["x/own.raw"])
        #expect(manifest.entries[2].convertArguments == ["own.img", "-o", "x/own.raw", "--compress", "--size", "10G", "--target", "kvm"])
    }

    @Test func entriesAreNumberedFromZeroWhileLinesCountTheHeader() throws {
        let (_, withHeader) = try loadManifest("""
            {"defaults": {"outputs": ["o/{id}.raw"]}}
            {"id": "a", "input": "a.img"}
            {"id": "b", "input": "b.img"}
            """)
        #expect(withHeader.entries.map(\.index) == [0, 1])
        #expect(withHeader.entries.map(\.line) == [2, 3])
        #expect(withHeader.entries.map(\.id) == ["a", "b"])
        let (_, plain) = try loadManifest("""
            {"id": "a", "input": "a.img", "outputs": ["a.raw"]}
            {"id": "b", "input": "b.img", "outputs": ["b.raw"]}
            """)
        #expect(plain.entries.map(\.index) == [0, 1])
        #expect(plain.entries.map(\.line) == [1, 2])
    }

    @Test func defaultsFileOverridesTheHeader() throws {
        let (_, manifest) = try loadManifest("""
            {"defaults": {"outputs": ["out/{id}.qcow2"], "options": {"target": "kvm", "size": "10G"}}}
            {"id": "a", "input": "a.img"}
            {"id": "b", "input": "b.img", "options": {"size": "1G"}}
            """, defaults: #"{"outputs": ["alt/{id}.raw"], "options": {"size": "5G", "skip": "network"}}"#)
        #expect(manifest.entries[0].convertArguments == ["a.img", "-o", "alt/a.raw", "--size", "5G", "--skip", "network", "--target", "kvm"])
        #expect(manifest.entries[1].convertArguments == ["b.img", "-o", "alt/b.raw", "--size", "1G", "--skip", "network", "--target", "kvm"])
        // Without a header, the file alone.
        let (_, alone) = try loadManifest(#"{"id": "c", "input": "c.img"}"#, defaults: #"{"outputs": ["c/{id}.vhdx"]}"#)
        #expect(alone.entries[0].outputs == ["c/c.vhdx"])
    }

    @Test func defaultsFileErrorsNameTheFileWithoutALine() throws {
        let directory = try TemporaryDirectory(prefix: "rehost-batch")
        try write(Self.entry, to: directory.file("m.jsonl"))
        try write(#"{"outputs": ["o"], "extra": 1}"#, to: directory.file("d.json"))
        do {
            _ = try BatchManifest(path: directory.file("m.jsonl"), defaultsFile: directory.file("d.json"))
            Issue.record("accepted")
        } catch let error as ManifestError {
            #expect(error.line == nil)
            #expect(error.description == directory.file("d.json") + #": defaults: unknown key "extra" (expected outputs, options)"#)
        }
    }

    @Test func finalNewlineAndCarriageReturnsAreAccepted() throws {
        for text in [Self.entry, Self.entry + "\n", Self.entry + "\r\n", Self.entry + "\n" + Self.entry.replacingOccurrences(of: #""a""#, with: #""b""#) + "\r\n"] {
            let (_, manifest) = try loadManifest(text)
            #expect(manifest.entries[0].id == "a")
            #expect(manifest.entries[0].convertArguments == ["in/a.img", "-o", "out/a.qcow2"])
        }
        // Two newlines at the end are an empty line 2.
        #expect(located(try manifestError(Self.entry + "\n\n")).hasPrefix("2: an empty line"))
    }

    @Test func numbersListsAndFlagsBecomeArguments() throws {
        let (_, manifest) = try loadManifest(#"""
            {"id": "n", "input": "n.img", "outputs": ["n.raw", "n.qcow2"], "options": {"count": 1, "big": 3000000000, "ratio": 10.0, "half": 2.5, "list": [1, 2.0, "x"], "flag": true, "off": false, "neg": -4}}
            """#)
        #expect(manifest.entries[0].convertArguments == [
            "n.img", "-o", "n.raw", "-o", "n.qcow2",
            "--big", "3000000000", "--count", "1", "--flag", "--half", "2.5", "--list", "1", "--list", "2", "--list", "x",
            "--neg", "-4", "--ratio", "10",
        ])
    }

    @Test func uploadAloneNeedsNoOutputs() throws {
        let (_, manifest) = try loadManifest(#"{"id": "u", "input": "u.img", "options": {"upload": "glance"}}"#)
        #expect(manifest.entries[0].outputs == [])
        #expect(manifest.entries[0].convertArguments == ["u.img", "--upload", "glance"])
    }

    @Test func everyErrorNamesItsLine() throws {
        let first = Self.entry
        #expect(located(try manifestError(first + "\n{not json}\n")) == "2: not valid JSON")
        #expect(located(try manifestError("[1, 2]")) == "1: expected a JSON object, found a list")
        #expect(located(try manifestError(first + "\n\"text\"")) == "2: expected a JSON object, found a string")
        #expect(located(try manifestError(first + "\n\n" + first.replacingOccurrences(of: #""a""#, with: #""b""#))).hasPrefix("2: an empty line"))
        #expect(located(try manifestError(first + "\n   \n" + first.replacingOccurrences(of: #""a""#, with: #""b""#))).hasPrefix("2: an empty line"))
        #expect(located(try manifestError(#"{"id": "a", "input": "a", "outputs": ["o"], "size": "10G"}"#)).hasPrefix(#"1: unknown key "size""#))
        #expect(located(try manifestError(#"{"input": "a", "outputs": ["o"]}"#)).hasPrefix(#"1: "id": a string is required"#))
        #expect(located(try manifestError(#"{"id": 7, "input": "a", "outputs": ["o"]}"#)).hasPrefix(#"1: "id": a string is required"#))
        #expect(located(try manifestError(#"{"id": "a", "outputs": ["o"]}"#)).hasPrefix(#"1: "input": the image to convert"#))
        #expect(located(try manifestError(#"{"id": "a", "input": "", "outputs": ["o"]}"#)).hasPrefix(#"1: "input""#))
        for bad in ["../x", ".hidden", "a/b", "", "sp ace", "é", String(repeating: "x", count: 201)] {
            let text = #"{"id": "\#(bad)", "input": "a", "outputs": ["o"]}"#
            #expect(located(try manifestError(first + "\n" + text)).hasPrefix("2: id \"\(bad)\": use letters"), "\(bad)")
        }
        #expect(located(try manifestError(first + "\n" + first.replacingOccurrences(of: #""a""#, with: #""b""#) + "\n" + first))
                == #"3: id "a" is already the id of entry 0 (line 1); ids name the result records and must be unique"#)
        #expect(located(try manifestError(#"{"defaults": {"outputs": ["{id}"]}}"# + "\n" + #"{"id": "x", "input": "i"}"# + "\n" + #"{"id": "y", "input": "i"}"# + "\n" + #"{"id": "x", "input": "i"}"#))
                .hasPrefix(#"4: id "x" is already the id of entry 0 (line 2)"#))
        func option(_ body: String) -> String { #"{"id": "a", "input": "a", "outputs": ["o"], "options": {\#(body)}}"# }
        #expect(located(try manifestError(option(#""output": "x""#))) == #"1: options.output: outputs go in the entry's "outputs""#)
        #expect(located(try manifestError(option(#""o": "x""#))) == #"1: options.o: outputs go in the entry's "outputs""#)
        #expect(located(try manifestError(option(#""json": true"#))) == "1: options.json: set by the batch itself; not allowed in a manifest")
        #expect(located(try manifestError(option(#""dry-run": true"#))) == "1: options.dry-run: set by the batch itself; not allowed in a manifest")
        #expect(located(try manifestError(option(#""target": {"a": 1}"#))) == "1: options.target: expected a string, number, boolean or list, found an object")
        #expect(located(try manifestError(option(#""target": null"#))) == "1: options.target: expected a string, number, boolean or list, found null")
        #expect(located(try manifestError(option(#""skip": [["x"]]"#))) == "1: options.skip: a list holds strings or numbers, found a list")
        #expect(located(try manifestError(option(#""Size": "1G""#))).hasPrefix("1: options.Size: not an option name"))
        #expect(located(try manifestError(option(#""--size": "1G""#))).hasPrefix("1: options.--size: not an option name"))
        #expect(located(try manifestError(#"{"id": "a", "input": "a", "options": 3}"#)) == #"1: "options": expected an object of convert options, found a number"#)
        #expect(located(try manifestError(#"{"id": "a", "input": "a", "outputs": "o"}"#)) == #"1: "outputs": expected a list of strings, found a string"#)
        #expect(located(try manifestError(first + "\n" + #"{"id": "b", "input": "a"}"#)).hasPrefix(#"2: no outputs: give "outputs""#))
        #expect(located(try manifestError(first + "\n" + #"{"id": "b", "input": "a", "outputs": []}"#)).hasPrefix("2: no outputs"))
        // The defaults line: only first, and nothing else in it.
        #expect(located(try manifestError(first + "\n" + #"{"defaults": {}}"#)).hasPrefix(#"2: unknown key "defaults""#))
        #expect(located(try manifestError(#"{"defaults": {}, "id": "a"}"# + "\n" + first)).hasPrefix(#"1: the defaults line is"#))
        #expect(located(try manifestError(#"{"defaults": {"output": ["x"]}}"# + "\n" + first)) == #"1: defaults: unknown key "output" (expected outputs, options)"#)
    }

    @Test func anEmptyManifestHasNoEntries() throws {
        let empty = try manifestError("")
        #expect(empty?.line == nil)
        #expect(located(empty) == "no entries")
        #expect(located(try manifestError(#"{"defaults": {"outputs": ["o/{id}"]}}"# + "\n")) == "no entries")
    }
}
