import Foundation
import ImageCore

#if canImport(Glibc)
import Glibc
#endif

/// The directory of result records: ID.json per entry, ID.lock held while an entry runs.
public struct ResultStore: Sendable {
    public let directory: String

    public init(directory: String, create: Bool) throws {
        self.directory = directory
        if create {
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            } catch {
                throw FileError.open(path: directory, errno: (error as NSError).code == NSFileWriteNoPermissionError ? EACCES : EIO)
            }
        }
    }

    public func recordPath(_ id: String) -> String { "\(directory)/\(id).json" }
    public func lockPath(_ id: String) -> String { "\(directory)/\(id).lock" }

    /// The entry's record, or nil when there is none. A record that cannot be read is as good as
    /// none: the entry is converted again and the record replaced.
    public func record(_ id: String) -> ResultRecord? {
        guard let data = FileManager.default.contents(atPath: recordPath(id)) else { return nil }
        return try? JSONDecoder().decode(ResultRecord.self, from: data)
    }

    /// Written whole under a temporary name, fsynced and renamed: a reader sees the old record or
    /// the new one, never part of one.
    public func write(_ record: ResultRecord) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        var data = try encoder.encode(record)
        data.append(0x0a)
        let output = try AtomicOutput(finalPath: recordPath(record.id))
        try output.file.write(Array(data), at: 0)
        try output.commit()
    }

    /// Whether another worker holds the entry's lock now.
    public func isRunning(_ id: String) -> Bool {
        guard FileManager.default.fileExists(atPath: lockPath(id)) else { return false }
        do {
            _ = try EntryLock(path: lockPath(id))
            return false
        } catch {
            return true
        }
    }
}

/// One worker's claim on an entry: the lock `copy-in` takes on an image (an open-file-description
/// lock), on ID.lock. Released when the object goes away or the process dies, so a killed worker
/// never leaves a claim behind; on NFS v4 the kernel takes it on the server, for every host.
public final class EntryLock {
    private let lock: ImageLock

    public init(path: String) throws {
        do {
            lock = try ImageLock(path: path, create: true)
        } catch ImageLockError.inUse {
            throw BatchError.busy(path: path)
        }
    }
}

public enum BatchError: RehostError {
    case busy(path: String)
    case noSuchIndex(index: Int, count: Int, manifest: String)

    public var description: String {
        switch self {
        case let .busy(path): return "\(path): another worker is converting this entry now"
        case let .noSuchIndex(index, count, manifest):
            return "index \(index): \(manifest) has \(count) entr\(count == 1 ? "y" : "ies") (0-\(count - 1))"
        }
    }
}
