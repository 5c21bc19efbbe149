#if canImport(Glibc)
import Glibc
#endif

/// A read-only memory map of a whole file. Foundation's `.mappedIfSafe` copies on Linux, so we
/// map with mmap ourselves and tell the kernel we read sequentially.
public final class MappedFile {
    public let path: String
    public let count: Int
    private let base: UnsafeRawPointer?

    public init(path: String) throws {
        let file = try RawFile(path: path, mode: .readOnly)
        let size = try file.size
        self.path = path
        self.count = Int(size)
        if size == 0 {
            base = nil
            return
        }
        let p = mmap(nil, Int(size), PROT_READ, MAP_SHARED, file.fd, 0)
        guard let p, p != MAP_FAILED else { throw FileError.map(path: path, errno: errno) }
        _ = madvise(p, Int(size), MADV_SEQUENTIAL)
        base = UnsafeRawPointer(p)
    }

    deinit {
        if let base { munmap(UnsafeMutableRawPointer(mutating: base), count) }
    }

    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }

    /// Drops the pages of `range` from this process's resident set once they have been read, so
    /// streaming a disk of any size keeps the peak RSS small (the page cache keeps them).
    public func release(_ range: Range<Int>) {
        guard let base, !range.isEmpty else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = range.lowerBound / page * page
        let end = min(count, range.upperBound)
        guard end > start else { return }
        _ = madvise(UnsafeMutableRawPointer(mutating: base) + start, end - start, MADV_DONTNEED)
    }
}
