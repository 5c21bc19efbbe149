import DiskLayout
import FilesystemBuilder
import GuestFixups
import ImageFormats
import Volumes

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
    /// Further disks given for the guest's LVM2 PVs.
    public var moreDisks: [String] = []
    /// Where the root filesystem is when the disk has several: "partition 1", "VolGroup00/LogVol00".
    public var rootVolume: String?
    /// The LVM2 volume groups found on the input's partitions.
    public var volumeGroups: [VolumeGroupReport] = []
    /// The other ext filesystems the root's fstab mounts, found among the partitions and LVs:
    /// `convert` merges each into the new root at its mount point.
    public var mounts: [MountReport] = []
    /// What the assembly of the guest's filesystems found worth saying (an fstab entry on a
    /// device that is not there, an LV that cannot be read).
    public var notes: [String] = []
}

public struct VolumeGroupReport: Codable, Sendable {
    public var name: String
    public var uuid: String
    public var seqno: UInt64
    public var extentSize: UInt64
    public var physicalVolumes: [PhysicalVolumeReport]
    public var logicalVolumes: [LogicalVolumeReport]

    init(_ assembled: LVM2.AssembledGroup) {
        let g = assembled.group
        name = g.name
        uuid = g.id
        seqno = g.seqno
        extentSize = g.extentBytes
        physicalVolumes = g.physicalVolumes.map {
            PhysicalVolumeReport(name: $0.name, uuid: $0.id, device: $0.device, found: assembled.disks[$0.name]?.name,
                                 dataOffset: $0.peStart * LVM2.sectorSize, extents: $0.peCount)
        }
        logicalVolumes = g.logicalVolumes.map { lv in
            LogicalVolumeReport(
                name: lv.name, uuid: lv.id, sizeBytes: lv.extentCount * g.extentBytes, visible: lv.isVisible,
                segments: lv.segments.map { s in
                    SegmentReport(type: s.type, startExtent: s.startExtent, extents: s.extentCount,
                                  stripeSize: s.stripeSize * LVM2.sectorSize,
                                  stripes: s.stripes.map { "\($0.physicalVolume):\($0.startExtent)" })
                },
                unsupported: lv.unsupported)
        }
    }
}

public struct PhysicalVolumeReport: Codable, Sendable {
    public var name: String
    public var uuid: String
    /// The device the metadata last saw it on.
    public var device: String?
    /// Where it was found among the inputs; nil when missing.
    public var found: String?
    public var dataOffset: UInt64
    public var extents: UInt64
}

public struct LogicalVolumeReport: Codable, Sendable {
    public var name: String
    public var uuid: String
    public var sizeBytes: UInt64
    public var visible: Bool
    public var segments: [SegmentReport]
    /// The segment type that makes it unreadable (mirror, raid1, thin, snapshot...).
    public var unsupported: String?
}

public struct SegmentReport: Codable, Sendable {
    /// "linear" or "striped" (or the unsupported type).
    public var type: String
    public var startExtent: UInt64
    public var extents: UInt64
    public var stripeSize: UInt64
    /// "pv0:0" per stripe: the PV and its first extent.
    public var stripes: [String]
}

public struct MountReport: Codable, Sendable {
    public var mountPoint: String
    /// As fstab names it.
    public var device: String
    /// "partition 1", "VolGroup00/LogVol02".
    public var volume: String
    public var type: String
    public var label: String
    public var uuid: String
    public var sizeBytes: UInt64
    public var usedBytes: UInt64
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
    /// The disk `convert` would build with default options: the MBR plan, and for an EFI-stub
    /// kernel (`--firmware auto` chooses `both`) the GPT disk made from it.
    public var plannedDisk: DiskPlan?
    public var plannedFirmware: Firmware?
    public var plannedFirmwareReason: String?
    public var plannedGPT: PlannedGPTDisk?
    public var plannedDiskProblem: String?
    /// The repairs `convert` would make, as computed on an overlay (nothing is written).
    public var plannedChanges: [GuestChange]
    public var plannedWarnings: [String]
    public var plannedChangesProblem: String?
}

/// The GPT disk `inspect` expects `convert` to make: its size, the ESP's, and the root's partition.
public struct PlannedGPTDisk: Codable, Sendable {
    public var diskSize: UInt64
    public var espSize: UInt64
    public var biosBootPartition: Bool
    public var rootPartition: Int
    public var rootSize: UInt64
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
    /// What `--clean` and the customize options changed, after the repairs (nil when not asked).
    public var guestEdits: [GuestEdit]?
    /// The password `--root-password random` chose.
    public var randomRootPassword: String?
    public var bootloader: BootloaderReport?
    public var warnings: [String]
    public var seconds: Double
    /// Every partition of the new disk, in disk order.
    public var partitions: [PartitionReport] = []
    /// What the guest is, as inspected (for an upload's image properties).
    public var operatingSystem: OperatingSystem?
    /// The kernel the disk boots, as inspected (an AMI's ENA and SR-IOV flags follow its drivers).
    public var bootKernel: Kernel?
    /// `--firmware`: bios (MBR), uefi or both (GPT).
    public var firmware: Firmware?
    /// Why `--firmware auto` chose `firmware`.
    public var firmwareReason: String?
    /// The whole disk, and its GPT disk GUID, for a GPT disk (`disk` is then the plan of its data
    /// partitions, before the boot partitions were put in front).
    public var diskSize: UInt64?
    public var diskGUID: String?
}

/// One partition of the converted disk.
public struct PartitionReport: Codable, Sendable {
    public var number: Int
    /// The mount point of its filesystem, or "swap".
    public var mountPoint: String
    /// Byte offset on the disk, and length.
    public var start: UInt64
    public var size: UInt64
    /// The MBR partition type, "0x83" or "0x82".
    public var type: String
    public var bootable: Bool
    /// "ext3", or "swap".
    public var filesystem: String
    /// The filesystem's (or swap area's) UUID and label.
    public var uuid: String
    public var label: String
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
    /// GRUB x86_64-efi's size, on a GPT disk.
    public var efiImageBytes: Int?
}
