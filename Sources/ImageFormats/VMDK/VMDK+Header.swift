import ImageCore

/// The 512-byte SparseExtentHeader, encoded field by field:
/// ```
///  0 u32 magicNumber "KDMV"        44 u32 numGTEsPerGT
///  4 u32 version (1, or 3 stream)  48 u64 rgdOffset (sectors)
///  8 u32 flags                     56 u64 gdOffset (sectors, or GD_AT_END)
/// 12 u64 capacity (sectors)        64 u64 overHead (sectors before the first grain)
/// 20 u64 grainSize (sectors)       72 u8  uncleanShutdown
/// 28 u64 descriptorOffset          73 u8 '\n', 74 u8 ' ', 75 u8 '\r', 76 u8 '\n'
/// 36 u64 descriptorSize            77 u16 compressAlgorithm (0 none, 1 deflate); 79..511 zero
/// ```
public struct VMDKHeader: Equatable, Sendable {
    public static let size = 512

    /// Byte offsets of the fields (the diagram above), for encoding, decoding and error messages.
    public enum Field: Int, Sendable {
        case magic = 0, version = 4, flags = 8, capacity = 12, grainSize = 20, descriptorOffset = 28
        case descriptorSize = 36, numGTEsPerGT = 44, rgdOffset = 48, gdOffset = 56, overHead = 64
        case uncleanShutdown = 72, newlineDetection = 73, compressAlgorithm = 77
    }

    public var version: UInt32
    public var flags: VMDK.Flags
    public var capacity: UInt64
    public var grainSize: UInt64 = VMDK.grainSectors
    public var descriptorOffset: UInt64 = VMDK.descriptorOffset
    public var descriptorSize: UInt64 = VMDK.descriptorSectors
    public var numGTEsPerGT: UInt32 = UInt32(VMDK.entriesPerGrainTable)
    public var rgdOffset: UInt64 = 0
    public var gdOffset: UInt64
    public var overHead: UInt64
    public var uncleanShutdown: UInt8 = 0
    public var compressAlgorithm: UInt16

    public init(version: UInt32, flags: VMDK.Flags, capacity: UInt64, rgdOffset: UInt64 = 0, gdOffset: UInt64,
                overHead: UInt64, compressAlgorithm: UInt16) {
        self.version = version
        self.flags = flags
        self.capacity = capacity
        self.rgdOffset = rgdOffset
        self.gdOffset = gdOffset
        self.overHead = overHead
        self.compressAlgorithm = compressAlgorithm
    }

    public func encoded() -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: Self.size)
        bytes.storeLE(VMDK.magic, at: Field.magic.rawValue)
        bytes.storeLE(version, at: Field.version.rawValue)
        bytes.storeLE(flags.rawValue, at: Field.flags.rawValue)
        bytes.storeLE(capacity, at: Field.capacity.rawValue)
        bytes.storeLE(grainSize, at: Field.grainSize.rawValue)
        bytes.storeLE(descriptorOffset, at: Field.descriptorOffset.rawValue)
        bytes.storeLE(descriptorSize, at: Field.descriptorSize.rawValue)
        bytes.storeLE(numGTEsPerGT, at: Field.numGTEsPerGT.rawValue)
        bytes.storeLE(rgdOffset, at: Field.rgdOffset.rawValue)
        bytes.storeLE(gdOffset, at: Field.gdOffset.rawValue)
        bytes.storeLE(overHead, at: Field.overHead.rawValue)
        bytes[Field.uncleanShutdown.rawValue] = uncleanShutdown
        bytes[73] = 0x0A
        bytes[74] = 0x20
        bytes[75] = 0x0D
        bytes[76] = 0x0A
        bytes.storeLE(compressAlgorithm, at: Field.compressAlgorithm.rawValue)
        return bytes
    }

    /// The fields of the 512 bytes at the start of `bytes`, unchecked (the magic is not even
    /// looked at): for readers that check foreign files with their own rules and messages.
    public init(fields bytes: [UInt8]) {
        precondition(bytes.count >= Self.size, "a sparse extent header is 512 bytes")
        version = bytes.loadLE(UInt32.self, at: Field.version.rawValue)
        flags = VMDK.Flags(rawValue: bytes.loadLE(UInt32.self, at: Field.flags.rawValue))
        capacity = bytes.loadLE(UInt64.self, at: Field.capacity.rawValue)
        grainSize = bytes.loadLE(UInt64.self, at: Field.grainSize.rawValue)
        descriptorOffset = bytes.loadLE(UInt64.self, at: Field.descriptorOffset.rawValue)
        descriptorSize = bytes.loadLE(UInt64.self, at: Field.descriptorSize.rawValue)
        numGTEsPerGT = bytes.loadLE(UInt32.self, at: Field.numGTEsPerGT.rawValue)
        rgdOffset = bytes.loadLE(UInt64.self, at: Field.rgdOffset.rawValue)
        gdOffset = bytes.loadLE(UInt64.self, at: Field.gdOffset.rawValue)
        overHead = bytes.loadLE(UInt64.self, at: Field.overHead.rawValue)
        uncleanShutdown = bytes[Field.uncleanShutdown.rawValue]
        compressAlgorithm = bytes.loadLE(UInt16.self, at: Field.compressAlgorithm.rawValue)
    }

    /// Decodes a header from `bytes` (at least 512), checking what every valid sparse extent has.
    /// `path` and `offset` only name the place in errors.
    public init(decoding bytes: [UInt8], path: String, offset: UInt64 = 0) throws {
        guard bytes.count >= Self.size else {
            throw VMDKError.truncated(path: path, offset: offset, wanted: Self.size, available: bytes.count)
        }
        let magic = bytes.loadLE(UInt32.self, at: Field.magic.rawValue)
        guard magic == VMDK.magic else { throw VMDKError.badMagic(path: path, offset: offset, found: magic) }
        self.init(fields: bytes)

        func check(_ ok: Bool, _ field: String, _ found: UInt64, _ expected: String) throws {
            guard ok else { throw VMDKError.badField(path: path, offset: offset, field: field, found: found, expected: expected) }
        }
        try check((1...3).contains(version), "version", UInt64(version), "1, 2 or 3")
        // A power of two above 8 sectors, as the specification requires.
        try check(grainSize > 8 && grainSize & (grainSize - 1) == 0, "grainSize", grainSize, "a power of two > 8")
        try check(numGTEsPerGT == 512, "numGTEsPerGT", UInt64(numGTEsPerGT), "512")
        if flags.contains(.validNewlineDetection) {
            try check(bytes[73] == 0x0A && bytes[74] == 0x20 && bytes[75] == 0x0D && bytes[76] == 0x0A,
                      "newline detection bytes 73-76", UInt64(bytes.loadLE(UInt32.self, at: 73)), "0x0a0d200a")
        }
        try check(compressAlgorithm <= 1, "compressAlgorithm", UInt64(compressAlgorithm), "0 or 1")
        try check(bytes[79...].allSatisfy { $0 == 0 }, "padding after byte 79", 1, "zero")
    }
}
