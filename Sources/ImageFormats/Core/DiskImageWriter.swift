import ImageCore

/// A streaming writer of one output format.
///
/// The pipeline reads the raw disk once and calls `write` with its data in increasing offset
/// order; ranges it never passes are zero (holes and all-zero blocks of the input), and writers
/// must never materialise them. `DiskStreamer` never passes an all-zero aligned block of
/// `DiskStreamer.zeroGranularity` bytes, so a writer whose units are at least that large knows
/// every unit it receives data for holds a non-zero byte. `finish` writes what only the end knows (tables, footers, headers
/// patched with final values). Writers stay on one thread; compression may fan out through
/// `parallelMap` inside a writer, which still writes its units in order. Memory stays bounded
/// whatever the disk size.
public protocol DiskImageWriter: AnyObject {
    var format: ImageFormat { get }
    /// The size of the virtual disk, exactly as the consumer will see it.
    var virtualSize: UInt64 { get }

    /// `data` at byte `offset` of the virtual disk. `offset` is a multiple of 512, and so is
    /// `data.count` except for the last piece of a disk whose size is not. Calls never overlap
    /// and their offsets increase.
    func write(_ data: UnsafeRawBufferPointer, at offset: UInt64) throws

    /// Completes the image. Nothing may be written afterwards.
    func finish() throws -> WriterSummary
}

/// What a writer made, for the report.
public struct WriterSummary: Sendable, Codable {
    public var format: ImageFormat
    /// "qcow2 v3, 64 KiB clusters, deflate", "VMDK streamOptimized", ...
    public var variant: String
    public var virtualSize: UInt64
    /// The size of the file the writer produced (for OVA, the whole archive).
    public var fileSize: UInt64
    /// Units (clusters, grains, blocks) holding data, and their size.
    public var allocatedUnits: UInt64
    public var unitSize: UInt64

    public init(format: ImageFormat, variant: String, virtualSize: UInt64, fileSize: UInt64,
                allocatedUnits: UInt64, unitSize: UInt64) {
        self.format = format
        self.variant = variant
        self.virtualSize = virtualSize
        self.fileSize = fileSize
        self.allocatedUnits = allocatedUnits
        self.unitSize = unitSize
    }
}

/// Errors every writer can raise.
public enum WriterError: RehostError {
    case outOfOrder(format: ImageFormat, offset: UInt64, expectedAtLeast: UInt64)
    case beyondEnd(format: ImageFormat, offset: UInt64, virtualSize: UInt64)
    case unsupported(format: ImageFormat, what: String)

    public var description: String {
        switch self {
        case let .outOfOrder(format, offset, expected):
            return "\(format.rawValue) writer: data at byte \(offset) arrived after byte \(expected) was written (writes must increase)"
        case let .beyondEnd(format, offset, size):
            return "\(format.rawValue) writer: data at byte \(offset) lies beyond the virtual size \(size)"
        case let .unsupported(format, what):
            return "\(format.rawValue): \(what)"
        }
    }
}
