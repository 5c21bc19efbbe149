@testable import Batch
import Foundation
import Testing
import TestSupport

@Suite struct EntryOutcomeTests {
    @Test func signalsAreInterruptionsOrCrashes() {
        for signal: Int32 in [15, 9, 2, 1] {
            let cause = FailureCause.classify(exitStatus: -1, signal: signal, error: "No space left on device")
            #expect(cause == .interrupted, "\(signal)")
            #expect(cause.retryable)
        }
        for signal: Int32 in [11, 4, 5, 6] {
            let cause = FailureCause.classify(exitStatus: -1, signal: signal, error: "")
            #expect(cause == .crashed, "\(signal)")
            #expect(!cause.retryable)
        }
    }

    @Test func exitStatusesAndErrorLinesGiveTheCause() {
        #expect(FailureCause.classify(exitStatus: 64, signal: nil, error: "Error: Unknown option '--sise'") == .usage)
        #expect(FailureCause.classify(exitStatus: 1, signal: nil, error: "not a disk image") == .badInput)
        #expect(FailureCause.classify(exitStatus: 75, signal: nil, error: "out/a.qcow2: write at 4096: No space left on device") == .noSpace)
        #expect(FailureCause.classify(exitStatus: 75, signal: nil, error: "out/a.qcow2: write: Disk quota exceeded") == .noSpace)
        #expect(FailureCause.classify(exitStatus: 75, signal: nil, error: "in/a.img: read at 0: Input/output error") == .ioError)
        #expect(FailureCause.classify(exitStatus: 75, signal: nil, error: "glance: HTTP 503 Service Unavailable") == .network)
        #expect(FailureCause.classify(exitStatus: 75, signal: nil, error: "") == .network)
        #expect(FailureCause.classify(exitStatus: 2, signal: nil, error: "No space left on device") == .failed)
        #expect(FailureCause.allCases.filter(\.retryable) == [.noSpace, .ioError, .network, .interrupted])
        #expect(FailureCause.allCases.map(\.rawValue) == ["bad-input", "usage", "no-space", "io-error", "network", "interrupted", "crashed", "failed"])
    }

    func record(cause: FailureCause?) -> ResultRecord {
        var record = ResultStoreTests.record(status: cause == nil ? .succeeded : .failed)
        record.cause = cause?.rawValue
        record.retryable = cause?.retryable
        return record
    }

    @Test func exitCodesTellTheEngineWhatToDo() {
        #expect(ExitCodes.permanent == 1 && ExitCodes.usage == 64 && ExitCodes.retry == 75)
        #expect(EntryOutcome.succeeded(record(cause: nil)).exitCode == 0)
        #expect(EntryOutcome.skipped(record(cause: nil)).exitCode == 0)
        #expect(EntryOutcome.busy("x: another worker").exitCode == 75)
        #expect(EntryOutcome.busy("x").record == nil)
        let expected: [FailureCause: Int32] = [.badInput: 1, .usage: 64, .noSpace: 75, .ioError: 75, .network: 75, .interrupted: 75, .crashed: 1, .failed: 1]
        for cause in FailureCause.allCases {
            #expect(EntryOutcome.failed(record(cause: cause), repeated: false).exitCode == expected[cause], "\(cause)")
            #expect(EntryOutcome.failed(record(cause: cause), repeated: true).exitCode == expected[cause], "\(cause)")
            #expect(EntryOutcome.failed(record(cause: cause), repeated: false).record?.cause == cause.rawValue)
        }
    }

    @Test func errorLineIsRehostsOwnElseArgumentParsersElseTheLast() {
        #expect(EntryRunner.errorLine(["warning: x", "rehost: error: in.img: not a disk image", "note"]) == "in.img: not a disk image")
        #expect(EntryRunner.errorLine(["Error: Unknown option '--sise'", "Usage: rehost convert"]) == "Unknown option '--sise'")
        #expect(EntryRunner.errorLine(["a", "b"]) == "b")
        #expect(EntryRunner.errorLine([]) == nil)
    }
}

@Suite struct ProcessPriorityTests {
    @Test func currentNicenessIsTheKernels() throws {
        let stat = try String(contentsOfFile: "/proc/self/stat", encoding: .utf8)
        // Fields after "(comm)" start at field 3; niceness is field 19.
        let fields = stat[stat.range(of: ")", options: .backwards)!.upperBound...].split(separator: " ")
        let nice = try #require(Int32(fields[19 - 3]))
        #expect(ProcessPriority.current().nice == nice)
    }

    @Test func currentIOClassIsWhatIoniceSays() throws {
        let said = try Command.run("ionice", ["-p", "\(getpid())"]).requireSuccess().stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        // "none: prio 0", "best-effort: prio 7", "idle"
        let parts = said.components(separatedBy: ": prio ")
        let current = ProcessPriority.current().ioClass
        #expect(current.split(separator: " ").first.map(String.init) == parts[0], "ionice: \(said), current: \(current)")
        if parts[0] != "none", parts.count == 2 { #expect(current == "\(parts[0]) \(parts[1])") }
    }

    @Test func ioPriorityEncodesClassAndLevel() {
        #expect(ProcessPriority.ioPriority(class: 2, level: 7) == 0x4007)
        #expect(ProcessPriority.ioPriority(class: 3, level: 0) == 0x6000)
        #expect(ProcessPriority.ioPriority(class: 1, level: 4) == 8196)
        #expect(ProcessPriority().nice == 10 && ProcessPriority().ioClass == .bestEffort)
        #expect(ProcessPriority.IOClass.allCases.map(\.rawValue) == ["best-effort", "idle", "unchanged"])
    }
}
