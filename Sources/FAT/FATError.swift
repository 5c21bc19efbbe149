import ImageCore

/// What can go wrong while laying out a FAT32 filesystem. Each description is one line naming
/// the path or size at fault and what was expected.
public enum FATError: RehostError, Equatable {
    case sizeTooSmall(size: UInt64, minimum: UInt64)
    case sizeTooLarge(size: UInt64, maximum: UInt64)
    case invalidLabel(label: String, reason: String)
    case invalidName(path: String, reason: String)
    case notADirectory(path: String)
    case alreadyExists(path: String)
    case fileTooLarge(path: String, size: Int)
    case directoryTooLarge(path: String, entries: Int)
    case noSpace(neededClusters: UInt64, availableClusters: UInt64, clusterSize: Int)
    case noShortName(path: String)

    public var description: String {
        switch self {
        case let .sizeTooSmall(size, minimum):
            return "a FAT32 filesystem of \(ByteCount.format(size)) (\(size) bytes) is too small: FAT32 needs at "
                + "least 65525 clusters, \(ByteCount.format(minimum)) (\(minimum) bytes) with 512-byte clusters"
        case let .sizeTooLarge(size, maximum):
            return "a FAT32 filesystem of \(ByteCount.format(size)) is too large: expected at most \(ByteCount.format(maximum)) "
                + "(2^32 - 1 sectors)"
        case let .invalidLabel(label, reason):
            return "FAT volume label \"\(label)\": \(reason)"
        case let .invalidName(path, reason):
            return "FAT path \"\(path)\": \(reason)"
        case let .notADirectory(path):
            return "FAT path \"\(path)\": a file is in the way, expected a directory"
        case let .alreadyExists(path):
            return "FAT path \"\(path)\" already exists (FAT names are case-insensitive)"
        case let .fileTooLarge(path, size):
            return "FAT file \"\(path)\" is \(size) bytes: expected at most 4294967295"
        case let .directoryTooLarge(path, entries):
            return "FAT directory \"\(path)\" needs \(entries) 32-byte entries: expected at most 65536"
        case let .noSpace(needed, available, clusterSize):
            return "the FAT32 tree needs \(needed) clusters of \(clusterSize) bytes but the filesystem has \(available)"
        case let .noShortName(path):
            return "FAT path \"\(path)\": no free 8.3 alias left for it in its directory"
        }
    }
}
