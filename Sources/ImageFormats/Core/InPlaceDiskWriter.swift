import ImageCore

#if canImport(Glibc)
import Glibc
#endif

/// Writes changed parts of a virtual disk into an existing image of a sparse format, in place,
/// through the format's own tables. Used in two steps, so that nothing reaches the image before
/// everything is known to be possible: `plan` takes the units (`unitSize` bytes of the virtual
/// disk each: a qcow2 cluster, a VDI block) that change and refuses what cannot be done; `commit`
/// writes them, each unit whole, in an order that a crash cannot turn into a corrupt image.
public protocol InPlaceDiskWriter: AnyObject {
    var path: String { get }
    var unitSize: UInt64 { get }
    /// Plans the writes of these unit indexes; throws with nothing written.
    func plan(_ units: [UInt64]) throws
    /// Writes what `plan` planned; `contents` gives a unit's whole new bytes.
    func commit(contents: (UInt64) throws -> [UInt8]) throws
}

public enum InPlaceWriteError: RehostError, Equatable {
    case hostSpace(path: String, needed: UInt64, free: UInt64)
    /// An image of a format written in place, in a variant or state that is not.
    case unsupported(path: String, what: String)
    /// Tables that contradict themselves, found while planning (nothing is written).
    case corrupt(path: String, what: String)

    public var description: String {
        switch self {
        case let .corrupt(path, what):
            return "\(path): corrupt image: \(what) (the image is unchanged)"
        case let .unsupported(path, what):
            return "\(path): \(what) cannot be written in place (the image is unchanged); "
                + "export it to raw (`rehost export \(path) -o disk.raw`), copy in there, and export back"
        case let .hostSpace(path, needed, free):
            return "\(path): the image would grow by \(needed) bytes, but its filesystem has \(free) free (the image is unchanged)"
        }
    }
}

extension InPlaceDiskWriter {
    /// Refuses a growth the host filesystem holding the image cannot take (with 1 MiB to spare).
    func checkHostSpace(_ file: RawFile, growth: UInt64) throws {
        var vfs = statvfs()
        guard fstatvfs(file.fd, &vfs) == 0 else { return }
        let free = UInt64(vfs.f_bavail) * UInt64(vfs.f_frsize)
        guard free >= growth + (1 << 20) else { throw InPlaceWriteError.hostSpace(path: path, needed: growth, free: free) }
    }
}
