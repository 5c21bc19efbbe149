import ImageCore

/// A guest filesystem held in memory: for tests, and for small guests assembled on the fly.
/// Symlinks resolve inside the guest (see `GuestPathResolver`). Every call that changes something
/// is counted in `mutationCount`, so a test can check that a repair wrote nothing.
public final class MemoryGuestFilesystem: GuestFilesystem {
    public enum Node: Equatable, Sendable {
        case file(contents: [UInt8], mode: UInt16, uid: UInt32, gid: UInt32)
        case directory(mode: UInt16, uid: UInt32, gid: UInt32)
        case symlink(target: String)
    }

    /// Keyed by canonical path; "/" is always present.
    public private(set) var nodes: [String: Node] = ["/": .directory(mode: 0o755, uid: 0, gid: 0)]
    /// Calls to writeFile, createSymlink, remove and createDirectory, whether or not they changed anything.
    public private(set) var mutationCount = 0
    /// Extended attributes by canonical path and name.
    public private(set) var attributes: [String: [String: [UInt8]]] = [:]

    public init() {}

    // MARK: Building a guest (test set-up; not counted as mutations)

    /// Adds a file, creating missing parent directories (mode 0755, root).
    public func addFile(_ path: String, _ text: String, mode: UInt16 = 0o644, uid: UInt32 = 0, gid: UInt32 = 0) {
        addFile(path, bytes: Array(text.utf8), mode: mode, uid: uid, gid: gid)
    }

    public func addFile(_ path: String, bytes: [UInt8], mode: UInt16 = 0o644, uid: UInt32 = 0, gid: UInt32 = 0) {
        addParents(of: path)
        nodes[normalized(path)] = .file(contents: bytes, mode: mode, uid: uid, gid: gid)
    }

    public func addDirectory(_ path: String, mode: UInt16 = 0o755) {
        addParents(of: path)
        nodes[normalized(path)] = .directory(mode: mode, uid: 0, gid: 0)
    }

    /// Sets an extended attribute on an existing node (test set-up; not counted).
    public func addAttribute(_ path: String, name: String, value: [UInt8]) {
        attributes[normalized(path), default: [:]][name] = value
    }

    public func addSymlink(_ path: String, target: String) {
        addParents(of: path)
        nodes[normalized(path)] = .symlink(target: target)
    }

    /// The node stored at `path` itself, without following any symlink (the path must be canonical).
    public func node(at path: String) -> Node? { nodes[normalized(path)] }

    /// The text of a file, following symlinks; nil if missing. A convenience for tests.
    public func text(_ path: String) -> String? {
        (try? readFile(path)).flatMap { $0 }.map { String(decoding: $0, as: UTF8.self) }
    }

    private func normalized(_ path: String) -> String {
        GuestPathResolver.join(GuestPathResolver.components(path))
    }

    private func addParents(of path: String) {
        var parts = GuestPathResolver.components(path)
        parts.removeLast()
        for count in stride(from: 1, through: parts.count, by: 1) {
            let parent = GuestPathResolver.join(Array(parts.prefix(count)))
            if nodes[parent] == nil { nodes[parent] = .directory(mode: 0o755, uid: 0, gid: 0) }
        }
    }

    // MARK: GuestFilesystem

    private var resolver: GuestPathResolver {
        GuestPathResolver { [nodes] path in nodes[path].map(Self.entry(for:)) }
    }

    static func entry(for node: Node) -> GuestEntry {
        switch node {
        case let .file(contents, _, _, _): return .regularFile(size: UInt64(contents.count))
        case .directory: return .directory
        case let .symlink(target): return .symlink(target: target)
        }
    }

    public func entry(at path: String) throws -> GuestEntry? {
        guard let canonical = try resolver.resolve(path, followLast: false) else { return nil }
        return nodes[canonical].map(Self.entry(for:))
    }

    public func readFile(_ path: String) throws -> [UInt8]? {
        guard let canonical = try resolver.resolve(path, followLast: true),
              case let .file(contents, _, _, _)? = nodes[canonical] else { return nil }
        return contents
    }

    public func listDirectory(_ path: String) throws -> [String] {
        guard let canonical = try resolver.resolve(path, followLast: true),
              case .directory? = nodes[canonical] else { return [] }
        let prefix = canonical == "/" ? "/" : canonical + "/"
        return nodes.keys
            .filter { $0.hasPrefix(prefix) && $0 != "/" && !$0.dropFirst(prefix.count).contains("/") }
            .map { String($0.dropFirst(prefix.count)) }
            .sorted()
    }

    public func writeFile(_ path: String, contents: [UInt8], newFileMode: UInt16) throws {
        mutationCount += 1
        let canonical = try existingParent(path, followLast: true)
        switch nodes[canonical] {
        case let .file(_, mode, uid, gid)?:
            nodes[canonical] = .file(contents: contents, mode: mode, uid: uid, gid: gid)
        case nil:
            nodes[canonical] = .file(contents: contents, mode: newFileMode, uid: 0, gid: 0)
        case .directory?, .symlink?:
            throw GuestFilesystemError.isADirectory(path: path)
        }
    }

    public func createSymlink(_ path: String, target: String) throws {
        mutationCount += 1
        let canonical = try existingParent(path, followLast: false)
        if case .directory? = nodes[canonical] { throw GuestFilesystemError.isADirectory(path: path) }
        nodes[canonical] = .symlink(target: target)
    }

    public func remove(_ path: String) throws {
        mutationCount += 1
        guard let canonical = try resolver.resolve(path, followLast: false) else { return }
        if case .directory? = nodes[canonical] { throw GuestFilesystemError.isADirectory(path: path) }
        nodes[canonical] = nil
        attributes[canonical] = nil
    }

    public func extendedAttribute(_ path: String, name: String) throws -> [UInt8]? {
        guard let canonical = try resolver.resolve(path, followLast: false), nodes[canonical] != nil else { return nil }
        return attributes[canonical]?[name]
    }

    public func setExtendedAttribute(_ path: String, name: String, value: [UInt8]) throws {
        mutationCount += 1
        guard let canonical = try resolver.resolve(path, followLast: false), nodes[canonical] != nil else {
            throw GuestFilesystemError.parentMissing(path: path)
        }
        attributes[canonical, default: [:]][name] = value
    }

    public func createDirectory(_ path: String, mode: UInt16) throws {
        mutationCount += 1
        let canonical = try existingParent(path, followLast: true)
        switch nodes[canonical] {
        case .directory?: return
        case nil: nodes[canonical] = .directory(mode: mode, uid: 0, gid: 0)
        case .file?, .symlink?: throw GuestFilesystemError.notADirectory(path: path)
        }
    }

    /// The canonical path for a new or replaced entry, after checking its parent directory exists.
    private func existingParent(_ path: String, followLast: Bool) throws -> String {
        guard let canonical = try resolver.resolve(path, followLast: followLast),
              let (parent, _) = GuestPathResolver.split(canonical) else {
            throw GuestFilesystemError.parentMissing(path: path)
        }
        guard case .directory? = nodes[parent] else { throw GuestFilesystemError.parentMissing(path: path) }
        return canonical
    }
}
