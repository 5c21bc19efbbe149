import Foundation
import Testing
import TestSupport

@Suite struct CommandTests {
    @Test func reportsStatusAndBothOutputs() throws {
        let result = try Command.run("/bin/sh", ["-c", "printf 'to out'; printf 'to err' >&2; exit 3"])
        #expect(result.status == 3)
        #expect(result.stdout == "to out")
        #expect(result.stderr == "to err")
        #expect(!result.timedOut)
        #expect(!result.succeeded)
        #expect(throws: TestSupportError.self) { try result.requireSuccess() }
    }

    @Test func passesStdinBytesThroughExactly() throws {
        let bytes: [UInt8] = [0, 1, 2, 0xff, 0x0a, 0x80]
        let result = try Command.run("cat", stdin: bytes)
        #expect(result.stdoutBytes == bytes)
        #expect(result.status == 0)
    }

    @Test func addsEnvironmentVariablesAndKeepsTheRest() throws {
        let result = try Command.run("/bin/sh", ["-c", "printf '%s|%s' \"$REHOST_TEST_VALUE\" \"$PATH\""],
                                     environment: ["REHOST_TEST_VALUE": "a b"])
        let parts = result.stdout.split(separator: "|", omittingEmptySubsequences: false)
        #expect(parts.first == "a b")
        #expect(parts.last.map(String.init) == ProcessInfo.processInfo.environment["PATH"])
    }

    @Test func runsInTheGivenDirectory() throws {
        let directory = try TemporaryDirectory()
        let result = try Command.run("/bin/pwd", currentDirectory: directory.path)
        #expect(result.stdout == directory.path + "\n")
    }

    @Test func killsAProgramThatOutlivesItsTimeout() throws {
        let start = Date()
        let result = try Command.run("sleep", ["30"], timeout: .milliseconds(300))
        #expect(result.timedOut)
        #expect(!result.succeeded)
        #expect(Date().timeIntervalSince(start) < 10)
    }

    @Test func aSignalShowsAsOneHundredTwentyEightPlusItsNumber() throws {
        let result = try Command.run("/bin/sh", ["-c", "kill -TERM $$; sleep 5"])
        #expect(result.status == 128 + 15)
    }

    @Test func runsAsNobodyThroughSetpriv() throws {
        let uid = try Command.run("id", ["-u"], asUser: "nobody").requireSuccess()
        #expect(uid.stdout == "65534\n")
        let groups = try Command.run("id", ["-G"], asUser: "nobody").requireSuccess()
        #expect(groups.stdout == "65534\n")
        #expect(uid.commandLine.contains("setpriv --reuid=nobody"))
    }

    @Test func requireFindsToolsAndNamesMissingOnes() throws {
        #expect(try Command.require("debugfs").hasSuffix("/debugfs"))
        let missing = "rehost-no-such-tool"
        #expect { try Command.require(missing) } throws: { error in
            (error as? TestSupportError) == .toolMissing(tool: missing) && "\(error)".contains(missing)
        }
        #expect(throws: TestSupportError.toolMissing(tool: missing)) { try Command.run(missing) }
    }

    @Test func findsAndRunsTheBuiltRehostAsNobody() throws {
        let path = try Command.rehostExecutable()
        #expect(path.hasSuffix("/rehost"))
        #expect(FileManager.default.isExecutableFile(atPath: path))
        let help = try Command.runRehost(["--help"], asUser: "nobody")
        #expect(help.status == 0, "\(help.stderr)")
        #expect(help.stdout.contains("rehost") || help.stdout.contains("USAGE"), "\(help.stdout)")
    }
}

@Suite struct TemporaryDirectoryTests {
    @Test func createsAFreshDirectoryAndRemovesItAtTheEnd() throws {
        var path = ""
        do {
            let directory = try TemporaryDirectory()
            path = directory.path
            var isDirectory: ObjCBool = false
            #expect(FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue)
            #expect(path.hasPrefix("/tmp/"))
            try Data("x".utf8).write(to: URL(fileURLWithPath: directory.file("inside")))
            let other = try TemporaryDirectory()
            #expect(other.path != path)
        }
        if ProcessInfo.processInfo.environment["REHOST_KEEP_TEST_FILES"] != "1" {
            #expect(!FileManager.default.fileExists(atPath: path))
        }
    }

    @Test func worldWritableLetsNobodyCreateFiles() throws {
        let directory = try TemporaryDirectory()
        let target = directory.file("written-by-nobody")
        #expect(try Command.run("touch", [target], asUser: "nobody").status != 0 || getuid() == 65534)
        try directory.makeWorldWritable()
        let attributes = try FileManager.default.attributesOfItem(atPath: directory.path)
        #expect((attributes[.posixPermissions] as? Int) == 0o777)
        try Command.run("touch", [target], asUser: "nobody").requireSuccess()
        let owner = try FileManager.default.attributesOfItem(atPath: target)[.ownerAccountID] as? Int
        #expect(owner == 65534)
    }
}
