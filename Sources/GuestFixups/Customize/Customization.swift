import Digests
import ImageCore

#if canImport(Glibc)
import Glibc
#endif

/// A host file or tree for `--copy-in`, read whole on the host before the image is opened.
public indirect enum HostTree: Sendable {
    case file(name: String, contents: [UInt8], permissions: UInt16)
    case directory(name: String, permissions: UInt16, children: [HostTree])
    case symlink(name: String, target: String)

    var name: String {
        switch self {
        case let .file(name, _, _), let .directory(name, _, _), let .symlink(name, _): return name
        }
    }

    /// What the tree takes in a filesystem, at most: each file and directory in whole 4 KiB
    /// blocks plus one for its metadata (an indirect block, a directory entry's share).
    var footprint: UInt64 {
        switch self {
        case let .file(_, contents, _): return roundedToBlocks(UInt64(contents.count)) + 4096
        case let .directory(_, _, children): return children.reduce(4096) { $0 + $1.footprint }
        case let .symlink(_, target): return target.utf8.count > 60 ? 4096 : 0
        }
    }
}

private func roundedToBlocks(_ bytes: UInt64) -> UInt64 { (bytes + 4095) / 4096 * 4096 }

/// How `--root-password` sets root's password.
public enum RootPassword: Sendable, Equatable {
    case password(String)
    /// A random password of 16 characters, shown in the report.
    case random
    /// No password login at all ("!" in /etc/shadow).
    case locked

    /// `password:X`, `file:F` (its first line), `random` or `locked`.
    public static func parse(_ text: String) throws -> RootPassword {
        if text == "random" { return .random }
        if text == "locked" { return .locked }
        if text.hasPrefix("password:") { return .password(String(text.dropFirst(9))) }
        if text.hasPrefix("file:") {
            let path = String(text.dropFirst(5))
            guard let bytes = HostFiles.read(path) else { throw GuestEditError.hostFile(path: path, reason: "cannot be read on the host") }
            let line = String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).first ?? ""
            return .password(String(line))
        }
        throw GuestEditError.badArgument(option: "--root-password", value: text.hasPrefix("password") ? "password:…" : text,
                                         expected: "password:PASSWORD, file:FILE, random or locked")
    }
}

/// What `rehost customize` (and the same options on `convert`) does to a guest, in this order:
/// mkdir, copy-in, write, append-line, delete, chmod, hostname, timezone, root password,
/// ssh-inject, then the first-boot scripts and commands in the order given.
public struct CustomizeOptions: Sendable {
    public struct CopyIn: Sendable { public var tree: HostTree; public var directory: String
        public init(tree: HostTree, directory: String) { self.tree = tree; self.directory = directory } }
    public struct FileText: Sendable { public var path: String; public var text: String
        public init(path: String, text: String) { self.path = path; self.text = text } }
    public struct Chmod: Sendable { public var permissions: UInt16; public var path: String
        public init(permissions: UInt16, path: String) { self.permissions = permissions; self.path = path } }
    public struct SSHKey: Sendable { public var user: String; public var key: String
        public init(user: String, key: String) { self.user = user; self.key = key } }
    public struct Script: Sendable { public var name: String; public var script: String
        public init(name: String, script: String) { self.name = name; self.script = script } }

    public var mkdirs: [String] = []
    public var copyIns: [CopyIn] = []
    /// `user:group` (names or numbers, from the guest's passwd and group) for what --copy-in makes.
    public var copyOwner: String?
    public var writes: [FileText] = []
    public var appendLines: [FileText] = []
    public var deletes: [String] = []
    public var chmods: [Chmod] = []
    public var hostname: String?
    public var timezone: String?
    public var rootPassword: RootPassword?
    public var sshKeys: [SSHKey] = []
    public var firstboot: [Script] = []

    public init() {}

    /// What the copy-ins, written files and first-boot scripts add to the guest, at most: what
    /// `convert` sizes the new filesystem for.
    public var addedBytes: UInt64 {
        let texts = (writes + appendLines).reduce(UInt64(0)) { $0 + roundedToBlocks(UInt64($1.text.utf8.count)) + 4096 }
        let scripts = firstboot.reduce(UInt64(0)) { $0 + roundedToBlocks(UInt64($1.script.utf8.count)) + 4096 }
        return copyIns.reduce(texts + scripts) { $0 + $1.tree.footprint }
    }

    /// Replaces `--root-password random` by the password it picks, once, so a plan and the edit
    /// that follows it agree; returns that password.
    public mutating func resolveRandomPassword() -> String? {
        guard rootPassword == .random else { return nil }
        let password = Customizer.randomPassword()
        rootPassword = .password(password)
        return password
    }

    public var isEmpty: Bool {
        mkdirs.isEmpty && copyIns.isEmpty && writes.isEmpty && appendLines.isEmpty && deletes.isEmpty && chmods.isEmpty
            && hostname == nil && timezone == nil && rootPassword == nil && sshKeys.isEmpty && firstboot.isEmpty
    }

    /// Every guest path given, checked before the image is opened: absolute, and not climbing
    /// above the guest's root with "..".
    public func checkPaths() throws {
        let paths = mkdirs + copyIns.map(\.directory) + writes.map(\.path) + appendLines.map(\.path) + deletes + chmods.map(\.path)
        for path in paths { try Customizer.checkUserPath(path) }
        if let hostname, hostname.isEmpty || hostname.count > 253 || hostname.contains(where: { !($0.isLetter || $0.isNumber || $0 == "-" || $0 == ".") }) {
            throw GuestEditError.badArgument(option: "--hostname", value: hostname, expected: "letters, digits, '-' and '.' (at most 253)")
        }
        if let timezone, timezone.isEmpty || timezone.hasPrefix("/") || timezone.split(separator: "/").contains("..") {
            throw GuestEditError.badArgument(option: "--timezone", value: timezone, expected: "a zone such as Europe/Paris or UTC")
        }
    }
}

/// What `customize` reports beyond its edits.
public struct CustomizeResult: Sendable, Encodable {
    /// The password `--root-password random` chose.
    public var randomRootPassword: String?
    /// "sha512" or "md5".
    public var passwordHash: String?

    public init() {}
}

public enum Customizer {
    /// Refuses a guest path given by the user that is relative or climbs above the root.
    public static func checkUserPath(_ path: String) throws {
        guard path.hasPrefix("/") else { throw GuestEditError.outsideGuest(path: path, reason: "guest paths are absolute, such as /etc/motd") }
        var depth = 0
        for component in path.split(separator: "/") {
            if component == ".." { depth -= 1 } else if component != "." { depth += 1 }
            if depth < 0 { throw GuestEditError.outsideGuest(path: path, reason: "\"..\" climbs above the guest's root") }
        }
    }

    /// Follows `path` inside the guest and refuses it when a symlink on the way points outside
    /// the guest (a relative target climbing above its root); returns the canonical path of
    /// where it leads (the last component followed when `followLast`).
    static func checkedPath(_ guest: GuestEditor, _ path: String, followLast: Bool) throws -> String {
        try checkUserPath(path)
        var resolved: [String] = []
        var pending = GuestPathResolver.components(path)
        var hops = 0
        while !pending.isEmpty {
            let component = pending.removeFirst()
            if component == "." { continue }
            if component == ".." { _ = resolved.popLast(); continue }
            let candidate = "/" + (resolved + [component]).joined(separator: "/")
            if case let .symlink(target)? = try guest.entry(candidate), followLast || !pending.isEmpty {
                hops += 1
                guard hops <= 40 else { throw GuestEditError.outsideGuest(path: path, reason: "too many levels of symlinks") }
                if target.hasPrefix("/") {
                    resolved = []
                } else {
                    var depth = resolved.count
                    for part in target.split(separator: "/") {
                        if part == ".." { depth -= 1 } else if part != "." { depth += 1 }
                        if depth < 0 {
                            throw GuestEditError.outsideGuest(path: path, reason: "\(candidate) is a symlink to \(target), which points outside the guest")
                        }
                    }
                }
                pending = GuestPathResolver.components(target) + pending
                continue
            }
            resolved.append(component)
        }
        return "/" + resolved.joined(separator: "/")
    }

    public static func run(_ options: CustomizeOptions, on guest: GuestEditor, initSystem: InitSystem) throws -> CustomizeResult {
        var result = CustomizeResult()
        let accounts = try guest.accounts()
        guest.operation = "mkdir"
        for path in options.mkdirs { try guest.makeDirectories(try checkedPath(guest, path, followLast: true)) }
        guest.operation = "copy-in"
        var owner: (UInt32, UInt32) = (0, 0)
        if let spec = options.copyOwner {
            let parts = spec.split(separator: ":", maxSplits: 1).map(String.init)
            guard parts.count == 2, let uid = accounts.uid(parts[0]), let gid = accounts.gid(parts[1]) else {
                throw GuestEditError.badArgument(option: "--chown", value: spec, expected: "USER:GROUP known to the guest's /etc/passwd and /etc/group, or numbers")
            }
            owner = (uid, gid)
        }
        for copy in options.copyIns {
            let directory = try checkedPath(guest, copy.directory, followLast: true)
            guard case .directory? = try guest.entry(directory) else { throw GuestEditError.notADirectory(path: copy.directory) }
            try copyIn(guest, copy.tree, into: directory, owner: owner)
        }
        guest.operation = "write"
        for write in options.writes { try guest.writeText(try checkedFile(guest, write.path), write.text) }
        guest.operation = "append-line"
        for append in options.appendLines {
            let path = try checkedFile(guest, append.path)
            let text = try guest.fs.readText(path) ?? ""
            if text.split(separator: "\n", omittingEmptySubsequences: false).contains(Substring(append.text)) { continue }
            try guest.writeText(path, text + (text.isEmpty || text.hasSuffix("\n") ? "" : "\n") + append.text + "\n")
        }
        guest.operation = "delete"
        for path in options.deletes { try guest.remove(try checkedPath(guest, path, followLast: false)) }
        guest.operation = "chmod"
        for chmod in options.chmods {
            let path = try checkedPath(guest, chmod.path, followLast: true)
            guard try guest.entry(path) != nil else { throw GuestEditError.notFound(path: chmod.path) }
            try guest.setStatus(path, uid: nil, gid: nil, permissions: chmod.permissions)
        }
        if let hostname = options.hostname { guest.operation = "hostname"; try setHostname(guest, hostname) }
        if let timezone = options.timezone { guest.operation = "timezone"; try setTimezone(guest, timezone) }
        if let password = options.rootPassword {
            guest.operation = "root-password"
            result = try setRootPassword(guest, password)
        }
        guest.operation = "ssh-inject"
        for key in options.sshKeys { try injectKey(guest, key, accounts: accounts) }
        guest.operation = "firstboot"
        for script in options.firstboot { try FirstBoot.add(guest, name: script.name, script: script.script, initSystem: initSystem) }
        try guest.labelCreated()
        return result
    }

    /// A file to write: its parent must be a directory in the guest.
    static func checkedFile(_ guest: GuestEditor, _ path: String) throws -> String {
        let canonical = try checkedPath(guest, path, followLast: true)
        guard let place = GuestPathResolver.split(canonical), case .directory? = try guest.entry(place.parent) else {
            throw GuestEditError.notFound(path: GuestPathResolver.split(path)?.parent ?? path)
        }
        return canonical
    }

    static func copyIn(_ guest: GuestEditor, _ tree: HostTree, into directory: String, owner: (UInt32, UInt32)) throws {
        let path = guest.join(directory, tree.name)
        switch tree {
        case let .file(_, contents, permissions):
            try guest.write(path, contents, mode: permissions, owner: owner)
            try guest.setStatus(path, uid: owner.0, gid: owner.1, permissions: permissions, quiet: true)
        case let .directory(_, permissions, children):
            try guest.makeDirectories(path, mode: permissions, owner: owner)
            for child in children { try copyIn(guest, child, into: path, owner: owner) }
            try guest.setStatus(path, uid: owner.0, gid: owner.1, permissions: permissions, quiet: true)
        case let .symlink(_, target):
            try guest.symlink(path, target: target)
            try guest.setStatus(path, uid: owner.0, gid: owner.1, permissions: nil, quiet: true)
        }
    }

    // MARK: Hostname and time zone

    static func setHostname(_ guest: GuestEditor, _ hostname: String) throws {
        let short = String(hostname.split(separator: ".").first ?? Substring(hostname))
        var wrote = false
        if let network = try guest.fs.readText("/etc/sysconfig/network") {
            try guest.writeText("/etc/sysconfig/network", replacingAssignment(network, key: "HOSTNAME", value: hostname))
            wrote = true
        }
        if try guest.entry("/etc/HOSTNAME") != nil { try guest.writeText("/etc/HOSTNAME", hostname + "\n"); wrote = true }
        if try guest.entry("/etc/hostname") != nil || !wrote { try guest.writeText("/etc/hostname", short + "\n") }
        // Debian's installer maps the host name to 127.0.1.1; keep that line true.
        if let hosts = try guest.fs.readText("/etc/hosts"), hosts.contains("127.0.1.1") {
            let lines = hosts.split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
                line.hasPrefix("127.0.1.1") ? "127.0.1.1\t\(hostname == short ? short : "\(hostname) \(short)")" : String(line)
            }
            try guest.writeText("/etc/hosts", lines.joined(separator: "\n"))
        }
    }

    /// `KEY=value` set in a shell-variable file: the line replaced, or added at the end.
    static func replacingAssignment(_ text: String, key: String, value: String) -> String {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if lines.last == "" { lines.removeLast() }
        if let index = lines.firstIndex(where: { $0.hasPrefix(key + "=") }) { lines[index] = "\(key)=\(value)" } else { lines.append("\(key)=\(value)") }
        return lines.joined(separator: "\n") + "\n"
    }

    static func setTimezone(_ guest: GuestEditor, _ zone: String) throws {
        let zoneFile = "/usr/share/zoneinfo/" + zone
        guard case .regularFile? = try guest.entry(try guest.resolve(zoneFile, followLast: true) ?? zoneFile) else {
            throw GuestEditError.badArgument(option: "--timezone", value: zone, expected: "a zone the guest has in /usr/share/zoneinfo")
        }
        if case .regularFile? = try guest.entry("/etc/localtime"), let bytes = try guest.fs.readFile(zoneFile) {
            // Old Red Hat guests keep a copy, not a link: keep doing so.
            try guest.write("/etc/localtime", bytes)
        } else {
            try guest.symlink("/etc/localtime", target: zoneFile)
        }
        if try guest.entry("/etc/timezone") != nil { try guest.writeText("/etc/timezone", zone + "\n") }
        if let clock = try guest.fs.readText("/etc/sysconfig/clock") {
            let key = clock.contains("TIMEZONE=") ? "TIMEZONE" : "ZONE"
            try guest.writeText("/etc/sysconfig/clock", replacingAssignment(clock, key: key, value: "\"\(zone)\""))
        }
    }

    // MARK: Root password

    static func setRootPassword(_ guest: GuestEditor, _ password: RootPassword) throws -> CustomizeResult {
        guard let shadow = try guest.fs.readText("/etc/shadow") else { throw GuestEditError.notFound(path: "/etc/shadow") }
        var result = CustomizeResult()
        let field: String
        let clear: String?
        switch password {
        case .locked: clear = nil
        case let .password(text): clear = text
        case .random:
            clear = randomPassword()
            result.randomRootPassword = clear
        }
        if let clear {
            let method: PasswordCrypt.Method = try glibcSupportsSHA512(guest) ? .sha512 : .md5
            result.passwordHash = method == .sha512 ? "sha512" : "md5"
            field = PasswordCrypt.hash(clear, salt: PasswordCrypt.randomSalt(count: method == .sha512 ? 16 : 8, for: "root password salt"), method: method)
        } else {
            field = "!"
        }
        let days = Int(Reproducibility.now()) / 86400
        var found = false
        let lines = shadow.split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
            var fields = line.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            guard fields.first == "root", fields.count >= 3 else { return String(line) }
            found = true
            fields[1] = field
            fields[2] = String(days)
            return fields.joined(separator: ":")
        }
        guard found else { throw GuestEditError.noSuchUser(name: "root") }
        try guest.writeText("/etc/shadow", lines.joined(separator: "\n"))
        if guest.edits.last?.path == "/etc/shadow" { guest.markLast(detail: "root: \(result.passwordHash.map { "\($0) crypt" } ?? "locked")") }
        return result
    }

    public static func randomPassword() -> String {
        let alphabet = Array("abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789")
        return String(PasswordCrypt.randomBytes(16).map { alphabet[Int($0) % alphabet.count] })
    }

    /// SHA-512 crypt came with glibc 2.7 (2007): a guest with an older libc gets MD5 crypt, unless
    /// its own configuration or shadow file already uses SHA-512 (RHEL 5.2 backported it to 2.5).
    static func glibcSupportsSHA512(_ guest: GuestEditor) throws -> Bool {
        if let shadow = try guest.fs.readText("/etc/shadow"), shadow.contains(":$6$") { return true }
        if let defs = try guest.fs.readText("/etc/login.defs"),
           defs.split(separator: "\n").contains(where: { $0.blankSeparatedFields.map(String.init) == ["ENCRYPT_METHOD", "SHA512"] }) {
            return true
        }
        for directory in ["/lib", "/lib64", "/lib/x86_64-linux-gnu", "/lib/i386-linux-gnu", "/usr/lib", "/usr/lib64"] {
            for name in try guest.fs.listDirectory(directory) where name.hasPrefix("libc-2.") && name.hasSuffix(".so") {
                let minor = Int(name.dropFirst(7).prefix { $0.isNumber }) ?? 99
                if minor < 7 { return false }
            }
        }
        return true
    }

    // MARK: SSH keys

    static func injectKey(_ guest: GuestEditor, _ key: CustomizeOptions.SSHKey, accounts: GuestAccountFiles) throws {
        guard let user = accounts.user(key.user) else { throw GuestEditError.noSuchUser(name: key.user) }
        guard user.home.hasPrefix("/") else { throw GuestEditError.notADirectory(path: user.home) }
        let home = try checkedPath(guest, user.home, followLast: true)
        try guest.makeDirectories(home, mode: 0o700, owner: (user.uid, user.gid))
        let ssh = guest.join(home, ".ssh")
        try guest.makeDirectories(ssh, mode: 0o700, owner: (user.uid, user.gid))
        try guest.setStatus(ssh, uid: user.uid, gid: user.gid, permissions: 0o700)
        let file = guest.join(ssh, "authorized_keys")
        let existing = try guest.fs.readText(file) ?? ""
        let line = key.key.trimmingCharacters(in: " \n\r\t")
        if !existing.split(separator: "\n").contains(Substring(line)) {
            try guest.write(file, Array((existing + (existing.isEmpty || existing.hasSuffix("\n") ? "" : "\n") + line + "\n").utf8),
                            mode: 0o600, owner: (user.uid, user.gid))
        }
        try guest.setStatus(file, uid: user.uid, gid: user.gid, permissions: 0o600)
    }
}

/// Small host reads for option values (`file:F`, key files, first-boot scripts).
public enum HostFiles {
    public static func read(_ path: String, limit: Int = 16 << 20) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var result: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while result.count <= limit {
            let got = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if got < 0 { return nil }
            if got == 0 { return result }
            result += buffer.prefix(got)
        }
        return nil
    }
}
