import ImageCore

#if canImport(Glibc)
import Glibc
#endif

/// How an entry ended, and the exit status that tells an engine what to do next.
public enum EntryOutcome: Sendable {
    /// Converted now.
    case succeeded(ResultRecord)
    /// Its record is current and its outputs are as recorded: nothing done.
    case skipped(ResultRecord)
    /// Converted now and failed, or failed before with the same key and not worth repeating.
    case failed(ResultRecord, repeated: Bool)
    /// Another worker holds its lock.
    case busy(String)

    public var record: ResultRecord? {
        switch self {
        case let .succeeded(record), let .skipped(record), let .failed(record, _): return record
        case .busy: return nil
        }
    }

    /// 0 done or skipped; 1 failed, do not retry (the input or the options are wrong); 64 a usage
    /// error in the entry; 75 failed, retry (EX_TEMPFAIL: I/O, space, network, interruption,
    /// or another worker has it now).
    public var exitCode: Int32 {
        switch self {
        case .succeeded, .skipped: return 0
        case .busy: return ExitCodes.retry
        case let .failed(record, _):
            if record.retryable == true { return ExitCodes.retry }
            return record.cause == FailureCause.usage.rawValue ? ExitCodes.usage : ExitCodes.permanent
        }
    }
}

public enum ExitCodes {
    public static let permanent: Int32 = 1
    public static let usage: Int32 = 64
    public static let retry: Int32 = 75
}

/// Why an entry failed, from how its conversion ended.
public enum FailureCause: String, Sendable, CaseIterable {
    case badInput = "bad-input"
    case usage
    case noSpace = "no-space"
    case ioError = "io-error"
    case network
    case interrupted
    case crashed
    case failed

    public var retryable: Bool {
        switch self {
        case .noSpace, .ioError, .network, .interrupted: return true
        case .badInput, .usage, .crashed, .failed: return false
        }
    }

    public var explanation: String {
        switch self {
        case .badInput: return "the input cannot be converted as asked (corrupt, unsupported, or a wrong option for it)"
        case .usage: return "the entry's options are wrong"
        case .noSpace: return "out of space or quota"
        case .ioError: return "an I/O error"
        case .network: return "an upload's network or server fault"
        case .interrupted: return "stopped by a signal (cancelled, preempted, out of memory)"
        case .crashed: return "rehost crashed: a bug, please report it"
        case .failed: return "failed"
        }
    }

    /// From the conversion's exit status (or the signal that ended it) and its error line.
    public static func classify(exitStatus: Int32, signal: Int32?, error: String) -> FailureCause {
        if let signal {
            // TERM, INT, HUP, KILL: cancelled, preempted or killed for memory; anything else
            // (SIGILL, SIGTRAP, SIGSEGV, SIGABRT) is a crash that would happen again.
            return [15, 2, 1, 9].contains(signal) ? .interrupted : .crashed
        }
        switch exitStatus {
        case ExitCodes.usage: return .usage
        case ExitCodes.retry:
            // Rehost exits 75 for a transient file error (its errno's text is in the line) or an
            // upload's network or server fault.
            if [ENOSPC, EDQUOT].contains(where: { error.contains(errnoText($0)) }) { return .noSpace }
            if FileError.transientErrnos.contains(where: { error.contains(errnoText($0)) }) { return .ioError }
            return .network
        case ExitCodes.permanent: return .badInput
        default: return .failed
        }
    }
}
