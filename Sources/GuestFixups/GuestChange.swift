import ImageCore

/// One change a repair made to the guest, for the CLI to show as "path: - old / + new".
public struct GuestChange: Codable, Sendable, Equatable {
    public enum Action: String, Codable, Sendable {
        case edited, created, removed, symlinked, labelled
    }

    /// A changed line: `before` nil for an added line, `after` nil for a removed one.
    public struct LineChange: Codable, Sendable, Equatable {
        public var before: String?
        public var after: String?

        public init(before: String?, after: String?) {
            self.before = before
            self.after = after
        }
    }

    public var repair: String
    public var path: String
    public var action: Action
    /// For edits and created files: the changed lines. Empty for removals and symlinks.
    public var lines: [LineChange]
    /// For symlinks: where the new link points.
    public var target: String?

    public init(repair: String, path: String, action: Action, lines: [LineChange] = [], target: String? = nil) {
        self.repair = repair
        self.path = path
        self.action = action
        self.lines = lines
        self.target = target
    }
}

public enum RepairError: RehostError, Equatable {
    case noBootableKernel(target: String, reasons: [String])
    case noKernels
    case unknownRepair(name: String, known: [String])
    case noSuchKernel(String, available: [String])
    case kernelDoesNotBoot(String, target: String, because: String)

    public var description: String {
        switch self {
        case let .noBootableKernel(target, reasons):
            return "no kernel in /boot boots on \(target): \(reasons.joined(separator: "; "))"
        case .noKernels:
            return "/boot: no /boot/vmlinuz-* kernel in the guest (was /boot a separate Xen partition?); "
                + "expected at least one non-Xen kernel"
        case let .noSuchKernel(kernel, available):
            return "--kernel \(kernel): no such kernel in /boot; expected one of \(available.isEmpty ? "(none)" : available.joined(separator: ", "))"
        case let .kernelDoesNotBoot(kernel, target, because):
            return "--kernel \(kernel): it does not boot on \(target): \(because)"
        case let .unknownRepair(name, known):
            return "--skip \(name): no such repair; expected one of \(known.joined(separator: ", "))"
        }
    }
}

/// The changed lines between two versions of a file: a longest-common-subsequence diff, where a
/// run of removed lines followed by added ones is paired up as replacements.
enum LineDiff {
    static func changes(from before: [String], to after: [String]) -> [GuestChange.LineChange] {
        let n = before.count, m = after.count
        // common[i][j]: length of the longest common subsequence of before[i...] and after[j...].
        var common = [[Int]](repeating: [Int](repeating: 0, count: m + 1), count: n + 1)
        for i in stride(from: n - 1, through: 0, by: -1) {
            for j in stride(from: m - 1, through: 0, by: -1) {
                common[i][j] = before[i] == after[j]
                    ? common[i + 1][j + 1] + 1
                    : max(common[i + 1][j], common[i][j + 1])
            }
        }
        var result: [GuestChange.LineChange] = []
        var removed: [String] = [], added: [String] = []
        func flush() {
            for k in 0..<max(removed.count, added.count) {
                result.append(.init(before: k < removed.count ? removed[k] : nil,
                                    after: k < added.count ? added[k] : nil))
            }
            removed = []
            added = []
        }
        var i = 0, j = 0
        while i < n || j < m {
            if i < n, j < m, before[i] == after[j] {
                flush()
                i += 1
                j += 1
            } else if j < m, i == n || common[i][j + 1] >= common[i + 1][j] {
                added.append(after[j])
                j += 1
            } else {
                removed.append(before[i])
                i += 1
            }
        }
        flush()
        return result
    }
}
