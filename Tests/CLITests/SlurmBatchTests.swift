import Foundation
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// `rehost batch` under a real Slurm (munged, slurmctld and slurmd on 127.0.0.1, started and
/// stopped by pid): the array script `rehost batch emit slurm` writes, over a dozen entries, some
/// bad; a transient fault retried inside the task, a full disk resubmitted once there is room,
/// then the whole array again with every finished entry skipped.
struct SlurmBatchTests {
    @Test func aManifestGoesThroughARealSlurmArrayAndARerunDoesNoRepeatedWork() throws {
        try #require(getuid() == 0, "the test mounts a small tmpfs to fill a disk: run the suite as root, as CI does")
        let good = ["web1", "web2", "web3", "web4", "web5", "web6"]
        let fleet = try BatchFleet(good: good + ["held", "full"], truncated: ["short"], garbage: ["noise"], prefix: "rehost-slurm-batch")
        let small = fleet.directory.file("small")
        try FileManager.default.createDirectory(atPath: small, withIntermediateDirectories: true)
        try Command.run("mount", ["-t", "tmpfs", "-o", "size=16m", "tmpfs", small]).requireSuccess()
        defer { _ = try? Command.run("umount", ["-l", small]) }
        let ids = good + ["held", "full", "short", "noise", "gone", "badopt"]
        try fleet.writeManifest(["{\"defaults\": {\"outputs\": [\"out/{id}.qcow2\"], \"options\": {\"target\": \"kvm\"}}}"] + ids.map { id in
            switch id {
            case "full": return "{\"id\": \"full\", \"input\": \"in/full.img\", \"outputs\": [\"small/full.qcow2\"]}"
            case "badopt": return "{\"id\": \"badopt\", \"input\": \"in/web1.img\", \"options\": {\"size\": \"ten\"}}"
            default: return "{\"id\": \"\(id)\", \"input\": \"in/\(id).img\"}"
            }
        })
        let index = Dictionary(uniqueKeysWithValues: ids.enumerated().map { ($1, $0) })

        let cluster = try SlurmCluster()
        defer { cluster.stop() }
        let script = fleet.directory.file("fleet.sbatch")
        let emit = try fleet.batch(["emit", "slurm", fleet.manifest, "--parallel", "2", "--retries", "1", "--retry-delay", "1", "-o", script])
        #expect(emit.status == 0, "\(emit.stderr)")
        let text = try String(contentsOfFile: script, encoding: .utf8)
        #expect(text.contains("#SBATCH --array=0-11%2"), "\(text)")

        // Another worker holds "held" until its task has failed once as busy (exit 75): the
        // script's own retry then converts it.
        let logs = "\(fleet.results)/logs"
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        holder.arguments = ["-c", """
            import fcntl, glob, sys, time
            lock = open(sys.argv[1], 'a'); fcntl.lockf(lock, fcntl.LOCK_EX); print('held', flush=True)
            deadline = time.time() + 300
            while time.time() < deadline:
                if any('transient failure' in open(p).read() for p in glob.glob(sys.argv[2])): break
                time.sleep(0.1)
            """, "\(fleet.results)/held.lock", "\(logs)/*_\(index["held"]!).log"]
        let pipe = Pipe()
        holder.standardOutput = pipe
        holder.standardError = FileHandle.nullDevice
        try holder.run()
        defer { if holder.isRunning { kill(holder.processIdentifier, SIGKILL) } }
        _ = pipe.fileHandleForReading.availableData

        let job = try cluster.sbatch([script])
        try cluster.waitForJob(job, timeout: .seconds(900))
        holder.waitUntilExit()
        let tasks = try cluster.arrayTasks(job)
        #expect(tasks.count == 12, "\(tasks)\n\(cluster.logTail)")
        let expected: [String: (String, Int32)] = [
            "short": ("FAILED", 1), "noise": ("FAILED", 1), "gone": ("FAILED", 1), "badopt": ("FAILED", 64), "full": ("FAILED", 75),
        ]
        for task in tasks {
            let id = ids[task.index]
            let (state, code) = expected[id] ?? ("COMPLETED", 0)
            #expect(task.state == state && task.exitCode == code, "\(id): \(task)")
            // The record says what Slurm says, and where it ran.
            let record = try fleet.record(id)
            #expect(record["exitCode"] as? Int == Int(code), "\(id): \(record)")
            let engine = try #require(record["engine"] as? [String: Any])
            #expect(engine["kind"] as? String == "slurm" && engine["arrayJobID"] as? String == job && engine["taskID"] as? String == String(task.index))
        }
        for id in good + ["held"] {
            let record = try fleet.record(id)
            let output = try #require((record["outputs"] as? [[String: Any]])?.first)
            let path = fleet.directory.file("out/\(id).qcow2")
            #expect(output["size"] as? Int == (try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int))
            try Command.run("qemu-img", ["check", path]).requireSuccess()
        }
        let heldLog = try String(contentsOfFile: try #require(try FileManager.default.contentsOfDirectory(atPath: logs)
            .first { $0 == "\(job)_\(index["held"]!).log" }.map { "\(logs)/\($0)" }), encoding: .utf8)
        #expect(heldLog.contains("busy") && heldLog.contains("transient failure") && heldLog.contains("converted"), "\(heldLog)")
        #expect(try fleet.record("full")["cause"] as? String == "no-space")
        #expect(try fleet.record("badopt")["cause"] as? String == "usage")

        // Room on the full disk: status lists that one index; resubmitted alone, it passes.
        try Command.run("mount", ["-o", "remount,size=400m", small]).requireSuccess()
        let toDo = try fleet.batch(["status", fleet.manifest, "--to-do"])
        #expect(toDo.stdout == "\(index["full"]!)\n" && toDo.status == 75, "\(toDo.stdout)")
        let retry = try cluster.sbatch(["--array=\(toDo.stdout.trimmingCharacters(in: .whitespacesAndNewlines))", script])
        try cluster.waitForJob(retry, timeout: .seconds(300))
        #expect(try cluster.arrayTasks(retry) == [.init(index: index["full"]!, state: "COMPLETED", exitCode: 0, signal: 0)])
        try Command.run("qemu-img", ["check", "\(small)/full.qcow2"]).requireSuccess()

        // The whole array again: nothing converted twice, no output touched.
        let outputs = (good + ["held"]).map { fleet.directory.file("out/\($0).qcow2") } + ["\(small)/full.qcow2"]
        let times = outputs.map(fleet.mtime)
        let again = try cluster.sbatch(["--array=0-11%2", script])
        try cluster.waitForJob(again, timeout: .seconds(300))
        for task in try cluster.arrayTasks(again) {
            let id = ids[task.index]
            let log = try String(contentsOfFile: "\(logs)/\(again)_\(task.index).log", encoding: .utf8)
            if let (_, code) = expected[id], id != "full" {
                #expect(task.exitCode == code && log.contains("failed before with the same inputs"), "\(id): \(task) \(log)")
            } else {
                #expect(task.state == "COMPLETED" && log.contains("skipped"), "\(id): \(task) \(log)")
            }
        }
        #expect(outputs.map(fleet.mtime) == times)

        let status = try BatchFleet.json(fleet.batch(["status", fleet.manifest, "--json"]))
        #expect(status["counts"] as? [String: Int] == ["done": 8, "failed": 4], "\(status)")
        let causes = (status["failures"] as? [[String: Any]] ?? []).map { "\($0["cause"]!):\($0["indices"]!)" }
        #expect(causes == ["bad-input:8-10", "usage:11"], "\(causes)")
    }
}
