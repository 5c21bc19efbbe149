/// The hypervisor the converted guest will run on, and the drivers its disk and network use there.
public enum Target: String, Codable, Sendable, CaseIterable {
    case kvm, virtualbox, vmware, generic

    /// The module for the emulated disk controller.
    public var blockDriver: String {
        switch self {
        case .kvm: return "virtio_blk"
        // VirtualBox's default SATA controller; an IDE controller there needs ata_piix instead.
        case .virtualbox: return "ahci"
        case .vmware: return "mptspi"
        case .generic: return "ata_piix"
        }
    }

    /// Other block drivers the target may need, for messages.
    public var alternativeBlockDrivers: [String] {
        switch self {
        case .virtualbox: return ["ata_piix"]
        case .kvm, .vmware, .generic: return []
        }
    }

    public var netDriver: String {
        switch self {
        case .kvm: return "virtio_net"
        case .virtualbox, .vmware, .generic: return "e1000"
        }
    }

    /// The first partition of the boot disk as the guest kernel names it.
    public var firstPartitionDevice: String { partitionDevice(1) }

    /// Partition `number` of the boot disk as the guest kernel names it.
    public func partitionDevice(_ number: Int) -> String {
        (self == .kvm ? "/dev/vda" : "/dev/sda") + String(number)
    }
}

/// How files Rehost creates in an SELinux guest get their labels.
public enum SELinuxMode: String, Codable, Sendable, CaseIterable {
    /// From the guest's file_contexts, else from their neighbours, as Rehost writes them.
    case label
    /// Touch /.autorelabel: the guest relabels its whole filesystem at first boot (slow, but it
    /// is the policy's own answer).
    case relabel
}

public struct RepairOptions: Sendable, Equatable {
    public var target: Target
    /// The root= value, already resolved: `LABEL=/`, `UUID=...`, `/dev/vda1`.
    public var rootReference: String
    /// The type of the new root filesystem, for /etc/fstab (`ext3`).
    public var rootFilesystemType: String
    /// Repair names not to run (see `GuestRepairs.names`).
    public var skip: Set<String>
    public var serialSpeed: Int
    /// The kernel to boot, by file-name version or release; nil: the newest that boots on the target.
    public var kernel: String?
    public var selinux: SELinuxMode = .label
    /// Mount points whose filesystems were merged into the new root (`/boot`, `/var`): their
    /// fstab entries are commented out.
    public var mergedMountPoints: Set<String> = []
    /// The source's LVM2 volume groups: fstab entries on `/dev/VG/LV` or `/dev/mapper/...` name
    /// volumes the new disk does not have, and are commented out (swap LVs among them).
    public var volumeGroups: Set<String> = []
    /// fstab devices (as written: `UUID=...`, `LABEL=swap`) of the source's disks that the new disk
    /// does not have (swap, filesystems not copied): their entries are commented out.
    public var droppedDevices: Set<String> = []
    /// A swap file Rehost creates in the new root (`/swapfile`, from `--swap-file`): fstab gets a
    /// line for it.
    public var swapFile: String?
    /// `--keep-layout`: the mount points besides / that stay filesystems of their own on the new
    /// disk, each with the device fstab names it by (`UUID=...`, `LABEL=/boot`, `/dev/vda1`, as
    /// `RootReference` resolves it).
    public var keptMounts: [String: String] = [:]
    /// A swap partition Rehost creates (`UUID=...`, from `--swap-partition` or the guest's own swap
    /// with `--keep-layout`): fstab gets a line for it.
    public var swapPartition: String?
    /// The EFI System Partition of a `--firmware uefi|both` disk (`UUID=XXXX-XXXX`): fstab mounts
    /// it on /boot/efi, which is created.
    public var efiSystemPartition: String?
    /// GRUB's name for the partition holding /boot/grub (`hd0,msdos1`; `hd0,gpt2` or `hd0,gpt3`
    /// on the GPT disks of `--firmware uefi|both`), as grub.cfg's header says.
    public var grubBootPartition = "hd0,msdos1"

    /// The same partition in GRUB legacy's 0-based `(hd0,N)` form, for grub.conf: the guest's
    /// tools (grubby, new-kernel-pkg) read it, and GRUB legacy itself cannot boot a GPT disk.
    public var legacyGrubRoot: String {
        let number = grubBootPartition.reversed().prefix { $0.isNumber }.reversed()
        return "(hd0,\(max((Int(String(number)) ?? 1) - 1, 0)))"
    }

    /// Whether /boot is a filesystem of its own on the new disk: GRUB (prefix `(hd0,msdos1)/grub`)
    /// then finds the kernels at `/vmlinuz-...`, relative to that filesystem.
    public var separateBoot: Bool { keptMounts["/boot"] != nil }

    /// A path under /boot as GRUB names it on the new disk.
    public func bootLoaderPath(_ path: String) -> String {
        guard separateBoot, path.hasPrefix("/boot/") else { return path }
        return String(path.dropFirst("/boot".count))
    }

    public init(target: Target, rootReference: String, rootFilesystemType: String,
                skip: Set<String> = [], serialSpeed: Int = 115200, kernel: String? = nil) {
        self.kernel = kernel
        self.target = target
        self.rootReference = rootReference
        self.rootFilesystemType = rootFilesystemType
        self.skip = skip
        self.serialSpeed = serialSpeed
    }
}

public enum RootReferenceChoice: String, Codable, Sendable, CaseIterable {
    case auto, device, label, uuid
}

public enum RootReference {
    /// The root= value for the new root filesystem (or the fstab device of another filesystem of
    /// the new disk, on partition `partition`).
    ///
    /// `auto` prefers `LABEL=` when the filesystem has a label that survives the kernel command line
    /// and fstab unquoted, then `UUID=`. Both need an initramfs to resolve them (the kernel alone
    /// understands only device names), so a guest whose bootable kernel has no initrd gets the device
    /// name. Very old guests whose initrd cannot resolve LABEL=/UUID= at all are out of scope; they
    /// can ask for `device`.
    public static func resolve(choice: RootReferenceChoice, label: String?, uuid: String,
                               target: Target, report: GuestReport, partition: Int = 1) -> String {
        switch choice {
        case .device:
            return target.partitionDevice(partition)
        case .uuid:
            return "UUID=\(uuid)"
        case .label:
            if let label, isSafeLabel(label) { return "LABEL=\(label)" }
            return "UUID=\(uuid)"
        case .auto:
            if let kernel = report.bootableKernel, kernel.initrd == nil { return target.partitionDevice(partition) }
            if let label, isSafeLabel(label) { return "LABEL=\(label)" }
            return "UUID=\(uuid)"
        }
    }

    /// Non-empty printable ASCII without blanks or quotes: the kernel command line, GRUB and fstab
    /// would all split or mangle anything else.
    static func isSafeLabel(_ label: String) -> Bool {
        !label.isEmpty && label.utf8.count <= 16 && label.unicodeScalars.allSatisfy { scalar in
            scalar.value > 0x20 && scalar.value < 0x7F && !"\"'\\#".unicodeScalars.contains(scalar)
        }
    }
}
