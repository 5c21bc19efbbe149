import ImageCore

/// A writable layer over a guest filesystem that is never written: reads fall through to `base`,
/// writes, symlinks, directories and removals are kept in memory. Used for `--dry-run` and to plan
/// the repairs over the read-only source image; `replay(onto:)` performs the captured operations on
/// another filesystem (the converted disk) in the order they were made.
public final class OverlayGuestFilesystem: GuestFilesystem {
    /// One captured change, in guest paths as the caller gave them.
    public enum Operation: Equatable, Sendable {
        case writeFile(path: String, contents: [UInt8], newFileMode: UInt16)
        case createSymlink(path: String, target: String)
        case remove(path: String)
        case createDirectory(path: String, mode: UInt16)
        case setExtendedAttribute(path: String, name: String, value: [UInt8])
    }

    private enum Upper {
        case file([UInt8])
        case directory
        case symlink(String)
        case removed
    }

    public let base: any GuestFilesystem
    /// Keyed by canonical path.
    private var upper: [String: Upper] = [:]
    /// Attributes set through the overlay, by canonical path and name.
    private var upperAttributes: [String: [String: [UInt8]]] = [:]
    public private(set) var operations: [Operation] = []

    public init(base: any GuestFilesystem) {
        self.base = base
    }

    /// Performs the captured operations on `target`, in order.
    public func replay(onto target: any GuestFilesystem) throws {
        for operation in operations {
            switch operation {
            case let .writeFile(path, contents, mode): try target.writeFile(path, contents: contents, newFileMode: mode)
            case let .createSymlink(path, linkTarget): try target.createSymlink(path, target: linkTarget)
            case let .remove(path): try target.remove(path)
            case let .createDirectory(path, mode): try target.createDirectory(path, mode: mode)
            case let .setExtendedAttribute(path, name, value): try target.setExtendedAttribute(path, name: name, value: value)
            }
        }
    }

    // MARK: Reading through both layers

    /// What is at a canonical path: the captured layer first, then the base.
    private func lookup(_ canonical: String) throws -> GuestEntry? {
        switch upper[canonical] {
        case .file(let contents)?: return .regularFile(size: UInt64(contents.count))
        case .directory?: return .directory
        case .symlink(let target)?: return .symlink(target: target)
        case .removed?: return nil
        case nil: return try base.entry(at: canonical)
        }
    }

    private var resolver: GuestPathResolver {
        GuestPathResolver { [unowned self] path in try self.lookup(path) }
    }

    public func entry(at path: String) throws -> GuestEntry? {
        guard let canonical = try resolver.resolve(path, followLast: false) else { return nil }
        return try lookup(canonical)
    }

    public func readFile(_ path: String) throws -> [UInt8]? {
        guard let canonical = try resolver.resolve(path, followLast: true) else { return nil }
        switch upper[canonical] {
        case .file(let contents)?: return contents
        case .directory?, .symlink?, .removed?: return nil
        case nil: return try base.readFile(canonical)
        }
    }

    public func listDirectory(_ path: String) throws -> [String] {
        guard let canonical = try resolver.resolve(path, followLast: true),
              try lookup(canonical) == .directory else { return [] }
        var names = Set(upper[canonical] == nil ? try base.listDirectory(canonical) : [])
        let prefix = canonical == "/" ? "/" : canonical + "/"
        for (key, value) in upper where key.hasPrefix(prefix) && key != "/" {
            let name = String(key.dropFirst(prefix.count))
            guard !name.contains("/") else { continue }
            if case .removed = value { names.remove(name) } else { names.insert(name) }
        }
        return names.sorted()
    }

    // MARK: Capturing changes

    public func writeFile(_ path: String, contents: [UInt8], newFileMode: UInt16) throws {
        let canonical = try existingParent(path, followLast: true)
        switch try lookup(canonical) {
        case .regularFile?, nil: break
        case .directory?, .symlink?, .other?: throw GuestFilesystemError.isADirectory(path: path)
        }
        upper[canonical] = .file(contents)
        operations.append(.writeFile(path: path, contents: contents, newFileMode: newFileMode))
    }

    public func createSymlink(_ path: String, target: String) throws {
        let canonical = try existingParent(path, followLast: false)
        if try lookup(canonical) == .directory { throw GuestFilesystemError.isADirectory(path: path) }
        upper[canonical] = .symlink(target)
        operations.append(.createSymlink(path: path, target: target))
    }

    public func remove(_ path: String) throws {
        guard let canonical = try resolver.resolve(path, followLast: false) else { return }
        switch try lookup(canonical) {
        case nil: return
        case .directory?: throw GuestFilesystemError.isADirectory(path: path)
        default: break
        }
        upper[canonical] = .removed
        operations.append(.remove(path: path))
    }

    public func createDirectory(_ path: String, mode: UInt16) throws {
        let canonical = try existingParent(path, followLast: true)
        switch try lookup(canonical) {
        case .directory?: return
        case nil: break
        default: throw GuestFilesystemError.notADirectory(path: path)
        }
        upper[canonical] = .directory
        operations.append(.createDirectory(path: path, mode: mode))
    }

    public func extendedAttribute(_ path: String, name: String) throws -> [UInt8]? {
        guard let canonical = try resolver.resolve(path, followLast: false), try lookup(canonical) != nil else { return nil }
        if let value = upperAttributes[canonical]?[name] { return value }
        // An entry the overlay made has only the attributes set through it.
        if upper[canonical] != nil, try base.entry(at: canonical) == nil { return nil }
        return try base.extendedAttribute(canonical, name: name)
    }

    public func setExtendedAttribute(_ path: String, name: String, value: [UInt8]) throws {
        guard let canonical = try resolver.resolve(path, followLast: false), try lookup(canonical) != nil else {
            throw GuestFilesystemError.parentMissing(path: path)
        }
        upperAttributes[canonical, default: [:]][name] = value
        operations.append(.setExtendedAttribute(path: path, name: name, value: value))
    }

    private func existingParent(_ path: String, followLast: Bool) throws -> String {
        guard let canonical = try resolver.resolve(path, followLast: followLast),
              let (parent, _) = GuestPathResolver.split(canonical),
              try lookup(parent) == .directory else {
            throw GuestFilesystemError.parentMissing(path: path)
        }
        return canonical
    }
}
