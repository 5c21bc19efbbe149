/// Progress events from long work. The pipeline reports; the command line decides whether to
/// draw (a terminal) or stay quiet (a pipe, `--json`).
public protocol ProgressSink: AnyObject {
    /// A named stage starts ("copying files", "installing GRUB").
    func begin(stage: String, totalBytes: UInt64?)
    /// Bytes done so far in the current stage.
    func advance(to bytesDone: UInt64)
    func end()
    /// A one-line remark that does not stop the work (a retried request).
    func note(_ text: String)
}

extension ProgressSink {
    public func note(_ text: String) {}
}

public final class SilentProgress: ProgressSink {
    public init() {}
    public func begin(stage: String, totalBytes: UInt64?) {}
    public func advance(to bytesDone: UInt64) {}
    public func end() {}
}

#if canImport(Glibc)
import Glibc
#endif

/// Seconds on a clock that never jumps, for durations in reports and progress rates.
public func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}
