import Digests
import Foundation
import ImageCore

#if canImport(Glibc)
import Glibc
#endif

/// What makes an entry's result current: the inputs as they are now, and what it was asked to do.
public enum EntryIdentity {
    /// Each input's path, size and modification time (and content digest when asked), read now.
    public static func inputs(of entry: BatchEntry, in directory: String, contentDigest: Bool) throws -> [ResultRecord.Input] {
        try entry.inputs.map { path in
            let absolute = path.hasPrefix("/") ? path : "\(directory)/\(path)"
            var info = stat()
            guard stat(absolute, &info) == 0 else { throw FileError.stat(path: absolute, errno: errno) }
            let real = realpath(absolute, nil).map { pointer -> String in
                defer { free(pointer) }
                return String(cString: pointer)
            } ?? absolute
            return ResultRecord.Input(path: path, realPath: real, size: UInt64(info.st_size),
                                      mtimeNanoseconds: Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec),
                                      sha256: contentDigest ? try Digest.ofFile(absolute) : nil)
        }
    }

    /// The idempotency key: SHA-256 over the inputs' identity, the convert arguments, the directory
    /// they run in and the Rehost version (a new version may convert differently).
    public static func key(inputs: [ResultRecord.Input], arguments: [String], directory: String, version: String) -> String {
        var text = "rehost-batch-key \(ResultRecord.schemaVersion)\nversion \(version)\ndirectory \(directory)\n"
        for input in inputs {
            text += "input \(input.realPath.utf8.count):\(input.realPath) \(input.size) \(input.mtimeNanoseconds) \(input.sha256 ?? "-")\n"
        }
        for argument in arguments { text += "argument \(argument.utf8.count):\(argument)\n" }
        return Digest.hex(Digest.bytes(.sha256, of: Array(text.utf8)))
    }

    /// A file's size and modification time now, or nil when it is gone.
    public static func fileState(_ path: String) -> (size: UInt64, mtimeNanoseconds: Int64)? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return (UInt64(info.st_size), Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec))
    }
}
