import Foundation
import Testing
import TestSupport

@Suite struct SlurmClusterTests {
    /// The harness end to end on the real Slurm: a 4-task array where task 2 fails with status 3,
    /// the failed index resubmitted alone (now passing), then a stop that leaves no daemon alive.
    @Test func runsAnArrayResubmitsTheFailedIndexAndStopsEveryDaemon() throws {
        let cluster = try SlurmCluster()
        #expect(cluster.pids.count == 3)
        #expect(cluster.pids.allSatisfy(SlurmCluster.isAlive))
        #expect(cluster.environment["SLURM_CONF"] == cluster.slurmConf)

        let work = try TemporaryDirectory(prefix: "rehost-slurm-job")
        let script = work.file("task.sh")
        try """
            #!/bin/sh
            N=$SLURM_ARRAY_TASK_ID
            echo "task $N of job $SLURM_ARRAY_JOB_ID" > "$1/ran.$SLURM_ARRAY_JOB_ID.$N"
            if [ "$N" = 2 ] && [ ! -e "$1/pass.2" ]; then echo "fail $N" >&2; exit 3; fi
            exit 0

            """.write(toFile: script, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: script)
        let output = ["--output=\(work.path)/%A_%a.out", "--error=\(work.path)/%A_%a.err"]

        let first = try cluster.sbatch(["--array=0-3", "--job-name=rehost-test"] + output + [script, work.path])
        try cluster.waitForJob(first, timeout: .seconds(60))
        let tasks = try cluster.arrayTasks(first)
        #expect(tasks == [
            .init(index: 0, state: "COMPLETED", exitCode: 0, signal: 0),
            .init(index: 1, state: "COMPLETED", exitCode: 0, signal: 0),
            .init(index: 2, state: "FAILED", exitCode: 3, signal: 0),
            .init(index: 3, state: "COMPLETED", exitCode: 0, signal: 0),
        ], "\(tasks)\n\(cluster.logTail)")
        for index in 0..<4 {
            #expect(FileManager.default.fileExists(atPath: work.file("ran.\(first).\(index)")), "task \(index) left no trace")
        }
        #expect((try? String(contentsOfFile: work.file("\(first)_2.err"), encoding: .utf8)) == "fail 2\n")

        #expect(FileManager.default.createFile(atPath: work.file("pass.2"), contents: Data()))
        let retry = try cluster.sbatch(["--array=2", "--job-name=rehost-test"] + output + [script, work.path])
        #expect(retry != first)
        try cluster.waitForJob(retry, timeout: .seconds(60))
        #expect(try cluster.arrayTasks(retry) == [.init(index: 2, state: "COMPLETED", exitCode: 0, signal: 0)])
        #expect(FileManager.default.fileExists(atPath: work.file("ran.\(retry).2")))

        let started = cluster.pids + cluster.watchdogPIDs
        #expect(cluster.watchdogPIDs.count == 3)
        cluster.stop()
        for pid in started {
            #expect(!SlurmCluster.isAlive(pid), "pid \(pid) outlived stop()")
        }
        cluster.stop()
    }

    @Test func parsesScontrolLines() throws {
        let line = "JobId=7 ArrayJobId=5 ArrayTaskId=2 JobName=rehost UserId=root(0) JobState=FAILED Reason=NonZeroExitCode ExitCode=3:0 DerivedExitCode=0:0"
        #expect(try SlurmCluster.parseTask(line) == .init(index: 2, state: "FAILED", exitCode: 3, signal: 0))
        let signalled = "JobId=9 ArrayJobId=9 ArrayTaskId=0 JobState=CANCELLED ExitCode=0:15"
        #expect(try SlurmCluster.parseTask(signalled) == .init(index: 0, state: "CANCELLED", exitCode: 0, signal: 15))
        #expect(throws: SlurmClusterError.self) { try SlurmCluster.parseTask("JobId=5 ArrayJobId=5 ArrayTaskId=0-3 JobState=PENDING ExitCode=0:0") }
    }
}
