import ImageCore
#if canImport(Glibc)
import Glibc
#endif

/// A temporary file that is unlinked when released, and by `TemporaryFiles` on an interrupt.
public final class ScratchFile {
    public let path: String
    public let file: RawFile

    /// Creates `.rehost-PID-RANDOM-HINT.raw` in `directory` (default $TMPDIR or /tmp).
    public init(directory: String?, hint: String) throws {
        let dir = directory ?? defaultScratchDirectory()
        let base = hint.split(separator: "/").last.map(String.init) ?? "input"
        var attempt = 0
        while true {
            let candidate = "\(dir)/.rehost-\(getpid())-\(UInt32.random(in: 0...UInt32.max))-\(base).raw"
            do {
                TemporaryFiles.shared.register(candidate)
                file = try RawFile(path: candidate, mode: .createExclusive, permissions: 0o600)
                path = candidate
                return
            } catch FileError.open(_, let code) where code == EEXIST && attempt < 8 {
                TemporaryFiles.shared.unregister(candidate)
                attempt += 1
            } catch {
                TemporaryFiles.shared.unregister(candidate)
                throw error
            }
        }
    }

    deinit {
        unlink(path)
        TemporaryFiles.shared.unregister(path)
    }
}

/// $TMPDIR when set, else /tmp.
private func defaultScratchDirectory() -> String {
    if let value = getenv("TMPDIR") {
        let text = String(cString: value)
        if !text.isEmpty { return text.hasSuffix("/") && text.count > 1 ? String(text.dropLast()) : text }
    }
    return "/tmp"
}
