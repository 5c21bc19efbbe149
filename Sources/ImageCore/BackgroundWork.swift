import Dispatch
import Synchronization

/// Work started on another thread now and collected later, so it overlaps what the caller does
/// meanwhile (an fsync, the streaming of other outputs).
public final class BackgroundWork<Value: Sendable>: Sendable {
    private let group = DispatchGroup()
    private let result = Mutex<Result<Value, any Error>?>(nil)

    public init(_ work: @escaping @Sendable () throws -> Value) {
        DispatchQueue.global().async(group: group) { [self] in
            let outcome = Result { try work() }
            self.result.withLock { $0 = outcome }
        }
    }

    /// Waits for the work; rethrows its error.
    public func wait() throws -> Value {
        group.wait()
        return try result.withLock { $0! }.get()
    }
}
