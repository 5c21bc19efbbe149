import Foundation
import Synchronization
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// A fleet directory for `rehost batch`: copies of the Xen fixture under in/, a manifest, out/.
struct BatchFleet {
    let directory: TemporaryDirectory
    var manifest: String { directory.file("fleet.jsonl") }
    var results: String { directory.file("fleet.results") }

    /// `good`: ids of fixture copies; `truncated` and `garbage`: ids of bad inputs made here.
    init(good: [String], truncated: [String] = [], garbage: [String] = [], prefix: String = "rehost-batch") throws {
        let fixture = try Fixture.xenInstance()
        directory = try TemporaryDirectory(prefix: prefix)
        for sub in ["in", "out"] { try FileManager.default.createDirectory(atPath: directory.file(sub), withIntermediateDirectories: true) }
        for id in good { try Command.run("cp", ["--sparse=always", fixture.imagePath, directory.file("in/\(id).img")]).requireSuccess() }
        for id in truncated { try Command.run("head", ["-c", "3000000", fixture.imagePath], timeout: .seconds(60)).requireSuccess().stdoutBytes.write(to: directory.file("in/\(id).img")) }
        var random = SplitMix(seed: 7)
        for id in garbage { try (0..<(1 << 20)).map { _ in UInt8(truncatingIfNeeded: random.next()) }.write(to: directory.file("in/\(id).img")) }
    }

    func writeManifest(_ lines: [String]) throws {
        try (lines.joined(separator: "\n") + "\n").write(toFile: manifest, atomically: true, encoding: .utf8)
    }

    /// The usual manifest: a defaults line with out/{id}.qcow2, then one entry per id.
    func writeManifest(ids: [String], options: [String: String] = [:]) throws {
        try writeManifest(["{\"defaults\": {\"outputs\": [\"out/{id}.qcow2\"], \"options\": {\"target\": \"kvm\"}}}"]
            + ids.map { id in "{\"id\": \"\(id)\", \"input\": \"in/\(id).img\"\(options[id].map { ", \"options\": \($0)" } ?? "")}" })
    }

    func batch(_ arguments: [String], environment: [String: String] = [:]) throws -> CommandResult {
        try Command.runRehost(["batch"] + arguments, environment: environment, timeout: .seconds(900))
    }

    func record(_ id: String) throws -> [String: Any] {
        let data = try #require(FileManager.default.contents(atPath: "\(results)/\(id).json"), "no record for \(id)")
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    func mtime(_ path: String) -> Int64? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec)
    }

    static func json(_ result: CommandResult) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(result.stdoutBytes)) as? [String: Any], "\(result.stdout)\n\(result.stderr)")
    }
}

extension Array where Element == UInt8 {
    func write(to path: String) throws { try Data(self).write(to: URL(fileURLWithPath: path)) }
}

/// `rehost batch run` on this host: real conversions of the fixture, records checked against the
/// outputs with qemu-img and `rehost digest`, reruns that do no repeated work, and bad inputs,
/// full disks, races and killed workers.
struct BatchRunTests {
    @Test func convertsAFleetRecordsEveryEntryAndARerunDoesNothingTwice() throws {
        let fleet = try BatchFleet(good: ["web1", "web2"], truncated: ["short"], garbage: ["noise"])
        try fleet.writeManifest(ids: ["web1", "web2", "short", "noise", "gone"])
        let run = try fleet.batch(["run", fleet.manifest, "--json"])
        #expect(run.status == 1, "a failed entry with no retryable one: exit 1\n\(run.stderr)")
        let summary = try BatchFleet.json(run)
        #expect(summary["counts"] as? [String: Int] == ["converted": 2, "failed": 3], "\(summary)")

        for id in ["web1", "web2"] {
            let record = try fleet.record(id)
            #expect(record["status"] as? String == "succeeded")
            #expect(record["attempt"] as? Int == 1)
            let output = try #require((record["outputs"] as? [[String: Any]])?.first)
            let path = fleet.directory.file("out/\(id).qcow2")
            #expect(output["path"] as? String == "out/\(id).qcow2")
            #expect(output["size"] as? Int == Int(try #require(FileManager.default.attributesOfItem(atPath: path)[.size] as? UInt64)))
            try Command.run("qemu-img", ["check", path]).requireSuccess()
            let digest = try Command.runRehost(["digest", path]).requireSuccess().stdout
            #expect(digest.contains(try #require(output["diskDigest"] as? String)), "record's disk digest is the output's")
            let inputs = try #require(record["inputs"] as? [[String: Any]])
            #expect(inputs.first?["size"] as? Int == 201_326_592)
            #expect((record["key"] as? String)?.count == 64)
            #expect((record["report"] as? [String: Any])?["target"] as? String == "kvm")
        }
        for id in ["short", "noise", "gone"] {
            let record = try fleet.record(id)
            #expect(record["status"] as? String == "failed")
            #expect(record["retryable"] as? Bool == false, "\(id): \(record)")
            #expect(record["cause"] as? String == "bad-input")
            #expect(record["exitCode"] as? Int == 1)
            #expect(!((record["error"] as? String) ?? "").isEmpty)
            #expect(!FileManager.default.fileExists(atPath: fleet.directory.file("out/\(id).qcow2")))
        }

        // Again: every finished entry skipped, the outputs untouched, the failures not repeated.
        let before = ["web1", "web2"].map { fleet.mtime(fleet.directory.file("out/\($0).qcow2")) }
        let rerun = try BatchFleet.json(fleet.batch(["run", fleet.manifest, "--json"]))
        #expect(rerun["counts"] as? [String: Int] == ["skipped": 2, "failed": 3], "\(rerun)")
        #expect(["web1", "web2"].map { fleet.mtime(fleet.directory.file("out/\($0).qcow2")) } == before)

        // A changed option makes that entry's record stale; a changed output is converted again.
        try fleet.writeManifest(ids: ["web1", "web2", "short", "noise", "gone"], options: ["web1": "{\"size\": \"600M\"}"])
        let status = try fleet.batch(["status", fleet.manifest, "--to-do"])
        #expect(status.stdout == "0\n" && status.status == 75, "\(status.stdout)")
        try Command.run("truncate", ["-s", "+512", fleet.directory.file("out/web2.qcow2")]).requireSuccess()
        let third = try BatchFleet.json(fleet.batch(["run", fleet.manifest, "--json"]))
        #expect(third["counts"] as? [String: Int] == ["converted": 2, "failed": 3], "\(third)")
        #expect(try fleet.record("web1")["arguments"].map { "\($0)".contains("600M") } == true)
        let info = try Command.run("qemu-img", ["info", "--output=json", fleet.directory.file("out/web1.qcow2")]).requireSuccess().stdout
        #expect(info.contains("\"virtual-size\": 629145600"), "\(info)")
        try Command.run("qemu-img", ["check", fleet.directory.file("out/web2.qcow2")]).requireSuccess()

        // Status: two done, three failed for good, nothing to do; the errors grouped by cause.
        let final = try fleet.batch(["status", fleet.manifest, "--json", "--html", fleet.directory.file("status.html")])
        #expect(final.status == 1, "only permanent failures left: exit 1")
        let json = try BatchFleet.json(final)
        #expect(json["counts"] as? [String: Int] == ["done": 2, "failed": 3])
        #expect(json["failed"] as? String == "2-4")
        #expect(json["toDo"] as? String == "")
        let groups = try #require(json["failures"] as? [[String: Any]])
        #expect(groups.count == 1 && groups[0]["cause"] as? String == "bad-input" && groups[0]["ids"] as? [String] == ["short", "noise", "gone"])
        let html = try String(contentsOfFile: fleet.directory.file("status.html"), encoding: .utf8)
        #expect(html.contains("<td>web1</td>") && html.contains("bad-input") && html.contains("images/min"))
    }

    @Test func aFullDiskIsRetryableAndTheEntryPassesOnceThereIsRoom() throws {
        try #require(getuid() == 0, "the test mounts a small tmpfs to fill it: run the suite as root, as CI does")
        let fleet = try BatchFleet(good: ["vm"])
        let small = fleet.directory.file("small")
        try FileManager.default.createDirectory(atPath: small, withIntermediateDirectories: true)
        try Command.run("mount", ["-t", "tmpfs", "-o", "size=16m", "tmpfs", small]).requireSuccess()
        defer { _ = try? Command.run("umount", [small]) }
        try fleet.writeManifest(["{\"id\": \"vm\", \"input\": \"in/vm.img\", \"outputs\": [\"small/vm.qcow2\"]}"])

        let first = try fleet.batch(["run", fleet.manifest, "--index", "0"])
        #expect(first.status == 75, "out of space: retry\n\(first.stdout)\(first.stderr)")
        let record = try fleet.record("vm")
        #expect(record["cause"] as? String == "no-space" && record["retryable"] as? Bool == true, "\(record)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: small).isEmpty, "no partial output left")
        #expect(try fleet.batch(["status", fleet.manifest, "--to-do"]).stdout == "0\n")

        try Command.run("mount", ["-o", "remount,size=400m", small]).requireSuccess()
        let second = try fleet.batch(["run", fleet.manifest, "--index", "0", "--json"])
        #expect(second.status == 0, "\(second.stderr)")
        #expect(try BatchFleet.json(second)["attempt"] as? Int == 2)
        try Command.run("qemu-img", ["check", "\(small)/vm.qcow2"]).requireSuccess()
        #expect(try fleet.batch(["status", fleet.manifest]).status == 0)
    }

    @Test func twoWorkersRacingForOneEntryConvertItOnce() throws {
        let fleet = try BatchFleet(good: ["vm"])
        try fleet.writeManifest(ids: ["vm"])
        try FileManager.default.createDirectory(atPath: fleet.results, withIntermediateDirectories: true)

        // A worker elsewhere (another process, POSIX lock) holds the entry: this one leaves it.
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        holder.arguments = ["-c", "import fcntl,sys,time; f=open(sys.argv[1],'a'); fcntl.lockf(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)",
                            "\(fleet.results)/vm.lock"]
        let pipe = Pipe()
        holder.standardOutput = pipe
        holder.standardError = FileHandle.nullDevice
        try holder.run()
        _ = pipe.fileHandleForReading.availableData
        let busy = try fleet.batch(["run", fleet.manifest, "--index", "0"])
        // SIGKILL: children of the test runner may inherit SIGTERM ignored.
        kill(holder.processIdentifier, SIGKILL)
        holder.waitUntilExit()
        #expect(busy.status == 75 && busy.stdout.contains("busy"), "\(busy.stdout)\(busy.stderr)")
        #expect(!FileManager.default.fileExists(atPath: "\(fleet.results)/vm.json"), "the loser writes no record")
        #expect(!FileManager.default.fileExists(atPath: fleet.directory.file("out/vm.qcow2")))

        // Two workers started together: exactly one converts; the other is busy or, if it came
        // after, skips.
        let outcomes = Mutex<[CommandResult]>([])
        DispatchQueue.concurrentPerform(iterations: 2) { _ in
            if let result = try? fleet.batch(["run", fleet.manifest, "--index", "0"]) { outcomes.withLock { $0.append(result) } }
        }
        let results = outcomes.withLock { $0 }
        #expect(results.count == 2)
        #expect(results.filter { $0.stdout.contains(": converted") }.count == 1, "\(results.map(\.stdout))")
        #expect(results.filter { $0.stdout.contains(": busy") || $0.stdout.contains(": skipped") }.count == 1, "\(results.map(\.stdout))")
        #expect(try fleet.record("vm")["attempt"] as? Int == 1)
        try Command.run("qemu-img", ["check", fleet.directory.file("out/vm.qcow2")]).requireSuccess()
    }

    /// An entry that uploads (EBS snapshot and AMI on a real moto server): the record keeps the
    /// ids, and the rerun skips it, so no second snapshot is made.
    @Test func anUploadingEntryRecordsItsIdsAndIsNotUploadedTwice() throws {
        let moto = try MotoServer.start()
        defer { moto.stop() }
        let aws = AWSUploadTests()
        let fleet = try BatchFleet(good: ["vm"])
        try fleet.writeManifest(["{\"id\": \"vm\", \"input\": \"in/vm.img\", \"outputs\": [\"out/vm.raw\"], \"options\": {\"upload\": \"aws-ebs\", \"image-name\": \"fleet-vm\"}}"])
        let run = try fleet.batch(["run", fleet.manifest, "--index", "0", "--json"], environment: aws.environment(moto))
        #expect(run.status == 0, "\(run.stderr)")
        let uploads = try #require(try fleet.record("vm")["uploads"] as? [[String: Any]])
        let snapshot = try #require(uploads.first?["snapshotID"] as? String)
        let ami = try #require(uploads.first?["imageID"] as? String)
        let images = try #require(try aws.json(try aws.readback(moto, ["image", ami])) as? [[String: Any]])
        #expect(images.first?["Name"] as? String == "fleet-vm")
        #expect(try aws.snapshots(moto, describedAs: "fleet-vm").map { $0["id"] as? String } == [snapshot])

        let again = try fleet.batch(["run", fleet.manifest, "--index", "0"], environment: aws.environment(moto))
        #expect(again.status == 0 && again.stdout.contains("skipped"), "\(again.stdout)")
        #expect(try aws.snapshots(moto, describedAs: "fleet-vm").map { $0["id"] as? String } == [snapshot], "the rerun made no second snapshot")
    }

    /// The batch and its conversion, started in the background; returns once the conversion runs.
    func startWorker(_ fleet: BatchFleet) throws -> (batch: Process, convert: Int32) {
        let batch = Process()
        batch.executableURL = URL(fileURLWithPath: try Command.rehostExecutable())
        batch.arguments = ["batch", "run", fleet.manifest, "--index", "0"]
        batch.standardOutput = FileHandle.nullDevice
        batch.standardError = FileHandle.nullDevice
        try batch.run()
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            // The conversion is the batch's child; its partial output shows it is writing.
            let partials = (try? FileManager.default.contentsOfDirectory(atPath: fleet.directory.file("out")))?.filter { $0.hasSuffix(".partial") } ?? []
            if !partials.isEmpty, let child = childProcess(of: batch.processIdentifier) { return (batch, child) }
            usleep(20_000)
        }
        batch.terminate()
        throw TestFailure("the conversion never started")
    }

    /// A child of `parent`, started by any of its threads.
    func childProcess(of parent: Int32) -> Int32? {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(parent)/task")) ?? []
        for task in tasks {
            guard let text = try? String(contentsOfFile: "/proc/\(parent)/task/\(task)/children", encoding: .utf8) else { continue }
            if let child = text.split(separator: " ").compactMap({ Int32($0) }).first { return child }
        }
        return nil
    }

    @Test func aKilledWorkerLeavesNothingTakenAsDoneAndTheRerunStartsAfresh() throws {
        let fleet = try BatchFleet(good: ["vm"])
        try fleet.writeManifest(ids: ["vm"])

        // SIGKILL, as an out-of-memory kill or a lost node does it: no chance to clean up.
        let (batch, convert) = try startWorker(fleet)
        kill(convert, SIGKILL)
        kill(batch.processIdentifier, SIGKILL)
        batch.waitUntilExit()
        #expect(try fleet.record("vm")["status"] as? String == "running")
        let status = try BatchFleet.json(fleet.batch(["status", fleet.manifest, "--json"]))
        let entry = try #require((status["entries"] as? [[String: Any]])?.first)
        #expect(entry["state"] as? String == "todo" && (entry["reason"] as? String)?.contains("stopped in the middle") == true, "\(entry)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: fleet.directory.file("out")).contains { $0.hasSuffix(".partial") })

        let rerun = try fleet.batch(["run", fleet.manifest, "--index", "0", "--json"])
        #expect(rerun.status == 0, "\(rerun.stderr)")
        #expect(try BatchFleet.json(rerun)["attempt"] as? Int == 2)
        #expect(try FileManager.default.contentsOfDirectory(atPath: fleet.directory.file("out")) == ["vm.qcow2"], "the dead worker's partial output is gone")
        try Command.run("qemu-img", ["check", fleet.directory.file("out/vm.qcow2")]).requireSuccess()

        // SIGTERM, as scancel or a pod's stop does it: passed on, recorded as interrupted (retry).
        let again = try fleet.batch(["run", fleet.manifest, "--index", "0", "--force"])
        #expect(again.status == 0)
        try FileManager.default.removeItem(atPath: fleet.directory.file("out/vm.qcow2"))
        let (second, _) = try startWorker(fleet)
        kill(second.processIdentifier, SIGTERM)
        second.waitUntilExit()
        #expect(second.terminationStatus == 75)
        let record = try fleet.record("vm")
        #expect(record["status"] as? String == "failed" && record["cause"] as? String == "interrupted" && record["retryable"] as? Bool == true, "\(record)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: fleet.directory.file("out")).isEmpty, "the conversion removed its partial output")
    }

    @Test func conversionsRunAtLowerCPUAndIOPriority() throws {
        let fleet = try BatchFleet(good: ["vm"])
        try fleet.writeManifest(ids: ["vm"])
        let (batch, convert) = try startWorker(fleet)
        let stat = try String(contentsOfFile: "/proc/\(convert)/stat", encoding: .utf8)
        // Fields after the command name, which is in parentheses: niceness is field 19.
        let fields = stat[stat.index(after: try #require(stat.lastIndex(of: ")")))...].split(separator: " ")
        let ionice = try Command.run("ionice", ["-p", String(convert)]).requireSuccess().stdout
        batch.waitUntilExit()
        #expect(fields[16] == "10", "niceness of the conversion: \(fields[16])")
        #expect(ionice.trimmingCharacters(in: .whitespacesAndNewlines) == "best-effort: prio 7", "\(ionice)")
        #expect(batch.terminationStatus == 0)
        let engine = try #require(try fleet.record("vm")["engine"] as? [String: Any])
        #expect(engine["nice"] as? Int == 10 && engine["ioClass"] as? String == "best-effort 7" && engine["kind"] as? String == "local")
    }

    @Test func validateFindsEveryProblemBeforeAnythingRuns() throws {
        let fleet = try BatchFleet(good: ["vm"])
        try fleet.writeManifest([
            "{\"id\": \"a\", \"input\": \"in/vm.img\", \"outputs\": [\"out/a.qcow2\"], \"options\": {\"size\": \"ten\"}}",
            "{\"id\": \"b\", \"input\": \"in/missing.img\", \"outputs\": [\"nowhere/b.qcow2\"]}",
            "{\"id\": \"c\", \"input\": \"in/vm.img\", \"outputs\": [\"out/a.qcow2\"], \"options\": {\"skip\": [\"no-such-repair\"]}}",
            "{\"id\": \"d\", \"input\": \"in/vm.img\", \"outputs\": [\"out/d.vmdk\"], \"options\": {\"target\": \"virtualbox\", \"clean\": true}}",
        ])
        let result = try fleet.batch(["validate", fleet.manifest])
        #expect(result.status == 64)
        let lines = result.stdout.split(separator: "\n").map(String.init)
        #expect(lines.contains { $0.contains(":1: entry 0 (a)") && $0.contains("--size ten") }, "\(lines)")
        #expect(lines.contains { $0.contains(":2: entry 1 (b)") && $0.contains("input in/missing.img: No such file") })
        #expect(lines.contains { $0.contains(":2: entry 1 (b)") && $0.contains("nowhere") && $0.contains("no such directory") })
        #expect(lines.contains { $0.contains(":3: entry 2 (c)") && $0.contains("no-such-repair") })
        #expect(lines.contains { $0.contains(":3: entry 2 (c)") && $0.contains("also entry 0's (a)") })
        #expect(!lines.contains { $0.contains("entry 3") }, "entry 3 is fine")
        #expect(lines.last == "4 entries: 5 problems", "\(lines)")
        #expect(!FileManager.default.fileExists(atPath: fleet.results), "validate writes nothing")

        #expect(try fleet.batch(["run", fleet.manifest, "--index", "5"]).status == 64, "no entry 5")

        // A broken manifest: one line naming the file and line, exit 64, for every subcommand.
        try fleet.writeManifest(["{\"id\": \"a\", \"input\": \"in/vm.img\", \"outputs\": [\"out/a.qcow2\"]}", "{\"id\": \"a\", \"input\": \"x\"", ""])
        for command in ["validate", "run", "status"] {
            let broken = try fleet.batch([command, fleet.manifest])
            #expect(broken.status == 64 && broken.stderr == "rehost: error: \(fleet.manifest):2: not valid JSON\n", "\(command): \(broken.stderr)")
        }
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
