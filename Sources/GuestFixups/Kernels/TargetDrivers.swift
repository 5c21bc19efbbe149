import KernelModules

/// A way the target may attach the boot disk, and the drivers a guest kernel needs for it.
public struct DiskBus: Sendable, Equatable {
    /// "virtio-blk", "IDE", "SATA (AHCI)"...
    public var name: String
    /// The drivers to load, without their dependencies (which come from the kernel's own
    /// modules.dep or .modinfo): the PCI transport first, then the disk driver.
    public var drivers: [String]
    /// Other sets of drivers that serve the same controller on older kernels (the old IDE
    /// layer, usually built in): any one set complete is as good as `drivers`.
    public var alternatives: [[String]]

    init(_ name: String, _ drivers: [String], alternatives: [[String]] = []) {
        self.name = name
        self.drivers = drivers
        self.alternatives = alternatives
    }

    static let virtioBlock = DiskBus("virtio-blk", ["virtio_pci", "virtio_blk"])
    static let virtioSCSI = DiskBus("virtio-scsi", ["virtio_pci", "virtio_scsi", "sd_mod"])
    // RHEL 5 drives the PIIX IDE controller with the built-in IDE layer (piix + ide-disk).
    static let ide = DiskBus("IDE", ["ata_piix", "sd_mod"], alternatives: [["piix", "ide_disk"]])
    static let ahci = DiskBus("SATA (AHCI)", ["ahci", "sd_mod"])
    static let lsiLogic = DiskBus("LSI Logic SCSI", ["mptspi", "sd_mod"])
    static let lsiSAS = DiskBus("LSI Logic SAS", ["mptsas", "sd_mod"])
    static let pvscsi = DiskBus("VMware PVSCSI", ["vmw_pvscsi", "sd_mod"])
}

extension Target {
    /// Every bus the target may attach the converted disk on, the one Rehost's outputs declare
    /// first. Users attach converted disks on IDE or SATA too, so those are always included.
    public var diskBuses: [DiskBus] {
        switch self {
        case .kvm: return [.virtioBlock, .virtioSCSI, .ide, .ahci]
        case .virtualbox: return [.ahci, .ide]
        case .vmware: return [.lsiLogic, .lsiSAS, .pvscsi, .ide]
        case .generic: return [.ide, .ahci]
        }
    }
}

/// The kernel configuration symbol of each driver Rehost may need, for guests too old to have
/// modules.builtin (before 2.6.33): `=y` there means built in.
enum DriverConfigSymbols {
    static let byModule: [String: String] = [
        "virtio": "CONFIG_VIRTIO", "virtio_ring": "CONFIG_VIRTIO", "virtio_pci": "CONFIG_VIRTIO_PCI",
        "virtio_blk": "CONFIG_VIRTIO_BLK", "virtio_scsi": "CONFIG_SCSI_VIRTIO", "virtio_net": "CONFIG_VIRTIO_NET",
        "scsi_mod": "CONFIG_SCSI", "sd_mod": "CONFIG_BLK_DEV_SD", "libata": "CONFIG_ATA",
        "ata_piix": "CONFIG_ATA_PIIX", "ahci": "CONFIG_SATA_AHCI", "libahci": "CONFIG_SATA_AHCI",
        "piix": "CONFIG_BLK_DEV_PIIX", "ide_disk": "CONFIG_BLK_DEV_IDEDISK",
        "mptbase": "CONFIG_FUSION_SPI", "mptscsih": "CONFIG_FUSION_SPI", "mptspi": "CONFIG_FUSION_SPI",
        "mptsas": "CONFIG_FUSION_SAS", "vmw_pvscsi": "CONFIG_VMWARE_PVSCSI",
        "ext2": "CONFIG_EXT2_FS", "ext3": "CONFIG_EXT3_FS", "ext4": "CONFIG_EXT4_FS", "jbd": "CONFIG_JBD",
        "jbd2": "CONFIG_JBD2", "mbcache": "CONFIG_FS_MBCACHE",
    ]
}
