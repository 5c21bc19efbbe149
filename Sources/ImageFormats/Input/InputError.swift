import ImageCore

/// Why an input cannot be used as a root filesystem source. One line each, naming the input.
public enum InputError: RehostError, Equatable {
    case missing(path: String)
    case notAFile(path: String, found: String)
    case empty(path: String)
    case tooSmall(path: String, size: UInt64, needed: UInt64)
    case unsupportedFormat(path: String, format: ForeignFormat)
    case nested(path: String, container: String, found: String)
    case notExt(path: String, found: String, location: String?)
    case noFilesystem(path: String, location: String?)
    case noLinuxPartition(path: String, table: String, found: String)
    case noSuchPartition(path: String, number: Int, available: [Int])
    case partitionWithoutTable(path: String, number: Int)
    case truncatedDisk(path: String, partition: Int, partitionEnd: UInt64, fileSize: UInt64)
    case overlappingPartitions(path: String, first: Int, second: Int, at: UInt64)
    case truncatedFilesystem(path: String, type: String, needed: UInt64, available: UInt64, container: String)
    case corruptSuperblock(path: String, offset: UInt64, reason: String)
    case compressedDisk(path: String, tool: String)
    case notWholeSectors(path: String, size: UInt64)
    case scratchTooSmall(path: String, size: UInt64, scratch: String, reason: String)

    static let accepted = "Rehost converts ext2/ext3/ext4 root filesystems"

    public var description: String {
        switch self {
        case let .missing(path):
            return "\(path): no such file"
        case let .notAFile(path, found):
            return "\(path): is \(found); expected a regular file or a block device"
        case let .empty(path):
            return "\(path): the file is empty; expected a filesystem or disk image"
        case let .tooSmall(path, size, needed):
            return "\(path): too small to hold a filesystem superblock: \(size) bytes, need at least \(needed)"
        case let .unsupportedFormat(path, format):
            return "\(path): \(format.advice ?? "\(format.rawValue) data where a disk was expected")"
        case let .nested(path, container, found):
            return "\(path): \(found) data inside \(container); unpack the outer layer first (`gzip -dk` or `qemu-img convert -O raw`) and give Rehost the inner image"
        case let .notExt(path, found, location):
            let subject = location.map { "\($0) holds" } ?? "found"
            return "\(path): \(subject) a \(found) filesystem; \(Self.accepted)"
        case let .noFilesystem(path, location):
            let subject = location.map { "\($0) holds" } ?? "holds"
            return "\(path): \(subject) no filesystem or partition table that blkid recognises; \(Self.accepted)"
        case let .noLinuxPartition(path, table, found):
            return "\(path): the \(table) partition table has no Linux (0x83) partition holding an ext2/ext3/ext4 filesystem (partitions: \(found))"
        case let .noSuchPartition(path, number, available):
            let list = available.map(String.init).joined(separator: ", ")
            return "\(path): there is no partition \(number); the partition table has \(list.isEmpty ? "none" : list)"
        case let .partitionWithoutTable(path, number):
            return "\(path): partition \(number) was requested but the input is a bare filesystem without a partition table"
        case let .truncatedDisk(path, partition, end, size):
            return "\(path): truncated disk: partition \(partition) ends at byte \(end) but the file holds \(size) bytes"
        case let .overlappingPartitions(path, first, second, at):
            return "\(path): corrupt partition table: partitions \(first) and \(second) overlap at byte \(at); expected disjoint partitions"
        case let .truncatedFilesystem(path, type, needed, available, container):
            return "\(path): truncated: the \(type) filesystem needs \(needed) bytes but \(container) holds \(available)"
        case let .corruptSuperblock(path, offset, reason):
            return "\(path): corrupt ext2/3/4 superblock at byte \(offset): \(reason)"
        case let .compressedDisk(path, tool):
            return "\(path): a compressed file has no random access; decompress it first with `\(tool)`"
        case let .scratchTooSmall(path, size, scratch, reason):
            let directory = scratch.lastIndex(of: "/").map { String(scratch[..<$0]) } ?? "."
            return "\(path): its virtual disk of \(size) bytes does not fit in a scratch file in \(directory) (\(reason)); give --scratch-dir on a filesystem that takes files this large"
        case let .notWholeSectors(path, size):
            return "\(path): \(size) bytes is not a whole number of 512-byte sectors, so it is not a raw disk"
        }
    }
}
