/// One entry of a cpio newc archive, with its fields as stored.
public struct CpioEntry: Sendable, Equatable {
    /// As stored (e.g. "usr/lib/modules/6.1.0/kernel/x.ko", ".", "init"), up to its first NUL as
    /// the kernel reads it; bytes that are not UTF-8 read as U+FFFD.
    public var name: String
    public var mode: UInt32
    public var uid: UInt32
    public var gid: UInt32
    public var nlink: UInt32
    public var mtime: UInt32
    public var ino: UInt32
    public var devMajor: UInt32
    public var devMinor: UInt32
    public var rdevMajor: UInt32
    public var rdevMinor: UInt32
    /// File contents, or the symlink target.
    public var data: [UInt8]

    public enum Kind: Sendable, Equatable, Hashable {
        case regular, directory, symlink, characterDevice, blockDevice, fifo, socket, other
    }

    public init(name: String, mode: UInt32, uid: UInt32 = 0, gid: UInt32 = 0, nlink: UInt32 = 1,
                mtime: UInt32 = 0, ino: UInt32 = 0, devMajor: UInt32 = 0, devMinor: UInt32 = 0,
                rdevMajor: UInt32 = 0, rdevMinor: UInt32 = 0, data: [UInt8] = []) {
        self.name = name
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.nlink = nlink
        self.mtime = mtime
        self.ino = ino
        self.devMajor = devMajor
        self.devMinor = devMinor
        self.rdevMajor = rdevMajor
        self.rdevMinor = rdevMinor
        self.data = data
    }

    static let typeMask: UInt32 = 0o170000
    static let typeBits: [(Kind, UInt32)] = [
        (.regular, 0o100000), (.directory, 0o040000), (.symlink, 0o120000), (.characterDevice, 0o020000),
        (.blockDevice, 0o060000), (.fifo, 0o010000), (.socket, 0o140000),
    ]

    /// The file type, from the S_IFMT bits of `mode`; setting it rewrites those bits.
    public var kind: Kind {
        get {
            let bits = mode & Self.typeMask
            return Self.typeBits.first { $0.1 == bits }?.0 ?? .other
        }
        set {
            guard let bits = Self.typeBits.first(where: { $0.0 == newValue })?.1 else { return }
            mode = mode & ~Self.typeMask | bits
        }
    }

    /// `name` without a leading "./" or "/", "" for the root ("." or "./" or "/").
    public var path: String {
        get { Self.normalized(name) }
        set { name = newValue }
    }

    /// The symlink target, for symlinks.
    public var linkTarget: String? {
        kind == .symlink ? String(decoding: data, as: UTF8.self) : nil
    }

    static func normalized(_ name: String) -> String {
        var rest = Substring(name)
        while true {
            if rest.hasPrefix("./") { rest = rest.dropFirst(2) }
            else if rest.hasPrefix("/") { rest = rest.dropFirst() }
            else { break }
        }
        if rest == "." { return "" }
        while rest.hasSuffix("/") { rest = rest.dropLast() }
        return String(rest)
    }

    public static func file(_ path: String, _ data: [UInt8], mode: UInt32 = 0o644, mtime: UInt32 = 0) -> CpioEntry {
        CpioEntry(name: path, mode: 0o100000 | mode & 0o7777, mtime: mtime, data: data)
    }

    public static func directory(_ path: String, mode: UInt32 = 0o755, mtime: UInt32 = 0) -> CpioEntry {
        CpioEntry(name: path, mode: 0o040000 | mode & 0o7777, nlink: 2, mtime: mtime)
    }

    public static func symlink(_ path: String, target: String, mtime: UInt32 = 0) -> CpioEntry {
        CpioEntry(name: path, mode: 0o120777, mtime: mtime, data: Array(target.utf8))
    }
}
