import Synchronization

/// Counts the requests an upload made again, from any thread, for its report.
public final class RetryCounter: Sendable {
    private let value = Mutex(0)

    public init() {}

    public func note() { value.withLock { $0 += 1 } }
    public var count: Int { value.withLock { $0 } }
}
