import CLinux

#if canImport(Glibc)
import Glibc
#endif

/// The CPU and I/O share the batch takes on a node controller whose guests are still running:
/// set on the batch process, inherited by every conversion it starts.
public struct ProcessPriority: Sendable, Equatable {
    public enum IOClass: String, Sendable, CaseIterable {
        /// The kernel's default class at its lowest level (7): served after everyone else's
        /// ordinary I/O, but never starved.
        case bestEffort = "best-effort"
        /// Only when the disk is otherwise idle: can wait a long time on a busy host.
        case idle
        /// Left as it is.
        case unchanged
    }

    /// Added to the niceness (0 leaves it).
    public var nice: Int32
    public var ioClass: IOClass

    public init(nice: Int32 = 10, ioClass: IOClass = .bestEffort) {
        self.nice = nice
        self.ioClass = ioClass
    }

    /// Applies it to this process. Lowering a priority needs no privilege; a failure to change
    /// the I/O class (a kernel without it) is not worth stopping a batch for, and is reported.
    public func apply() -> (nice: Int32, ioClass: String) {
        if nice != 0 {
            errno = 0
            let current = getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0)
            _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, min(19, current + nice))
        }
        switch ioClass {
        case .bestEffort: _ = rehost_ioprio_set_self(Self.ioPriority(class: 2, level: 7))
        case .idle: _ = rehost_ioprio_set_self(Self.ioPriority(class: 3, level: 0))
        case .unchanged: break
        }
        return Self.current()
    }

    static func ioPriority(class ioClass: Int32, level: Int32) -> Int32 { ioClass << 13 | level }

    /// This process's niceness and I/O class as the kernel reports them.
    public static func current() -> (nice: Int32, ioClass: String) {
        errno = 0
        let nice = getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0)
        let value = rehost_ioprio_get(0)
        let names = [0: "none", 1: "realtime", 2: "best-effort", 3: "idle"]
        let ioClass = value < 0 ? "unknown" : "\(names[Int(value >> 13)] ?? "class \(value >> 13)") \(value & 0x1fff)"
        return (nice, ioClass)
    }
}
