import DiskLayout
import FilesystemBuilder
import GuestFixups
import ImageFormats

/// What the input is, for `inspect` and the top of every `convert` report.
public struct InputReport: Codable, Sendable {
    public var path: String
    /// "bare filesystem", "partitioned disk (dos)", "gzip-compressed bare filesystem", ...
    public var kind: String
    /// Every file the input was read from: the input, and a VMDK descriptor's extent files.
    public var files: [String]
    public var partition: Int?
    public var partitionReason: String?
    public var filesystemOffset: UInt64
    public var filesystem: FilesystemReport
}

public struct FilesystemReport: Codable, Sendable {
    public var type: String
    public var label: String
    public var uuid: String
    public var sizeBytes: UInt64
    public var usedBytes: UInt64
    public var blockSize: Int
    public var inodeSize: Int
    public var inodesUsed: UInt32
    public var inodesTotal: UInt32
    public var features: [String]
}

/// `rehost inspect`'s whole answer.
public struct InspectReport: Codable, Sendable {
    public var input: InputReport
    public var guest: GuestReport
    /// The root= value `convert` would write.
    public var rootReference: String
    public var target: String
    /// The disk `convert` would build with default options.
    public var plannedDisk: DiskPlan?
    public var plannedDiskProblem: String?
    /// The repairs `convert` would make, as computed on an overlay (nothing is written).
    public var plannedChanges: [GuestChange]
    public var plannedWarnings: [String]
    public var plannedChangesProblem: String?
}

/// `rehost convert`'s answer.
public struct ConvertReport: Codable, Sendable {
    public var input: InputReport
    public var outputs: [OutputReport]
    public var dryRun: Bool
    public var target: String
    public var rootReference: String
    public var disk: DiskPlan?
    public var newFilesystem: NewFilesystemReport?
    public var copy: TreeCopier.Statistics?
    public var changes: [GuestChange]
    public var bootloader: BootloaderReport?
    public var warnings: [String]
    public var seconds: Double
}

public struct NewFilesystemReport: Codable, Sendable {
    public var type: String
    public var label: String
    public var uuid: String
    public var sizeBytes: UInt64
    public var blockSize: Int
    public var inodeSize: Int
    public var inodes: UInt32
}

/// `rehost export`'s answer.
public struct ExportReport: Codable, Sendable {
    public var input: String
    public var inputFormat: ImageFormat
    /// "qcow2 v3, 64 KiB clusters", "VMDK streamOptimized", "raw".
    public var inputVariant: String
    /// Every file the input was read from: the input, and a VMDK descriptor's extent files.
    public var inputFiles: [String]
    public var virtualSize: UInt64
    public var outputs: [OutputReport]
    public var seconds: Double
}

public struct BootloaderReport: Codable, Sendable {
    public var kind: String
    public var coreImageBytes: Int
    public var gapBytes: UInt64
    public var kernel: String?
    public var initrd: String?
}
