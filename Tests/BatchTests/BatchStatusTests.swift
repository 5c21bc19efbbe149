@testable import Batch
import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

@Suite struct BatchStatusTests {
    static let ids = ["done", "modified", "failed1", "failed2", "retry", "stopped", "changed", "norecord", "live"]
    static let scriptError = "in/failed1.img: <script>alert(1)</script> & more"

    /// The batch above, every entry's record written as the brief's cases want.
    static func makeBatch(name: String = "fleet & co.jsonl", ids: [String] = ids) throws -> (TemporaryDirectory, BatchManifest, ResultStore, EntryRunner) {
        let directory = try TemporaryDirectory(prefix: "rehost-batch")
        for id in Self.ids {
            try write("image of \(id)", to: directory.file("in/\(id).img"))
        }
        // The one done entry has 2 GiB of input (sparse), so its GiB/min is a round number.
        #expect(truncate(directory.file("in/done.img"), 2 << 30) == 0)
        let text = ([#"{"defaults": {"outputs": ["out/{id}.qcow2"], "options": {"target": "kvm"}}}"#]
            + ids.map { #"{"id": "\#($0)", "input": "in/\#($0).img"}"# }).joined(separator: "\n") + "\n"
        try write(text, to: directory.file(name))
        let manifest = try BatchManifest(path: directory.file(name))
        let store = try ResultStore(directory: manifest.defaultResultsDirectory, create: true)
        var settings = EntryRunner.Settings(executable: "/bin/false", version: "9.9.9", engine: .init(kind: "local", host: "test", pid: getpid()))
        settings.contentDigest = false
        let runner = EntryRunner(manifest: manifest, store: store, settings: settings)
        return (directory, manifest, store, runner)
    }

    static func writeRecords(_ manifest: BatchManifest, _ store: ResultStore, _ runner: EntryRunner, directory: TemporaryDirectory) throws {
        let t0 = Date(timeIntervalSince1970: 1_767_225_600)  // 2026-01-01T00:00:00Z
        func record(_ id: String, arguments: [String]? = nil) throws -> ResultRecord {
            let entry = try #require(manifest.entries.first { $0.id == id })
            let inputs = try EntryIdentity.inputs(of: entry, in: manifest.directory, contentDigest: false)
            let key = EntryIdentity.key(inputs: inputs, arguments: arguments ?? entry.convertArguments, directory: manifest.directory, version: "9.9.9")
            if arguments == nil { #expect(key == runner.key(inputs: inputs, entry.convertArguments)) }
            return runner.newRecord(entry, key: key, inputs: inputs, started: t0, attempt: 1)
        }
        func succeed(_ record: inout ResultRecord, output: String, minutes: Double) throws {
            try write("converted \(record.id)", to: directory.file(output))
            let state = try #require(EntryIdentity.fileState(directory.file(output)))
            record.status = .succeeded
            record.exitCode = 0
            record.outputs = [ResultRecord.Output(path: output, format: "qcow2", size: state.size, mtimeNanoseconds: state.mtimeNanoseconds)]
            record.finished = EntryRunner.timestamp(t0.addingTimeInterval(minutes * 60))
            record.seconds = minutes * 60
        }
        func fail(_ record: inout ResultRecord, _ cause: FailureCause, _ error: String) {
            runner.finish(&record, cause: cause, exitCode: cause.retryable ? 75 : 1, error: error, started: t0)
        }
        var done = try record("done")
        try succeed(&done, output: "out/done.qcow2", minutes: 2)
        try store.write(done)
        var modified = try record("modified")
        try succeed(&modified, output: "out/modified.qcow2", minutes: 1)
        try store.write(modified)
        try write("changed afterwards, longer", to: directory.file("out/modified.qcow2"))
        var failed1 = try record("failed1")
        fail(&failed1, .badInput, scriptError)
        try store.write(failed1)
        var failed2 = try record("failed2")
        fail(&failed2, .badInput, "in/failed2.img: not a disk image")
        try store.write(failed2)
        var retry = try record("retry")
        fail(&retry, .network, "glance: HTTP 503")
        try store.write(retry)
        try store.write(try record("stopped"))  // running, and no one holds its lock
        var changed = try record("changed", arguments: ["in/changed.img", "-o", "out/changed.qcow2", "--target", "xen"])
        try succeed(&changed, output: "out/changed.qcow2", minutes: 3)
        try store.write(changed)
        try store.write(try record("live"))
    }

    @Test func everyKindOfRecordGetsItsState() throws {
        let (directory, manifest, store, runner) = try Self.makeBatch()
        try Self.writeRecords(manifest, store, runner, directory: directory)
        var lock: EntryLock? = try EntryLock(path: store.lockPath("live"))
        let status = withExtendedLifetime(lock) { BatchStatus(manifest: manifest, store: store, runner: runner) }
        lock = nil

        #expect(status.manifest == manifest.path)
        #expect(status.results == directory.file("fleet & co.results"))
        #expect(status.total == 9)
        #expect(status.entries.map(\.id) == Self.ids)
        #expect(status.entries.map(\.state) == [.done, .todo, .failed, .failed, .retry, .todo, .todo, .todo, .running])
        #expect(status.counts == ["done": 1, "todo": 4, "failed": 2, "retry": 1, "running": 1])
        #expect(status.toDo == "1,4-7")
        #expect(status.failed == "2-3")
        #expect(!status.isSettled)
        let byID = Dictionary(uniqueKeysWithValues: status.entries.map { ($0.id, $0) })
        #expect(byID["done"]?.reason == nil)
        #expect(byID["modified"]?.reason == "an output changed or is gone")
        #expect(byID["stopped"]?.reason?.contains("worker stopped") == true)
        #expect(byID["changed"]?.reason?.contains("changed since its record") == true)
        #expect(byID["norecord"]?.reason == nil && byID["norecord"]?.attempt == nil && byID["norecord"]?.started == nil)
        #expect(byID["failed1"]?.cause == "bad-input" && byID["failed1"]?.error == Self.scriptError)
        #expect(byID["done"]?.inputBytes == 2 << 30)
        #expect(byID["norecord"]?.inputBytes == UInt64("image of norecord".utf8.count))
        #expect(byID["done"]?.outputBytes == UInt64("converted done".utf8.count))
        #expect(byID["done"]?.seconds == 120 && byID["done"]?.attempt == 1)

        #expect(status.failures.map(\.cause) == ["bad-input", "network"])
        let badInput = status.failures[0]
        #expect(badInput.ids == ["failed1", "failed2"])
        #expect(badInput.indices == "2-3")
        #expect(badInput.examples == [Self.scriptError, "in/failed2.img: not a disk image"])
        #expect(!badInput.retryable)
        #expect(badInput.explanation == FailureCause.badInput.explanation)
        #expect(status.failures[1].ids == ["retry"] && status.failures[1].retryable && status.failures[1].indices == "4")
        #expect(status.failures[1].examples == ["glance: HTTP 503"])

        // Throughput counts the done entry alone: 2 GiB in 2 minutes.
        let throughput = try #require(status.throughput)
        #expect(throughput.images == 1)
        #expect(throughput.inputBytes == 2 << 30)
        #expect(throughput.wallSeconds == 120)
        #expect(throughput.imagesPerMinute == 0.5)
        #expect(throughput.gibPerMinute == 1)

        // Once the lock is gone, the live entry is a stopped worker's.
        let after = BatchStatus(manifest: manifest, store: store, runner: runner)
        #expect(after.entries[8].state == .todo && after.toDo == "1,4-8")
        // It survives JSON (the --json output).
        let decoded = try JSONDecoder().decode(BatchStatus.self, from: JSONEncoder().encode(status))
        #expect(decoded.toDo == status.toDo && decoded.counts == status.counts && decoded.failures.map(\.ids) == status.failures.map(\.ids))
    }

    @Test func aBatchOfDoneAndFailedIsSettled() throws {
        let (directory, manifest, store, runner) = try Self.makeBatch()
        try Self.writeRecords(manifest, store, runner, directory: directory)
        // The same entries (so the same keys) in a second manifest beside it, records in the same store.
        try write([#"{"defaults": {"outputs": ["out/{id}.qcow2"], "options": {"target": "kvm"}}}"#,
                   #"{"id": "failed1", "input": "in/failed1.img"}"#, #"{"id": "done", "input": "in/done.img"}"#].joined(separator: "\n"),
                  to: directory.file("settled.jsonl"))
        let settled = try BatchManifest(path: directory.file("settled.jsonl"))
        let status = BatchStatus(manifest: settled, store: store, runner: EntryRunner(manifest: settled, store: store, settings: runner.settings))
        #expect(status.entries.map(\.state) == [.failed, .done])
        #expect(status.counts == ["failed": 1, "done": 1])
        #expect(status.toDo == "" && status.failed == "0")
        #expect(status.isSettled)
        // A new version makes every record stale.
        var newer = runner.settings
        newer.version = "10.0.0"
        let stale = BatchStatus(manifest: settled, store: store, runner: EntryRunner(manifest: settled, store: store, settings: newer))
        #expect(stale.entries.map(\.state) == [.todo, .todo])
        #expect(stale.entries.allSatisfy { $0.reason?.contains("rehost version changed") == true })
        #expect(stale.toDo == "0-1")
        #expect(!stale.isSettled)
    }

    @Test func thePageShowsCountsAndIdsAndEscapesText() throws {
        let (directory, manifest, store, runner) = try Self.makeBatch()
        try Self.writeRecords(manifest, store, runner, directory: directory)
        let status = BatchStatus(manifest: manifest, store: store, runner: runner)
        let html = StatusPage.render(status, generated: Date(timeIntervalSince1970: 1_767_225_600))
        #expect(html.hasPrefix("<!DOCTYPE html>"))
        #expect(html.hasSuffix("</html>\n"))
        #expect(html.contains("<title>rehost batch: fleet &amp; co.jsonl</title>"))
        #expect(html.contains("2026-01-01T00:00:00Z"))
        for (state, label, count) in [("done", "done", 1), ("failed", "failed", 2), ("retry", "retry", 1), ("running", "running", 0), ("todo", "to do", 5)] {
            #expect(html.contains("<tr><td class=\"\(state)\">\(label)</td><td class=\"n\">\(count)</td></tr>"), "\(state)")
        }
        #expect(html.contains("<tr><th>total</th><th class=\"n\">9</th></tr>"))
        for id in Self.ids { #expect(html.contains("<td>\(id)</td>"), "\(id)") }
        #expect(html.contains("sbatch --array=1,4-8"))
        #expect(html.contains("<b>0.5 images/min</b>, <b>1.0 GiB/min</b>"))
        #expect(html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; more"))
        #expect(!html.contains("<script>"))
        #expect(!html.contains("& more"))
        #expect(!html.contains("fleet & co"))
        #expect(StatusPage.escape("a\"b'c\u{1}d") == "a&quot;b&apos;c\u{FFFD}d")
    }
}
