@testable import Batch
import Foundation
import ImageCore
import Testing
import TestSupport

@Suite struct ResultStoreTests {
    static func record(id: String = "web1", status: ResultRecord.Status = .succeeded) -> ResultRecord {
        var record = ResultRecord(
            id: id, index: 3, manifest: "/m/fleet.jsonl", key: String(repeating: "ab", count: 32), rehostVersion: "1.2.3",
            status: status, inputs: [ResultRecord.Input(path: "in/a.img", realPath: "/m/in/a.img", size: 1 << 33, mtimeNanoseconds: 1_700_000_000_123_456_789, sha256: nil)],
            arguments: ["in/a.img", "-o", "out/a.qcow2", "--skip", "network"],
            outputs: [ResultRecord.Output(path: "out/a.qcow2", format: "qcow2", size: 12345, mtimeNanoseconds: -5, virtualSize: 1 << 34, diskDigest: "blk-sha256:00", sha256: nil)],
            engine: ResultRecord.Engine(kind: "slurm", host: "node7", pid: 4242, jobID: "101", arrayJobID: "100", taskID: "3"),
            started: "2026-01-01T00:00:00.000Z", attempt: 2)
        record.finished = "2026-01-01T00:01:00.500Z"
        record.seconds = 60.5
        record.uploads = .object(["glance": .object(["image": .string("f00")])])
        return record
    }

    @Test func aWrittenRecordReadsBackWhole() throws {
        let directory = try TemporaryDirectory(prefix: "rehost-batch")
        let store = try ResultStore(directory: directory.file("results/deeper"), create: true)
        #expect(store.recordPath("web1") == directory.file("results/deeper/web1.json"))
        #expect(store.lockPath("web1") == directory.file("results/deeper/web1.lock"))
        #expect(store.record("web1") == nil)
        try store.write(Self.record())
        let back = try #require(store.record("web1"))
        #expect(back.schema == ResultRecord.schemaVersion)
        #expect(back.id == "web1" && back.index == 3 && back.manifest == "/m/fleet.jsonl" && back.attempt == 2)
        #expect(back.key == String(repeating: "ab", count: 32))
        #expect(back.status == .succeeded && back.retryable == nil && back.cause == nil)
        #expect(back.inputs == Self.record().inputs)
        #expect(back.arguments == ["in/a.img", "-o", "out/a.qcow2", "--skip", "network"])
        #expect(back.outputs.count == 1 && back.outputs[0].size == 12345 && back.outputs[0].mtimeNanoseconds == -5 && back.outputs[0].virtualSize == 1 << 34)
        #expect(back.engine.kind == "slurm" && back.engine.arrayJobID == "100" && back.engine.taskID == "3" && back.engine.pid == 4242)
        #expect(back.uploads == .object(["glance": .object(["image": .string("f00")])]))
        #expect(back.finished == "2026-01-01T00:01:00.500Z" && back.seconds == 60.5)
        let text = try String(contentsOfFile: store.recordPath("web1"), encoding: .utf8)
        #expect(text.hasSuffix("}\n"))
        #expect(text.contains(#""arguments" : ["#) || text.contains(#""arguments": ["#))
        // Replaced whole, with nothing left beside it.
        var failed = Self.record(status: .failed)
        failed.cause = "network"
        failed.retryable = true
        failed.error = "HTTP 503"
        try store.write(failed)
        #expect(store.record("web1")?.status == .failed && store.record("web1")?.cause == "network" && store.record("web1")?.retryable == true)
        #expect(try FileManager.default.contentsOfDirectory(atPath: store.directory) == ["web1.json"])
    }

    @Test func anUnreadableRecordIsNone() throws {
        let directory = try TemporaryDirectory(prefix: "rehost-batch")
        let store = try ResultStore(directory: directory.path, create: false)
        try store.write(Self.record())
        let whole = try #require(FileManager.default.contents(atPath: store.recordPath("web1")))
        try write(String(decoding: whole.prefix(whole.count / 2), as: UTF8.self), to: store.recordPath("web1"))
        #expect(store.record("web1") == nil)
        try write("garbage\u{0}", to: store.recordPath("web1"))
        #expect(store.record("web1") == nil)
        try write(#"{"id": "web1"}"#, to: store.recordPath("web1"))
        #expect(store.record("web1") == nil)
        try write("", to: store.recordPath("web1"))
        #expect(store.record("web1") == nil)
    }

    func isBusy(_ path: String) -> Bool {
        do {
            _ = try EntryLock(path: path)
            return false
        } catch let error as BatchError {
            guard case let .busy(busyPath) = error else { return false }
            #expect(busyPath == path)
            #expect(error.description == "\(path): another worker is converting this entry now")
            return true
        } catch {
            Issue.record("unexpected \(error)")
            return false
        }
    }

    @Test func aSecondLockIsRefusedUntilTheFirstIsReleased() throws {
        let directory = try TemporaryDirectory(prefix: "rehost-batch")
        let store = try ResultStore(directory: directory.path, create: false)
        #expect(!store.isRunning("a"))
        var first: EntryLock? = try EntryLock(path: store.lockPath("a"))
        withExtendedLifetime(first) {
            #expect(isBusy(store.lockPath("a")))
            #expect(store.isRunning("a"))
            #expect(!store.isRunning("b"))
            // Asking does not take it.
            #expect(isBusy(store.lockPath("a")))
        }
        first = nil
        #expect(!store.isRunning("a"))
        #expect(!isBusy(store.lockPath("a")))
        let again = try EntryLock(path: store.lockPath("a"))
        withExtendedLifetime(again) { #expect(store.isRunning("a")) }
    }

    @Test func aLockHeldByAnotherProcessIsBusy() throws {
        let directory = try TemporaryDirectory(prefix: "rehost-batch")
        let store = try ResultStore(directory: directory.path, create: false)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try Command.require("python3"))
        process.arguments = ["-c", """
            import fcntl, sys, time
            f = open(sys.argv[1], "a")
            fcntl.lockf(f, fcntl.LOCK_EX)
            print("locked", flush=True)
            time.sleep(60)
            """, store.lockPath("a")]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        defer {
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
        }
        var said = Data()
        while !String(decoding: said, as: UTF8.self).contains("locked") {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            said += chunk
        }
        #expect(String(decoding: said, as: UTF8.self).hasPrefix("locked"))
        #expect(isBusy(store.lockPath("a")))
        #expect(store.isRunning("a"))
        // SIGKILL: a SIGTERM the test runner ignores is ignored by its children too.
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        #expect(!store.isRunning("a"))
        #expect(!isBusy(store.lockPath("a")))
    }
}
