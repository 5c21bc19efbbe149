import DiskLayout
import Ext2
import FilesystemBuilder
import GuestFixups
import ImageFormats
import KernelPackages

/// Everything `rehost convert` was asked to do.
public struct ConvertOptions: Sendable {
    public var input: String
    /// Further disks of the same guest, read for the LVM2 PVs they hold (a volume group spread over
    /// several disks) and the filesystems its fstab mounts from them.
    public var moreDisks: [String] = []
    /// Every disk to write; the bootable disk is built once and streamed to all of them.
    public var outputs: [OutputRequest]
    public var writerOptions = WriterOptions()
    /// The digests the report gives (`--digest`).
    public var digests = DigestChoice.default
    /// The whole disk's size; nil picks one from the used space.
    public var diskSize: UInt64?
    public var format = FormatOptions()
    public var target: Target = .kvm
    public var rootReference: RootReferenceChoice = .auto
    /// `--firmware`: an MBR disk for BIOS, a GPT disk with an EFI System Partition for UEFI, a
    /// GPT disk that boots both ways, or (`auto`, the default) both when the kernel allows.
    public var firmware: FirmwareChoice = .auto
    public var skip: Set<String> = []
    /// The kernel to boot (a version or release); nil picks the newest that boots on the target.
    public var kernel: String?
    public var selinux: SELinuxMode = .label
    /// Kernel packages to install into the guest (`--add-kernel`).
    public var addKernels: [String] = []
    public var dryRun = false
    /// For a partitioned input disk: which partition holds the root filesystem.
    public var partition: Int?
    public var scratchDirectory: String?
    /// Which files besides the input the image may make Rehost open (`--allow-external-files`).
    public var externalFiles = ExternalFiles.contained
    /// `--max-output-size`: the most data expanding the input may produce; nil for the default
    /// (`ExpansionLimit`).
    public var maxOutputSize: UInt64?
    /// `--swap-file`: the size of a `/swapfile` to create in the new root (and mount from fstab);
    /// nil for none.
    public var swapFileSize: UInt64?
    /// `--keep-layout`: each filesystem the guest's fstab mounts gets a partition of its own,
    /// instead of being merged into the root.
    public var keepLayout = false
    /// `--swap-partition`: the size of a swap partition to add; nil for none (but see `noSwap`).
    public var swapPartitionSize: UInt64?
    /// `--no-swap`: with `keepLayout`, do not recreate the guest's swap device as a partition.
    public var noSwap = false
    /// `--clean`: the clean operations run on the new guest after the repairs (empty: none).
    public var clean: [any CleanOperation] = []
    /// The customize options on `convert`, applied after the clean operations.
    public var customize = CustomizeOptions()
    /// `--cloud-init`: a NoCloud seed to write inside the guest after the repairs; nil for none.
    public var cloudInit: NoCloudSeed?
    /// Writers beyond the output files that take the disk in the same streaming read (an
    /// upload to EBS), made once the disk's size is known.
    public var streamConsumers: StreamConsumers?

    public init(input: String, outputs: [OutputRequest]) {
        self.input = input
        self.outputs = outputs
    }
}

/// `convert --firmware`: one of the firmwares, or `auto`, which picks `both` when the boot kernel
/// has an EFI stub (and boots on BIOS), else `bios`, and says why.
public enum FirmwareChoice: String, Sendable, Codable, CaseIterable {
    case bios, uefi, both, auto

    /// The kernel the disk will boot, which `auto` judges: the newest supplied package's (it
    /// becomes the default entry), else the guest's own.
    public static func bootKernel(supplied: [SuppliedKernel], guest: GuestReport) -> (path: String, image: KernelImage)? {
        let newest = supplied.max { KernelVersion.isOlder($0.release, than: $1.release) }
        return newest.map { (path: $0.kernel.vmlinuzPath, image: $0.kernel.image) }
            ?? guest.bootableKernel.map { (path: $0.path, image: $0.image) }
    }

    /// The firmware to build for, and for `auto` the reason. `bootKernel` is the kernel the disk
    /// will boot: a supplied package's (`--add-kernel`), else the guest's own.
    public func resolve(bootKernel: (path: String, image: KernelImage)?) -> (firmware: Firmware, reason: String?) {
        switch self {
        case .bios: return (.bios, nil)
        case .uefi: return (.uefi, nil)
        case .both: return (.both, nil)
        case .auto:
            guard let (path, image) = bootKernel else {
                return (.bios, "auto: no kernel of the guest boots outside Xen, so bios")
            }
            if image.efiStub && image.bootsOnBIOS {
                return (.both, "auto: the boot kernel \(path) has an EFI stub, so both (BIOS and UEFI)")
            }
            return (.bios, "auto: the boot kernel \(path) has no EFI stub, so bios")
        }
    }
}
