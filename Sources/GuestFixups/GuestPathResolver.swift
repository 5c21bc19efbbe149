import ImageCore

/// Errors from the in-memory and overlay guest filesystems.
public enum GuestFilesystemError: RehostError, Equatable {
    case symlinkLoop(path: String)
    case notADirectory(path: String)
    case parentMissing(path: String)
    case isADirectory(path: String)
    case notAbsolute(path: String)

    public var description: String {
        switch self {
        case let .symlinkLoop(path):
            return "\(path): more than \(GuestPathResolver.maximumSymlinks) symlinks to follow inside the guest (a loop?)"
        case let .notADirectory(path): return "\(path): a path component is not a directory inside the guest"
        case let .parentMissing(path): return "\(path): the parent directory does not exist inside the guest"
        case let .isADirectory(path): return "\(path): is a directory inside the guest, expected a file or symlink"
        case let .notAbsolute(path): return "\(path): guest paths must be absolute"
        }
    }
}

/// Walks a guest path component by component the way the guest's kernel would, but with the guest's
/// root as "/": absolute link targets restart at the guest root, relative ones continue from the
/// link's directory, and ".." at the root stays at the root, so no path ever leaves the guest.
public struct GuestPathResolver {
    /// Linux's own limit on symlinks followed in one lookup.
    public static let maximumSymlinks = 40

    /// What is stored at a canonical path (one with no symlinks, "." or ".." in it).
    let lookup: (String) throws -> GuestEntry?

    public init(lookup: @escaping (String) throws -> GuestEntry?) { self.lookup = lookup }

    /// The canonical path `path` names, following symlinks in every component, and the last one too
    /// when `followLast`. Returns nil when a component before the last is missing; the last one may
    /// be missing (the caller is about to create it).
    public func resolve(_ path: String, followLast: Bool) throws -> String? {
        guard path.hasPrefix("/") else { throw GuestFilesystemError.notAbsolute(path: path) }
        var pending = Self.components(path)
        var resolved: [String] = []
        var symlinksFollowed = 0
        while !pending.isEmpty {
            let name = pending.removeFirst()
            if name == "." { continue }
            if name == ".." {
                if !resolved.isEmpty { resolved.removeLast() }
                continue
            }
            let candidate = Self.join(resolved + [name])
            let isLast = pending.isEmpty
            switch try lookup(candidate) {
            case .symlink(let target)? where !isLast || followLast:
                symlinksFollowed += 1
                guard symlinksFollowed <= Self.maximumSymlinks else {
                    throw GuestFilesystemError.symlinkLoop(path: path)
                }
                if target.hasPrefix("/") { resolved = [] }
                pending = Self.components(target) + pending
            case nil:
                if !isLast { return nil }
                resolved.append(name)
            case .regularFile?, .other?:
                if !isLast { throw GuestFilesystemError.notADirectory(path: path) }
                resolved.append(name)
            case .directory?, .symlink?:
                resolved.append(name)
            }
        }
        return Self.join(resolved)
    }

    static func components(_ path: String) -> [String] {
        path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
    }

    static func join(_ components: [String]) -> String {
        "/" + components.joined(separator: "/")
    }

    /// The canonical parent and the last name of a canonical path; nil for "/".
    public static func split(_ canonical: String) -> (parent: String, name: String)? {
        var parts = components(canonical)
        guard let name = parts.popLast() else { return nil }
        return (join(parts), name)
    }
}
