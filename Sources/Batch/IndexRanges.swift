/// Entry indices written as Slurm's `--array=` takes them: `0-3,7,9-11`.
public enum IndexRanges {
    public static func format(_ indices: [Int]) -> String {
        let sorted = Array(Set(indices)).sorted()
        var parts: [String] = []
        var start = 0
        while start < sorted.count {
            var end = start
            while end + 1 < sorted.count, sorted[end + 1] == sorted[end] + 1 { end += 1 }
            parts.append(end == start ? "\(sorted[start])" : "\(sorted[start])-\(sorted[end])")
            start = end + 1
        }
        return parts.joined(separator: ",")
    }

    /// The inverse of `format`; nil for anything else (a stride or a `%` throttle included).
    public static func parse(_ text: String) -> [Int]? {
        var indices: [Int] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let bounds = part.split(separator: "-", omittingEmptySubsequences: false)
            guard (1...2).contains(bounds.count), let low = Int(bounds[0]), low >= 0,
                  let high = bounds.count == 2 ? Int(bounds[1]) : low, high >= low, high - low < 10_000_000 else { return nil }
            indices += Array(low...high)
        }
        return indices
    }
}

/// `--shard i/n`: entry k belongs to shard k mod n.
public struct Shard: Sendable, Equatable {
    public let index: Int
    public let count: Int

    public init?(_ text: String) {
        let parts = text.split(separator: "/")
        guard parts.count == 2, let index = Int(parts[0]), let count = Int(parts[1]), count > 0, (0..<count).contains(index) else { return nil }
        self.index = index
        self.count = count
    }

    public func contains(_ entry: Int) -> Bool { entry % count == index }
}
