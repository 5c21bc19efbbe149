import ImageCore

#if canImport(Glibc)
import Glibc
#endif

/// The host side of `copy-in`: the files to copy, read whole (lstat, never following a symlink)
/// before the image is opened, so a missing or unsupported one is refused with nothing written.
extension GuestCopyIn {
    /// One host entry to copy, read (lstat, never following a symlink) before the image is opened.
    struct HostItem {
        enum Kind {
            case file(size: UInt64, data: [Range<UInt64>])
            case directory([HostItem])
            case symlink(target: [UInt8])
        }
        var hostPath: String
        var name: [UInt8]
        var kind: Kind
        var permissions: UInt16
        var access: timespec
        var modification: timespec
    }

    /// The name a host path gets in the guest: its last component.
    static func entryName(_ path: String) throws -> [UInt8] {
        guard let last = path.split(separator: "/").last, last != ".", last != ".." else {
            throw FileAccessError.badName(path: path, reason: "name a file or directory by its own name, not / . or ..")
        }
        let name = Array(last.utf8)
        guard name.count <= 255 else { throw FileAccessError.badName(path: path, reason: "a name of \(name.count) bytes; ext2/3/4 names hold at most 255") }
        return name
    }

    static func readHost(_ path: String, name: [UInt8], depth: Int) throws -> HostItem {
        var st = stat()
        guard lstat(path, &st) == 0 else {
            if errno == ENOENT || errno == ENOTDIR { throw FileAccessError.hostMissing(path: path) }
            throw FileError.stat(path: path, errno: errno)
        }
        let kind: HostItem.Kind
        switch st.st_mode & S_IFMT {
        case S_IFREG:
            let file = try RawFile(path: path, mode: .readOnlyNoFollow)
            kind = .file(size: UInt64(st.st_size), data: try file.dataRanges())
        case S_IFDIR:
            guard depth < maximumDepth else { throw FileAccessError.tooDeep(path: path, limit: maximumDepth) }
            kind = .directory(try listHost(path).map { try readHost(path + "/" + $0, name: Array($0.utf8), depth: depth + 1) })
        case S_IFLNK:
            var buffer = [UInt8](repeating: 0, count: Int(PATH_MAX) + 1)
            let count = readlink(path, &buffer, buffer.count)
            guard count >= 0 else { throw FileAccessError.hostUnreadable(path: path, reason: errnoText(errno)) }
            kind = .symlink(target: Array(buffer.prefix(count)))
        case S_IFIFO: throw FileAccessError.hostUnsupported(path: path, found: "a FIFO")
        case S_IFSOCK: throw FileAccessError.hostUnsupported(path: path, found: "a socket")
        case S_IFCHR: throw FileAccessError.hostUnsupported(path: path, found: "a character device")
        case S_IFBLK: throw FileAccessError.hostUnsupported(path: path, found: "a block device")
        default: throw FileAccessError.hostUnsupported(path: path, found: "of unknown type")
        }
        return HostItem(hostPath: path, name: name, kind: kind, permissions: UInt16(st.st_mode & 0o7777),
                        access: st.st_atim, modification: st.st_mtim)
    }

    static func listHost(_ path: String) throws -> [String] {
        guard let dir = opendir(path) else { throw FileAccessError.hostUnreadable(path: path, reason: errnoText(errno)) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }
}
