import CLinux
#if canImport(Glibc)
import Glibc
#endif

/// A file descriptor with positional I/O. Reads and writes loop until done, so callers never see
/// short transfers; zeros are never written where a hole will do.
public final class RawFile {
    public let path: String
    public let fd: Int32
    /// Whether the path named a block device rather than a regular file.
    public let isBlockDevice: Bool

    /// `readOnlyNoFollow` refuses a symlink as the last component: for paths already resolved,
    /// so a link swapped in afterwards is not followed.
    public enum Mode { case readOnly, readOnlyNoFollow, readWrite, createExclusive }

    public init(path: String, mode: Mode, permissions: mode_t = 0o644) throws {
        let flags: Int32
        switch mode {
        case .readOnly: flags = O_RDONLY
        case .readOnlyNoFollow: flags = O_RDONLY | O_NOFOLLOW
        case .readWrite: flags = O_RDWR
        case .createExclusive: flags = O_RDWR | O_CREAT | O_EXCL
        }
        // Opened without blocking, then checked: an image can name a FIFO, whose open and
        // reads would otherwise wait for ever for a writer. Block devices are disks; anything else
        // that is not a regular file has no place as an image or an extent.
        let fd = open(path, flags | O_CLOEXEC | O_NONBLOCK, permissions)
        guard fd >= 0 else { throw FileError.open(path: path, errno: errno) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            let code = errno
            close(fd)
            throw FileError.stat(path: path, errno: code)
        }
        let type = st.st_mode & S_IFMT
        guard type == S_IFREG || type == S_IFBLK else {
            close(fd)
            throw FileError.notAFile(path: path, found: Self.describe(type))
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        self.path = path
        self.fd = fd
        self.isBlockDevice = type == S_IFBLK
    }

    static func describe(_ type: mode_t) -> String {
        switch type {
        case S_IFDIR: return "a directory"
        case S_IFCHR: return "a character device"
        case S_IFIFO: return "a FIFO"
        case S_IFSOCK: return "a socket"
        default: return "not a regular file"
        }
    }

    deinit { close(fd) }

    public var size: UInt64 {
        get throws {
            var st = stat()
            guard fstat(fd, &st) == 0 else { throw FileError.stat(path: path, errno: errno) }
            return UInt64(st.st_size)
        }
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws -> Int {
        // Offsets are signed 64-bit for the kernel: past that no file has bytes (EINVAL, as
        // pread says), and converting would trap.
        guard Self.fits(offset, buffer.count) else { throw FileError.read(path: path, offset: offset, errno: EINVAL) }
        var done = 0
        while done < buffer.count {
            let n = pread(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                throw FileError.read(path: path, offset: offset + UInt64(done), errno: errno)
            }
            if n == 0 { break }
            done += n
        }
        return done
    }

    /// Reads exactly `count` bytes or throws `shortRead`.
    public func read(count: Int, at offset: UInt64) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        let got = try bytes.withUnsafeMutableBytes { buffer throws in try read(into: buffer, at: offset) }
        guard got == count else { throw FileError.shortRead(path: path, offset: offset, wanted: count, got: got) }
        return bytes
    }

    public func write(_ buffer: UnsafeRawBufferPointer, at offset: UInt64) throws {
        guard Self.fits(offset, buffer.count) else { throw FileError.write(path: path, offset: offset, errno: EFBIG) }
        var done = 0
        while done < buffer.count {
            let n = pwrite(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                throw FileError.write(path: path, offset: offset + UInt64(done), errno: errno)
            }
            done += n
        }
    }

    public func write(_ bytes: [UInt8], at offset: UInt64) throws {
        try bytes.withUnsafeBytes { buffer throws in try write(buffer, at: offset) }
    }

    /// Sets the file's length; growing it leaves a hole.
    public func truncate(to size: UInt64) throws {
        guard Self.fits(size, 0) else { throw FileError.truncate(path: path, size: size, errno: EFBIG) }
        guard ftruncate(fd, off_t(size)) == 0 else { throw FileError.truncate(path: path, size: size, errno: errno) }
    }

    /// True when `offset + count` is a valid file offset (at most Int64.max).
    static func fits(_ offset: UInt64, _ count: Int) -> Bool {
        let (end, overflow) = offset.addingReportingOverflow(UInt64(count))
        return !overflow && end <= UInt64(Int64.max)
    }

    /// Starts writing `range` back to the disk without waiting for it (sync_file_range), so
    /// the disk works while the writer goes on. Best effort: an I/O error shows at `sync`.
    public func startWriteback(_ range: Range<UInt64>) {
        guard !range.isEmpty else { return }
        _ = rehost_start_writeback(fd, Int64(range.lowerBound), Int64(range.upperBound - range.lowerBound))
    }

    public func sync() throws {
        guard fsync(fd) == 0 else { throw FileError.sync(path: path, errno: errno) }
    }

    /// The data ranges of the file, from SEEK_DATA/SEEK_HOLE; the whole file if the filesystem
    /// cannot tell.
    public func dataRanges() throws -> [Range<UInt64>] {
        let end = try size
        var ranges: [Range<UInt64>] = []
        var position: off_t = 0
        while UInt64(position) < end {
            let data = lseek(fd, position, 3 /* SEEK_DATA */)
            if data < 0 {
                if errno == ENXIO { break }
                return [0..<end]
            }
            var hole = lseek(fd, data, 4 /* SEEK_HOLE */)
            if hole < 0 { hole = off_t(end) }
            ranges.append(UInt64(data)..<UInt64(hole))
            position = hole
        }
        return ranges
    }
}
