/// A least-recently-used cache of at most `capacity` entries: what keeps a random-access
/// reader's tables (qcow2 L2 tables, VMDK grain tables, inflated clusters) bounded in memory
/// whatever the size of the disk. Linear eviction: capacities here are a few dozen entries.
public final class BoundedCache<Key: Hashable, Value> {
    public let capacity: Int
    private var entries: [Key: (value: Value, used: UInt64)] = [:]
    private var clock: UInt64 = 0

    public init(capacity: Int) {
        precondition(capacity > 0)
        self.capacity = capacity
    }

    public var count: Int { entries.count }

    /// The value for `key`, or the one `make` builds (then kept, evicting the least recently used).
    public func value(for key: Key, _ make: () throws -> Value) rethrows -> Value {
        clock += 1
        if let hit = entries[key] {
            entries[key] = (hit.value, clock)
            return hit.value
        }
        let value = try make()
        if entries.count >= capacity, let oldest = entries.min(by: { $0.value.used < $1.value.used })?.key {
            entries[oldest] = nil
        }
        entries[key] = (value, clock)
        return value
    }
}
