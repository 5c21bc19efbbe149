import ImageCore

/// What can go wrong writing or reading back an OVA archive.
public enum OVAError: RehostError, Equatable {
    /// A tar member name does not fit the ustar name field.
    case memberNameTooLong(name: String, limit: Int)
    /// A tar header block is not what a ustar (or GNU, for large members) header must be.
    case badTarHeader(path: String, offset: UInt64, what: String)
    /// The .ovf grew past the space reserved for it at the start of the archive.
    case descriptorOverflow(path: String, reserved: Int, needed: Int)
    /// The inner disk writer did not write its member strictly sequentially, so its digest is unknown.
    case diskDigestMissing(path: String, offset: UInt64)

    public var description: String {
        switch self {
        case let .memberNameTooLong(name, limit):
            return "OVA: member name \"\(name)\" must be 1 to \(limit) bytes without NUL to fit a ustar header"
        case let .badTarHeader(path, offset, what):
            return "\(path): tar header at byte \(offset): expected \(what)"
        case let .descriptorOverflow(path, reserved, needed):
            return "\(path): the OVF descriptor needs \(needed) bytes but \(reserved) were reserved for it at byte 512"
        case let .diskDigestMissing(path, offset):
            return "\(path): the disk member at byte \(offset) has no streaming digest (its writer must write sequentially)"
        }
    }
}
