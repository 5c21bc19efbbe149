import ImageCore

/// Owners, modes and directory removal: what `clean` and `customize` need beyond
/// `GuestFilesystem`. Paths are absolute in the guest; the last component is not followed.
public protocol GuestMetadataEditing: AnyObject {
    /// Owner, group and permission bits of the entry at `path` itself; nil if missing.
    func status(_ path: String) throws -> GuestFileStatus?
    /// Sets what is given, keeping the rest; the file type never changes.
    func setStatus(_ path: String, uid: UInt32?, gid: UInt32?, permissions: UInt16?) throws
    /// Removes an empty directory.
    func removeDirectory(_ path: String) throws
}

public struct GuestFileStatus: Equatable, Sendable {
    public var uid: UInt32
    public var gid: UInt32
    /// The permission bits (0o7777).
    public var permissions: UInt16

    public init(uid: UInt32, gid: UInt32, permissions: UInt16) {
        self.uid = uid
        self.gid = gid
        self.permissions = permissions
    }
}

/// One thing `clean` or `customize` changed (or, in a dry run, would change).
public struct GuestEdit: Codable, Sendable, Equatable {
    public enum Action: String, Codable, Sendable {
        case removed, truncated, emptied, edited, created, directory, symlinked, chmod, chown, labelled
    }

    /// The operation's name: `logfiles`, `hostname`, `copy-in`...
    public var operation: String
    public var path: String
    public var action: Action
    /// What changed, in a few words ("12 KiB", "0600", "1000:1000").
    public var detail: String?

    public init(operation: String, path: String, action: Action, detail: String? = nil) {
        self.operation = operation
        self.path = path
        self.action = action
        self.detail = detail
    }
}

public enum GuestEditError: RehostError, Equatable {
    /// A guest path given by the user that is not absolute or climbs out of the guest.
    case outsideGuest(path: String, reason: String)
    case notFound(path: String)
    case notADirectory(path: String)
    case badArgument(option: String, value: String, expected: String)
    case noSuchUser(name: String)
    case hostFile(path: String, reason: String)
    case unknownOperation(name: String, known: [String])
    /// An option value that does not parse, said in full.
    case invalid(String)
    case notARegularFile(path: String)

    public var description: String {
        switch self {
        case let .outsideGuest(path, reason): return "\(path): outside the guest: \(reason)"
        case let .notFound(path): return "\(path): no such file or directory in the guest"
        case let .notADirectory(path): return "\(path): not a directory in the guest"
        case let .notARegularFile(path): return "\(path): not a regular file in the guest; nothing is written over it"
        case let .badArgument(option, value, expected): return "\(option) \(value): expected \(expected)"
        case let .noSuchUser(name): return "\(name): no such user in the guest's /etc/passwd"
        case let .hostFile(path, reason): return "\(path): \(reason)"
        case let .invalid(message): return message
        case let .unknownOperation(name, known): return "\(name): no such operation; expected one of \(known.joined(separator: ", "))"
        }
    }
}

/// The guest as `clean` and `customize` edit it: every change goes through here, is recorded as a
/// `GuestEdit`, and is made only when not a dry run. In a dry run `fs` is an overlay over the
/// read-only guest, so later edits see earlier ones, and owners and modes are not set.
public final class GuestEditor {
    public let fs: any GuestFilesystem
    let metadata: (any GuestMetadataEditing)?
    public let dryRun: Bool
    public private(set) var edits: [GuestEdit] = []
    /// Paths created, for SELinux labelling at the end.
    private(set) var created: [String] = []
    /// The operation now running, named in every edit it records.
    var operation = ""

    /// Where owners and modes are read in a dry run (the read-only guest under the overlay).
    let statusSource: (any GuestMetadataEditing)?

    public init(fs: any GuestFilesystem, metadata: (any GuestMetadataEditing)?, dryRun: Bool, statusSource: (any GuestMetadataEditing)? = nil) {
        self.fs = fs
        self.metadata = metadata
        self.dryRun = dryRun
        self.statusSource = statusSource ?? metadata
    }

    func record(_ path: String, _ action: GuestEdit.Action, _ detail: String? = nil) {
        edits.append(GuestEdit(operation: operation, path: path, action: action, detail: detail))
    }

    // MARK: Reading

    public func entry(_ path: String) throws -> GuestEntry? { try fs.entry(at: path) }

    /// The canonical path of `path`, resolved inside the guest (symlinks clamped at its root).
    func resolve(_ path: String, followLast: Bool) throws -> String? {
        let resolver = GuestPathResolver { [fs] in try fs.entry(at: $0) }
        return try resolver.resolve(path, followLast: followLast)
    }

    func join(_ directory: String, _ name: String) -> String { directory == "/" ? "/" + name : directory + "/" + name }

    /// Every entry under `directory` (not following symlinks), children before their directory.
    func walk(_ directory: String, depth: Int = 0) throws -> [(path: String, entry: GuestEntry)] {
        guard depth < 64, case .directory? = try fs.entry(at: directory) else { return [] }
        var result: [(String, GuestEntry)] = []
        for name in try fs.listDirectory(directory) {
            let path = join(directory, name)
            guard let entry = try fs.entry(at: path) else { continue }
            if entry == .directory { result += try walk(path, depth: depth + 1) }
            result.append((path, entry))
        }
        return result
    }

    /// Entries matching a glob in its last component only (`/home/*/.bash_history` is expanded by
    /// the callers through `homes`).
    func matching(_ directory: String, _ test: (String) -> Bool) throws -> [String] {
        guard case .directory? = try fs.entry(at: directory) else { return [] }
        return try fs.listDirectory(directory).filter(test).map { join(directory, $0) }
    }

    /// The people's home directories, that exist as directories: /root, each directory in /home,
    /// and the home in /etc/passwd of each login user (uid 500 and up: Red Hat's first, Debian's
    /// is 1000; not nobody). System accounts' homes (/var/lib/git) are left alone, as virt-sysprep
    /// leaves them: their keys belong to a service.
    func homes() throws -> [String] {
        var result = ["/root"] + (try matching("/home") { _ in true })
        for account in try accounts().users where account.uid >= 500 && account.uid != 65534 && account.home.hasPrefix("/")
            && account.home != "/" && !result.contains(account.home) {
            result.append(account.home)
        }
        return try result.filter { try fs.entry(at: $0) == .directory }
    }

    func accounts() throws -> GuestAccountFiles { GuestAccountFiles(passwd: try fs.readText("/etc/passwd") ?? "", group: try fs.readText("/etc/group") ?? "") }

    public func status(_ path: String) throws -> GuestFileStatus? {
        try statusSource?.status(path)
    }

    // MARK: Changing

    /// Removes a file or symlink, or a directory with everything in it.
    func remove(_ path: String) throws {
        guard let entry = try fs.entry(at: path) else { return }
        if entry == .directory {
            for (child, childEntry) in try walk(path) {
                if childEntry == .directory { try removeEmptyDirectory(child) } else { try fs.remove(child) }
                record(child, .removed, childEntry == .directory ? "directory" : nil)
            }
            try removeEmptyDirectory(path)
        } else {
            try fs.remove(path)
        }
        record(path, .removed, entry == .directory ? "directory" : nil)
    }

    private func removeEmptyDirectory(_ path: String) throws {
        if dryRun { return }
        guard let metadata else { throw GuestEditError.notADirectory(path: path) }
        try metadata.removeDirectory(path)
    }

    /// Empties everything inside `directory`, keeping it.
    func removeContents(_ directory: String) throws {
        guard case .directory? = try fs.entry(at: directory) else { return }
        for name in try fs.listDirectory(directory) { try remove(join(directory, name)) }
    }

    /// Cuts a regular file to nothing, keeping its inode, owner, mode and label.
    func truncate(_ path: String, action: GuestEdit.Action = .truncated) throws {
        guard case let .regularFile(size)? = try fs.entry(at: path), size > 0 else { return }
        try fs.writeFile(path, contents: [], newFileMode: 0o644)
        record(path, action, ByteCount.format(size))
    }

    /// Writes a whole file: an existing one keeps its owner, mode and label.
    func write(_ path: String, _ contents: [UInt8], mode: UInt16 = 0o644, owner: (UInt32, UInt32)? = nil) throws {
        let existing = try fs.entry(at: path)
        if case .regularFile? = existing, try fs.readFile(path) == contents { return }
        if let existing, !isRegular(existing) {
            if case .symlink = existing {} else { throw GuestEditError.notARegularFile(path: path) }
        }
        try fs.writeFile(path, contents: contents, newFileMode: mode)
        if existing == nil {
            created.append(path)
            if let owner { try setStatus(path, uid: owner.0, gid: owner.1, permissions: nil, quiet: true) }
            record(path, .created, ByteCount.format(UInt64(contents.count)))
        } else {
            record(path, .edited, ByteCount.format(UInt64(contents.count)))
        }
    }

    /// Replaces the detail of the last edit recorded (what a password change says instead of a size).
    func markLast(detail: String) { if !edits.isEmpty { edits[edits.count - 1].detail = detail } }

    func writeText(_ path: String, _ text: String, mode: UInt16 = 0o644) throws { try write(path, Array(text.utf8), mode: mode) }

    private func isRegular(_ entry: GuestEntry) -> Bool { if case .regularFile = entry { return true } else { return false } }

    /// `mkdir -p`; new directories owned by `owner` (root by default).
    func makeDirectories(_ path: String, mode: UInt16 = 0o755, owner: (UInt32, UInt32)? = nil) throws {
        var prefix = ""
        for component in GuestPathResolver.components(path) {
            prefix += "/" + component
            switch try fs.entry(at: prefix) {
            case .directory?: continue
            case .symlink?:
                guard let target = try resolve(prefix, followLast: true), case .directory? = try fs.entry(at: target) else {
                    throw GuestEditError.notADirectory(path: prefix)
                }
            case nil:
                try fs.createDirectory(prefix, mode: mode)
                created.append(prefix)
                if let owner { try setStatus(prefix, uid: owner.0, gid: owner.1, permissions: nil, quiet: true) }
                record(prefix, .directory, String(mode, radix: 8))
            default: throw GuestEditError.notADirectory(path: prefix)
            }
        }
    }

    func symlink(_ path: String, target: String) throws {
        if case .symlink(target)? = try fs.entry(at: path) { return }
        try fs.createSymlink(path, target: target)
        created.append(path)
        record(path, .symlinked, target)
    }

    /// Sets owner and mode where they differ.
    func setStatus(_ path: String, uid: UInt32?, gid: UInt32?, permissions: UInt16?, quiet: Bool = false) throws {
        let current = try status(path)
        if let current, (uid ?? current.uid) == current.uid, (gid ?? current.gid) == current.gid,
           (permissions ?? current.permissions) == current.permissions { return }
        if !dryRun, let metadata { try metadata.setStatus(path, uid: uid, gid: gid, permissions: permissions) }
        if quiet { return }
        if let permissions, permissions != current?.permissions { record(path, .chmod, String(format4(permissions))) }
        if uid != nil || gid != nil, uid != current?.uid || gid != current?.gid {
            record(path, .chown, "\(uid.map(String.init) ?? "-"):\(gid.map(String.init) ?? "-")")
        }
    }

    private func format4(_ mode: UInt16) -> String {
        let text = String(mode, radix: 8)
        return String(repeating: "0", count: max(0, 4 - text.count)) + text
    }

    /// Labels what was created, as the boot repairs do, when the guest uses SELinux.
    func labelCreated() throws {
        guard !created.isEmpty, try SELinuxRepair.usesSELinux(fs) else { return }
        let contexts = try FileContexts.load(fs)
        operation = "selinux"
        var seen = Set<String>()
        for path in created where seen.insert(path).inserted {
            guard let entry = try fs.entry(at: path), try fs.extendedAttribute(path, name: SELinuxRepair.attribute) == nil else { continue }
            let label = try contexts?.label(for: path, kind: entry) ?? SELinuxRepair.neighbourLabel(fs, path: path, kind: entry)
            guard let label else { continue }
            try fs.setExtendedAttribute(path, name: SELinuxRepair.attribute, value: Array(label.utf8) + [0])
            record(path, .labelled, label)
        }
    }
}

/// The guest's /etc/passwd and /etc/group: names to numbers, and home directories.
struct GuestAccountFiles {
    struct User { var name: String; var uid: UInt32; var gid: UInt32; var home: String }
    var users: [User] = []
    var groups: [String: UInt32] = [:]

    init(passwd: String, group: String) {
        for line in passwd.split(separator: "\n") {
            let f = line.split(separator: ":", omittingEmptySubsequences: false)
            guard f.count >= 6, let uid = UInt32(f[2]), let gid = UInt32(f[3]) else { continue }
            users.append(User(name: String(f[0]), uid: uid, gid: gid, home: String(f[5])))
        }
        for line in group.split(separator: "\n") {
            let f = line.split(separator: ":", omittingEmptySubsequences: false)
            guard f.count >= 3, let gid = UInt32(f[2]) else { continue }
            groups[String(f[0])] = gid
        }
    }

    func user(_ name: String) -> User? { users.first { $0.name == name } }

    /// A user name or number.
    func uid(_ text: String) -> UInt32? { UInt32(text) ?? user(text)?.uid }
    /// A group name or number.
    func gid(_ text: String) -> UInt32? { UInt32(text) ?? groups[text] }
}

/// Owners and modes through the mounts, when every filesystem under them has them.
extension MountedGuestFilesystem: GuestMetadataEditing {
    public func status(_ path: String) throws -> GuestFileStatus? {
        let (fs, inner) = route(path)
        return try (fs as? any GuestMetadataEditing)?.status(inner)
    }

    public func setStatus(_ path: String, uid: UInt32?, gid: UInt32?, permissions: UInt16?) throws {
        let (fs, inner) = route(path)
        guard let metadata = fs as? any GuestMetadataEditing else { throw GuestEditError.notFound(path: path) }
        try metadata.setStatus(inner, uid: uid, gid: gid, permissions: permissions)
    }

    public func removeDirectory(_ path: String) throws {
        let (fs, inner) = route(path)
        guard let metadata = fs as? any GuestMetadataEditing else { throw GuestEditError.notFound(path: path) }
        try metadata.removeDirectory(inner)
    }
}
