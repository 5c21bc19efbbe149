import ImageCore

/// What the qcow2 writer refuses and what its inspector finds wrong.
public enum QCOW2Error: RehostError, Equatable {
    case unsupportedVersion(Int)
    case invalidClusterSize(Int)
    case zstdNeedsVersion3
    case invalidCompressionLevel(compression: String, level: Int32, allowed: ClosedRange<Int32>)
    case sizeNotWholeSectors(path: String, size: UInt64)
    /// A table would exceed the size qemu accepts (`what`, its size and qemu's limit, in bytes).
    case tableTooLarge(path: String, what: String, bytes: UInt64, limit: UInt64, hint: String)
    case badField(path: String, offset: UInt64, field: String, found: UInt64, expected: String)
    case truncated(path: String, offset: UInt64, what: String)
    case outsideFile(path: String, offset: UInt64, what: String, target: UInt64, fileSize: UInt64)
    case misaligned(path: String, offset: UInt64, what: String, target: UInt64, clusterSize: UInt64)

    public var description: String {
        switch self {
        case let .unsupportedVersion(version):
            return "qcow2: version \(version) is not supported (3 = compat 1.1, the default, or 2 = compat 0.10)"
        case let .invalidClusterSize(size):
            return "qcow2: cluster size \(size) is not a power of two from 512 bytes to 2 MiB"
        case .zstdNeedsVersion3:
            return "qcow2: zstd compression needs version 3 (compat 1.1); version 2 readers know only zlib"
        case let .invalidCompressionLevel(compression, level, allowed):
            return "qcow2: compression level \(level) is outside \(allowed.lowerBound)...\(allowed.upperBound) for \(compression)"
        case let .sizeNotWholeSectors(path, size):
            return "\(path): a qcow2 disk is a whole number of 512-byte sectors; \(size) bytes is not (qemu would drop the tail)"
        case let .tableTooLarge(path, what, bytes, limit, hint):
            return "\(path): the \(what) would take \(bytes) bytes, more than the \(limit) qemu accepts; \(hint)"
        case let .badField(path, offset, field, found, expected):
            return "\(path): qcow2 \(field) at byte \(offset) is \(found), expected \(expected)"
        case let .truncated(path, offset, what):
            return "\(path): the file ends at byte \(offset), before the \(what)"
        case let .outsideFile(path, offset, what, target, fileSize):
            return "\(path): the \(what) at byte \(offset) points to byte \(target), beyond the end of the file (\(fileSize) bytes)"
        case let .misaligned(path, offset, what, target, clusterSize):
            return "\(path): the \(what) at byte \(offset) points to byte \(target), not a multiple of the cluster size \(clusterSize)"
        }
    }
}
