import ImageCore
import ImageFormats
#if canImport(Glibc)
import Glibc
#endif

/// One fuzz target: a name for the command line, and a function that feeds bytes to one reader.
struct FuzzTarget: Sendable {
    let name: String
    let summary: String
    /// The largest input worth generating (passed as -max_len by scripts/fuzz.sh).
    let maxLength: Int
    let run: @Sendable (UnsafeRawBufferPointer) throws -> Void
}

enum FuzzTargets {
    /// Every target, grouped by the module it reaches. A new reader adds one entry here and a
    /// seed recipe in Fuzz/make-seeds.sh.
    static let all: [FuzzTarget] = imageTargets + layoutTargets + kernelTargets + guestTargets + volumeTargets

    nonisolated(unsafe) static var selected: FuzzTarget?

    /// The libFuzzer callback: fine if the target returns or throws a `RehostError`; anything
    /// else stops the run as a finding.
    static func runSelected(_ data: UnsafeRawBufferPointer) {
        guard let target = selected else { return }
        do {
            try target.run(data)
        } catch is RehostError {
        } catch is BudgetReached {
        } catch {
            fatalError("\(target.name): an untyped error escaped: \(type(of: error)): \(error)")
        }
    }

    /// For replay: what the target did with one input, in one line.
    static func outcome(of target: FuzzTarget, _ data: UnsafeRawBufferPointer) -> String {
        do {
            try target.run(data)
            return "accepted"
        } catch let error as RehostError {
            return "refused: \(error)"
        } catch is BudgetReached {
            return "accepted (walk stopped at the budget)"
        } catch {
            return "UNTYPED ERROR \(type(of: error)): \(error)"
        }
    }
}

/// Thrown from a data-piece callback to stop a walk: a hostile header may declare a disk of
/// exabytes, and a run must stay fast. Reaching it is a fine outcome.
struct BudgetReached: Error {}

/// Walks `reader` front to back until it ends or `maxBytes`/`maxPieces` are reached, touching
/// the first and last byte of every piece (so a piece that lies about its size is caught by
/// the address sanitizer) and checking the order the protocol promises.
func walk(_ reader: any DiskImageReader, maxBytes: UInt64 = 32 << 20, maxPieces: Int = 4096) throws {
    var bytes: UInt64 = 0
    var pieces = 0
    var next: UInt64 = 0
    var sink: UInt8 = 0
    try reader.forEachDataPiece { offset, data in
        precondition(offset >= next, "\(reader.path): piece at \(offset) before the end of the previous one (\(next))")
        precondition(data.count <= DiskImageReaders.maxPieceSize, "\(reader.path): piece of \(data.count) bytes")
        precondition(offset + UInt64(data.count) <= reader.virtualSize,
                     "\(reader.path): piece [\(offset), +\(data.count)) past the virtual size \(reader.virtualSize)")
        if let first = data.first, let last = data.last { sink ^= first ^ last }
        next = offset + UInt64(data.count)
        bytes += UInt64(data.count)
        pieces += 1
        if bytes >= maxBytes || pieces >= maxPieces { throw BudgetReached() }
    }
    _ = sink
}

/// A private directory on tmpfs (/dev/shm, else $TMPDIR or /tmp) where each input is written
/// as a file, since the readers take paths. REHOST_FUZZ_SCRATCH overrides it (scripts/fuzz.sh
/// sets it and removes it after the run; libFuzzer exits without running destructors).
struct FuzzScratch: Sendable {
    static let shared = FuzzScratch()
    let directory: String

    private init() {
        let environment = ProcessInfoLite.environment
        let base = environment["REHOST_FUZZ_SCRATCH"]
            ?? (access("/dev/shm", W_OK) == 0 ? "/dev/shm" : environment["TMPDIR"] ?? "/tmp")
        directory = "\(base)/rehost-fuzz-\(getpid())"
        mkdir(directory, 0o700)
    }

    /// Replaces `name` in the directory with `data`; returns its path.
    @discardableResult
    func write(_ data: UnsafeRawBufferPointer, as name: String) -> String {
        let path = directory + "/" + name
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        precondition(fd >= 0, "cannot create \(path): errno \(errno)")
        var done = 0
        while done < data.count {
            let wrote = Glibc.write(fd, data.baseAddress! + done, data.count - done)
            precondition(wrote > 0, "cannot write \(path): errno \(errno)")
            done += wrote
        }
        close(fd)
        return path
    }

    func write(_ bytes: [UInt8], as name: String) -> String {
        bytes.withUnsafeBytes { write($0, as: name) }
    }

    /// Removes the directory and everything in it (the replay does, at the end).
    func removeAll() {
        func removeTree(_ path: String) {
            if let dir = opendir(path) {
                while let entry = readdir(dir) {
                    let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                    guard name != ".", name != ".." else { continue }
                    if entry.pointee.d_type == UInt8(DT_DIR) { removeTree(path + "/" + name) } else { unlink(path + "/" + name) }
                }
                closedir(dir)
            }
            rmdir(path)
        }
        removeTree(directory)
    }

    /// A directory inside the scratch directory, for readers that copy (OVA) or expand (gzip).
    func subdirectory(_ name: String) -> String {
        let path = directory + "/" + name
        mkdir(path, 0o700)
        return path
    }
}

/// The process environment without Foundation.
enum ProcessInfoLite {
    static var environment: [String: String] {
        var result: [String: String] = [:]
        var pointer = environ
        while let entry = pointer.pointee {
            let text = String(cString: entry)
            if let equals = text.firstIndex(of: "=") {
                result[String(text[..<equals])] = String(text[text.index(after: equals)...])
            }
            pointer += 1
        }
        return result
    }
}
