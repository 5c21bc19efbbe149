import CLinux
#if canImport(Glibc)
import Glibc
#endif

/// A sparse file that lives in memory only (memfd_create), for a library that wants a file
/// descriptor when the bytes come from elsewhere: libblkid probing a disk image read through
/// its format. Nothing is written to any filesystem; pages exist only where bytes were written,
/// so a file of a disk's full size holding its first and last MiB costs two MiB.
public final class MemoryFile {
    public let fd: Int32
    /// What messages call it (the disk it stands for).
    public let name: String
    public let size: UInt64

    public init(name: String, size: UInt64) throws {
        let fd = rehost_memfd_create("rehost-probe")
        guard fd >= 0 else { throw FileError.open(path: "memfd for \(name)", errno: errno) }
        guard ftruncate(fd, off_t(size)) == 0 else {
            let code = errno
            close(fd)
            throw FileError.truncate(path: "memfd for \(name)", size: size, errno: code)
        }
        self.fd = fd
        self.name = name
        self.size = size
    }

    deinit { close(fd) }

    public func write(_ buffer: UnsafeRawBufferPointer, at offset: UInt64) throws {
        var done = 0
        while done < buffer.count {
            let n = pwrite(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                throw FileError.write(path: "memfd for \(name)", offset: offset + UInt64(done), errno: errno)
            }
            done += n
        }
    }
}
