@testable import Batch
import Foundation
import ImageCore
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

@Suite struct EntryIdentityTests {
    func setTime(_ path: String, seconds: Int, nanoseconds: Int) throws {
        var times = [timespec(tv_sec: seconds, tv_nsec: nanoseconds), timespec(tv_sec: seconds, tv_nsec: nanoseconds)]
        #expect(utimensat(AT_FDCWD, path, &times, 0) == 0)
    }

    @Test func keyFollowsInputsArgumentsVersionAndDirectory() throws {
        let (directory, manifest) = try loadManifest(#"{"id": "a", "input": "in/a.img", "disks": ["in/b.img"], "outputs": ["a.raw"]}"#)
        try write("first disk", to: directory.file("in/a.img"))
        try write("second", to: directory.file("in/b.img"))
        try setTime(directory.file("in/a.img"), seconds: 1_700_000_000, nanoseconds: 123_456_789)
        let entry = manifest.entries[0]
        func key(arguments: [String]? = nil, directory dir: String? = nil, version: String = "1.0") throws -> String {
            let inputs = try EntryIdentity.inputs(of: entry, in: manifest.directory, contentDigest: false)
            return EntryIdentity.key(inputs: inputs, arguments: arguments ?? entry.convertArguments, directory: dir ?? manifest.directory, version: version)
        }
        let inputs = try EntryIdentity.inputs(of: entry, in: manifest.directory, contentDigest: false)
        #expect(inputs.map(\.path) == ["in/a.img", "in/b.img"])
        #expect(inputs.map(\.size) == [10, 6])
        #expect(inputs[0].mtimeNanoseconds == 1_700_000_000_123_456_789)
        #expect(inputs[0].realPath == directory.file("in/a.img"))
        #expect(inputs.allSatisfy { $0.sha256 == nil })

        let original = try key()
        #expect(original.count == 64 && original.allSatisfy(\.isHexDigit))
        #expect(try key() == original)
        #expect(try key(arguments: entry.convertArguments + ["--size", "1G"]) != original)
        #expect(try key(arguments: ["in/a.img in/b.img", "-o", "a.raw"]) != key(arguments: ["in/a.img", "in/b.img", "-o", "a.raw"]))
        #expect(try key(version: "1.1") != original)
        #expect(try key(directory: "/elsewhere") != original)

        // The time alone, back and forth.
        try setTime(directory.file("in/a.img"), seconds: 1_700_000_000, nanoseconds: 123_456_790)
        #expect(try key() != original)
        try setTime(directory.file("in/a.img"), seconds: 1_700_000_000, nanoseconds: 123_456_789)
        #expect(try key() == original)
        // The size alone (the time put back), and the second disk's time.
        try write("first disk!", to: directory.file("in/a.img"))
        try setTime(directory.file("in/a.img"), seconds: 1_700_000_000, nanoseconds: 123_456_789)
        let grown = try key()
        #expect(grown != original)
        try Command.run("touch", ["-d", "2020-01-02 03:04:05", directory.file("in/b.img")]).requireSuccess()
        #expect(try key() != grown)
        #expect(EntryIdentity.fileState(directory.file("in/b.img"))?.mtimeNanoseconds == Int64(try EntryIdentity.inputs(of: entry, in: manifest.directory, contentDigest: false)[1].mtimeNanoseconds))
        #expect(EntryIdentity.fileState(directory.file("missing")) == nil)
    }

    @Test func contentDigestPutsTheSHA256InTheKey() throws {
        let (directory, manifest) = try loadManifest(#"{"id": "a", "input": "a.img", "outputs": ["a.raw"]}"#)
        try write(String(repeating: "rehost ", count: 10_000), to: directory.file("a.img"))
        let entry = manifest.entries[0]
        let plain = try EntryIdentity.inputs(of: entry, in: manifest.directory, contentDigest: false)
        let digested = try EntryIdentity.inputs(of: entry, in: manifest.directory, contentDigest: true)
        let expected = try Command.run("sha256sum", [directory.file("a.img")]).requireSuccess().stdout.split(separator: " ").first.map(String.init)
        #expect(digested[0].sha256 == expected)
        #expect(digested[0].size == plain[0].size && digested[0].mtimeNanoseconds == plain[0].mtimeNanoseconds)
        let args = entry.convertArguments
        #expect(EntryIdentity.key(inputs: plain, arguments: args, directory: "/d", version: "1")
                != EntryIdentity.key(inputs: digested, arguments: args, directory: "/d", version: "1"))
        var other = digested
        other[0].sha256 = String(repeating: "0", count: 64)
        #expect(EntryIdentity.key(inputs: other, arguments: args, directory: "/d", version: "1")
                != EntryIdentity.key(inputs: digested, arguments: args, directory: "/d", version: "1"))
    }

    @Test func aMissingInputThrows() throws {
        let (_, manifest) = try loadManifest(#"{"id": "a", "input": "gone.img", "outputs": ["a.raw"]}"#)
        #expect(throws: FileError.self) { try EntryIdentity.inputs(of: manifest.entries[0], in: manifest.directory, contentDigest: false) }
    }
}
