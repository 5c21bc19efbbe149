import ImageCore

public enum BlkidError: RehostError, Equatable {
    case open(path: String, errno: Int32)
    case probeCreation(path: String)
    case setDevice(path: String, offset: UInt64)
    case probeFailed(path: String, offset: UInt64)
    case ambivalent(path: String, offset: UInt64)

    public var description: String {
        switch self {
        case let .open(path, e): return "\(path): cannot open for probing: \(errnoText(e))"
        case let .probeCreation(path): return "\(path): libblkid could not create a probe"
        case let .setDevice(path, offset): return "\(path): libblkid cannot probe at byte \(offset)"
        case let .probeFailed(path, offset): return "\(path): libblkid failed while probing at byte \(offset)"
        case let .ambivalent(path, offset):
            return "\(path): more than one filesystem signature at byte \(offset); expected exactly one"
        }
    }
}
