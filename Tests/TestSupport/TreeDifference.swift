import Foundation

/// Which property of a path differs.
public enum TreeProperty: Hashable, Sendable, CustomStringConvertible {
    /// The path exists on one side only.
    case presence
    case kind, permissions, uid, gid, size, atime, mtime, ctime, linkCount, flags
    case xattr(String)
    case symlinkTarget, device, content, holeMap
    /// The set of paths naming the same inode.
    case hardLinks

    public var description: String {
        switch self {
        case .presence: return "presence"
        case .kind: return "type"
        case .permissions: return "mode"
        case .uid: return "uid"
        case .gid: return "gid"
        case .size: return "size"
        case .atime: return "atime"
        case .mtime: return "mtime"
        case .ctime: return "ctime"
        case .linkCount: return "link count"
        case .flags: return "flags"
        case let .xattr(name): return "xattr \(name)"
        case .symlinkTarget: return "symlink target"
        case .device: return "device"
        case .content: return "content sha256"
        case .holeMap: return "mapped bytes"
        case .hardLinks: return "hard links"
        }
    }
}

/// One property of one path that differs between two trees, with both values as text.
public struct TreeDifference: Hashable, Sendable, CustomStringConvertible {
    public let path: String
    public let property: TreeProperty
    public let source: String
    public let output: String

    public init(path: String, property: TreeProperty, source: String, output: String) {
        self.path = path
        self.property = property
        self.source = source
        self.output = output
    }

    public var description: String { "\(path): \(property): source \(source), output \(output)" }
}

extension ExtTreeManifest {
    /// Every difference between two trees, sorted by path.
    /// - Parameters:
    ///   - ignoringTimesOf: paths whose atime, mtime and ctime are not compared (directories the repairs touched).
    ///   - ignoringPaths: paths left out entirely, with everything below them.
    ///   - comparingDirectorySizes: off by default, because a directory's size depends on how its
    ///     entries were laid out, not on what it holds.
    ///
    /// Times compare at the precision both sides have (seconds only against 128-byte inodes). Hole
    /// maps compare as byte ranges, so filesystems of different block sizes can be compared. A
    /// file's link count is reported only when its hard-link group is the same on both sides
    /// (otherwise the group difference already says it).
    public static func differences(
        from source: ExtTreeManifest, to output: ExtTreeManifest,
        ignoringTimesOf: Set<String> = [], ignoringPaths: Set<String> = [],
        comparingDirectorySizes: Bool = false
    ) -> [TreeDifference] {
        func ignored(_ path: String) -> Bool {
            ignoringPaths.contains { path == $0 || path.hasPrefix($0 == "/" ? "/" : $0 + "/") }
        }
        var found: [TreeDifference] = []
        let paths = Set(source.entries.keys).union(output.entries.keys).filter { !ignored($0) }.sorted()
        for path in paths {
            guard let old = source.entries[path], let new = output.entries[path] else {
                found.append(TreeDifference(path: path, property: .presence,
                                            source: source.entries[path] == nil ? "missing" : "present",
                                            output: output.entries[path] == nil ? "missing" : "present"))
                continue
            }
            func note<T: Equatable>(_ property: TreeProperty, _ a: T, _ b: T, _ show: (T) -> String) {
                if a != b { found.append(TreeDifference(path: path, property: property, source: show(a), output: show(b))) }
            }
            note(.kind, old.kind, new.kind) { "\($0)" }
            if old.kind != new.kind { continue }
            note(.permissions, old.permissions, new.permissions) { String(format: "%04o", $0) }
            note(.uid, old.uid, new.uid) { "\($0)" }
            note(.gid, old.gid, new.gid) { "\($0)" }
            if old.kind != .directory || comparingDirectorySizes {
                note(.size, old.size, new.size) { "\($0)" }
            }
            if !ignoringTimesOf.contains(path) {
                for (property, a, b) in [(TreeProperty.atime, old.atime, new.atime), (.mtime, old.mtime, new.mtime),
                                         (.ctime, old.ctime, new.ctime)] where !a.matches(b) {
                    found.append(TreeDifference(path: path, property: property, source: "\(a)", output: "\(b)"))
                }
            }
            let oldGroup = source.hardLinkGroup(of: path).filter { !ignored($0) }
            let newGroup = output.hardLinkGroup(of: path).filter { !ignored($0) }
            if old.kind == .directory || oldGroup == newGroup {
                note(.linkCount, old.linkCount, new.linkCount) { "\($0)" }
            }
            note(.hardLinks, oldGroup, newGroup) { $0.joined(separator: ", ") }
            note(.flags, old.flags, new.flags) { "\($0)" }
            for name in Set(old.xattrs.keys).union(new.xattrs.keys).sorted() {
                note(.xattr(name), old.xattrs[name], new.xattrs[name]) { $0.map(showBytes) ?? "absent" }
            }
            note(.symlinkTarget, old.symlinkTarget, new.symlinkTarget) { $0.map(showBytes) ?? "none" }
            note(.device, old.device, new.device) { $0.map(\.description) ?? "none" }
            note(.content, old.contentSHA256, new.contentSHA256) { $0 ?? "none" }
            note(.holeMap, old.mappedBlocks.map { byteRanges($0, source.blockSize, old.size) },
                 new.mappedBlocks.map { byteRanges($0, output.blockSize, new.size) }) { ranges in
                ranges.map { $0.isEmpty ? "none" : $0.map { "\($0.lowerBound)..<\($0.upperBound)" }.joined(separator: " ") } ?? "n/a"
            }
        }
        return found
    }

    /// Mapped blocks as byte ranges, cut at the file size (a last partial block is mapped whole).
    private static func byteRanges(_ runs: [BlockRun], _ blockSize: UInt32, _ size: UInt64) -> [Range<UInt64>] {
        let block = UInt64(blockSize)
        return runs.compactMap { run in
            let start = run.first * block
            let end = min((run.first + run.count) * block, size)
            return start < end ? start..<end : nil
        }
    }

    /// Text as a quoted string when it is printable UTF-8, else hex, so a NUL or binary value shows plainly.
    private static func showBytes(_ bytes: [UInt8]) -> String {
        if let text = String(validating: bytes, as: UTF8.self), text.allSatisfy({ !$0.isASCII || ($0.asciiValue! >= 0x20 && $0.asciiValue! < 0x7f) }) {
            return text.debugDescription
        }
        return "hex " + bytes.map { String(format: "%02x", $0) }.joined()
    }
}
