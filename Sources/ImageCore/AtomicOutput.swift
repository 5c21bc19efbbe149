#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// An output that appears at its final path only when complete: written under a temporary name
/// in the same directory, fsynced, then renamed. If the process dies or is interrupted, the
/// temporary file is removed and nothing is left at the final path.
public final class AtomicOutput {
    public let finalPath: String
    public let temporaryPath: String
    public let file: RawFile
    private var committed = false

    public init(finalPath: String) throws {
        self.finalPath = finalPath
        let (dir, name) = splitPath(finalPath)
        self.temporaryPath = "\(dir)/.\(name).rehost-\(getpid()).partial"
        unlink(temporaryPath)
        // Registered before it exists, so a signal at any moment after creation removes it.
        TemporaryFiles.shared.register(temporaryPath)
        do {
            self.file = try RawFile(path: temporaryPath, mode: .createExclusive)
        } catch {
            TemporaryFiles.shared.unregister(temporaryPath)
            throw error
        }
    }

    /// fsync, rename into place, and fsync the directory so the rename is durable.
    public func commit() throws {
        try file.sync()
        guard rename(temporaryPath, finalPath) == 0 else {
            throw FileError.rename(from: temporaryPath, to: finalPath, errno: errno)
        }
        committed = true
        TemporaryFiles.shared.unregister(temporaryPath)
        let dirfd = open(splitPath(finalPath).0, O_RDONLY | O_DIRECTORY)
        if dirfd >= 0 { fsync(dirfd); close(dirfd) }
    }

    deinit {
        if !committed {
            unlink(temporaryPath)
            TemporaryFiles.shared.unregister(temporaryPath)
        }
    }
}

func splitPath(_ path: String) -> (String, String) {
    guard let slash = path.lastIndex(of: "/") else { return (".", path) }
    let dir = String(path[..<slash])
    return (dir.isEmpty ? "/" : dir, String(path[path.index(after: slash)...]))
}

/// Paths to unlink if the process is interrupted by a signal before they are committed.
public final class TemporaryFiles: Sendable {
    public static let shared = TemporaryFiles()
    private let paths = Mutex<[String]>([])

    private init() {}

    public func register(_ path: String) {
        paths.withLock { $0.append(path) }
    }

    public func unregister(_ path: String) {
        paths.withLock { $0.removeAll { $0 == path } }
    }

    public func removeAll() {
        paths.withLock { list in
            for path in list { unlink(path) }
            list.removeAll()
        }
    }

    /// A signal can arrive while this very thread holds the lock (registering a path): waiting
    /// for it would deadlock, so the handler only tries it. The window is a few instructions long.
    func removeAllFromSignalHandler() {
        _ = paths.withLockIfAvailable { list in
            for path in list { unlink(path) }
        }
    }

    /// On SIGINT, SIGTERM and SIGHUP: remove partial outputs, then die of the same signal.
    public static func installSignalCleanup() {
        // A parent may have started us with these signals blocked (threads of a thread pool
        // block them, and children inherit the mask): unblock them, or an interrupt would wait
        // until the output was complete.
        var unblock = sigset_t()
        sigemptyset(&unblock)
        for sig in [SIGINT, SIGTERM, SIGHUP] { sigaddset(&unblock, sig) }
        pthread_sigmask(SIG_UNBLOCK, &unblock, nil)
        // Past a file-size limit (`ulimit -f`), fail the write with EFBIG and clean up, instead
        // of being killed with the partial output still there.
        signal(SIGXFSZ, SIG_IGN)
        for sig in [SIGINT, SIGTERM, SIGHUP] {
            signal(sig) { received in
                TemporaryFiles.shared.removeAllFromSignalHandler()
                signal(received, SIG_DFL)
                raise(received)
            }
        }
    }
}
