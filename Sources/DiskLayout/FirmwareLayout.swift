import ImageCore

/// The firmware a converted disk boots under (`convert --firmware`): `bios` is an MBR disk with
/// GRUB i386-pc in the MBR and the gap after it; `uefi` a GPT disk with an EFI System Partition
/// holding GRUB x86_64-efi; `both` the `uefi` disk plus a BIOS boot partition holding core.img
/// and GRUB's boot.img in the protective MBR.
public enum Firmware: String, Sendable, Codable, CaseIterable {
    case bios, uefi, both

    public var partitionTable: PartitionTableKind { self == .bios ? .mbr : .gpt }
    public var bootsUEFI: Bool { self != .bios }
    public var bootsBIOS: Bool { self != .uefi }
}

/// The GPT disk of `--firmware uefi|both`, made from the MBR plan (`DiskPlan`) by putting the
/// boot partitions first and keeping every planned partition's size and order:
///
/// ```
///   LBA 0..33       protective MBR (boot.img for `both`), primary GPT
///   1 MiB           `both` only: BIOS boot partition, 1 MiB, EF02, core.img
///   next MiB        EFI System Partition, EF00, FAT32 (`espSize`)
///   ...             the plan's partitions in order (8300, swap 8200)
///   last MiB        free, holding the backup GPT at its end
/// ```
/// The planned partition numbered n is GPT partition n + `numberShift` (1 with `uefi`, 2 with
/// `both`), which is what `/dev/vdaN` and `(hd0,gptN)` must say.
public struct GPTDiskLayout: Sendable {
    public static let biosBootSize: UInt64 = ByteCount.MiB
    /// The ESP size Microsoft and most installers use (FAT32 with 4 KiB sectors needs 260 MiB).
    public static let defaultESPSize: UInt64 = 260 * ByteCount.MiB
    /// For small disks: FAT32 needs 65525 clusters; 64 MiB of 512-byte clusters gives 130000.
    public static let smallESPSize: UInt64 = 64 * ByteCount.MiB
    /// Disks below this get `smallESPSize` (a test guest, a tiny appliance).
    public static let smallDiskLimit: UInt64 = 2 * ByteCount.GiB

    public let firmware: Firmware
    public let gpt: GPT
    public let numberShift: Int
    public let espIndex: Int
    public let biosBootIndex: Int?

    public var esp: GPTPartition { gpt.partitions[espIndex] }
    public var biosBoot: GPTPartition? { biosBootIndex.map { gpt.partitions[$0] } }
    public var diskSize: UInt64 { gpt.diskSectors * UInt64(GPT.sectorSize) }

    /// The ESP size for a disk whose data partitions (the MBR plan) take `planDiskSize`:
    /// 260 MiB, or 64 MiB below 2 GiB.
    public static func espSize(planDiskSize: UInt64) -> UInt64 {
        planDiskSize < smallDiskLimit ? smallESPSize : defaultESPSize
    }

    /// What the GPT disk adds to the MBR plan's size: the BIOS boot partition, the ESP and the
    /// last MiB for the backup table.
    public static func extraBytes(firmware: Firmware, espSize: UInt64) -> UInt64 {
        (firmware == .both ? biosBootSize : 0) + roundUp(espSize, to: DiskPlan.alignment) + DiskPlan.alignment
    }

    /// How many boot partitions come before the plan's: the planned partition n is GPT
    /// partition n + this (0 for an MBR disk).
    public static func numberShift(firmware: Firmware) -> Int {
        switch firmware {
        case .bios: 0
        case .uefi: 1
        case .both: 2
        }
    }

    /// The plan's partition numbered `number` on the GPT disk.
    public func partition(planNumber number: Int) -> GPTPartition { gpt.partitions[number - 1 + numberShift] }
    public func number(planNumber number: Int) -> Int { number + numberShift }

    public static func make(plan: DiskPlan, firmware: Firmware, espSize: UInt64,
                            makeGUID: () -> [UInt8]) throws -> GPTDiskLayout {
        precondition(firmware != .bios, "a BIOS disk is an MBR plan")
        var requests: [GPT.Request] = []
        if firmware == .both {
            requests.append(GPT.Request(type: GPT.PartitionType.biosBoot, name: "BIOS boot partition", size: biosBootSize))
        }
        requests.append(GPT.Request(type: GPT.PartitionType.efiSystem, name: "EFI System Partition", size: espSize))
        for partition in plan.partitions {
            let type = partition.isSwap ? GPT.PartitionType.linuxSwap : GPT.PartitionType.linuxFilesystem
            let name = partition.isSwap ? "Linux swap" : "Linux \(partition.use)"
            requests.append(GPT.Request(type: type, name: String(name.prefix(GPT.nameUnits)), size: partition.size))
        }
        let data = requests.reduce(UInt64(0)) { saturatingAdd($0, roundUp($1.size ?? 0, to: DiskPlan.alignment)) }
        let diskSize = saturatingAdd(data, 2 * DiskPlan.alignment)
        let gpt = try GPT.make(diskSize: diskSize, requests: requests, makeGUID: makeGUID)
        let shift = numberShift(firmware: firmware)
        return GPTDiskLayout(firmware: firmware, gpt: gpt, numberShift: shift, espIndex: shift - 1,
                             biosBootIndex: firmware == .both ? 0 : nil)
    }

    /// sgdisk's short code of a partition type (EF00, EF02, 8300, 8200).
    public static func shortCode(_ type: [UInt8]) -> String {
        switch type {
        case GPT.PartitionType.efiSystem: return "EF00"
        case GPT.PartitionType.biosBoot: return "EF02"
        case GPT.PartitionType.linuxFilesystem: return "8300"
        case GPT.PartitionType.linuxSwap: return "8200"
        default: return UUIDBytes.format(type)
        }
    }
}
