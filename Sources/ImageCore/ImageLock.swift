#if canImport(Glibc)
import Glibc
#endif

public enum ImageLockError: RehostError, Equatable {
    case inUse(path: String)

    public var description: String {
        switch self {
        case let .inUse(path):
            return "\(path): in use by another process (a running qemu, or another rehost copy-in, clean or customize holds a lock on it); nothing was written"
        }
    }
}

/// An exclusive lock on a whole image file for as long as it is written in place, of the kind
/// qemu takes (open file description locks): a qemu that has the image open holds locks on some of
/// its bytes, so the lock is refused and the image left alone; while it is held, qemu cannot open
/// the image, nor another `copy-in` write it. Released when this object goes away.
public final class ImageLock {
    /// F_OFD_SETLK: glibc declares it only under _GNU_SOURCE, which Swift's Glibc is not built with.
    static let setOpenFileDescriptionLock: Int32 = 37
    private let fd: Int32

    /// `create`: make the file if it is not there (a lock file rather than an image).
    public init(path: String, create: Bool = false) throws {
        fd = create ? open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644) : open(path, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { throw FileError.open(path: path, errno: errno) }
        var lock = flock()
        lock.l_type = Int16(F_WRLCK)
        lock.l_whence = Int16(SEEK_SET)
        lock.l_start = 0
        lock.l_len = 0
        guard fcntl(fd, Self.setOpenFileDescriptionLock, &lock) == 0 else {
            let code = errno
            close(fd)
            if code == EAGAIN || code == EACCES { throw ImageLockError.inUse(path: path) }
            throw FileError.open(path: path, errno: code)
        }
    }

    deinit { close(fd) }
}
