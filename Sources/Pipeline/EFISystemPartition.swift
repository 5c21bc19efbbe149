import DiskLayout
import FAT
import Foundation
import ImageCore

/// The EFI System Partition of a `--firmware uefi|both` disk: FAT32, written by `FAT32Writer`
/// straight into the disk file (no mkfs, no loop mount), holding GRUB x86_64-efi twice:
///
/// ```
///   /EFI/BOOT/BOOTX64.EFI     the removable-media path: firmware without a boot entry for the
///                             disk (a new VM, OVMF with fresh variables) starts this
///   /EFI/rehost/grubx64.efi   the vendor path, for boot entries the guest may add later
/// ```
/// The image's embedded configuration finds /boot/grub by the filesystem UUID, so nothing else
/// lives here. The guest mounts it on /boot/efi (fstab: `UUID=XXXX-XXXX`, the volume ID).
enum EFISystemPartition {
    static let mountPoint = "/boot/efi"
    static let label = "EFI"

    static func make(size: UInt64, volumeID: UInt32, efiImage: [UInt8]) throws -> FAT32Writer {
        var writer = try FAT32Writer(size: size, label: label, volumeID: volumeID,
                                     date: Date(timeIntervalSince1970: TimeInterval(Reproducibility.now())))
        try writer.addFile(GrubEFIImage.removablePath, bytes: efiImage)
        try writer.addFile(GrubEFIImage.vendorPath, bytes: efiImage)
        return writer
    }
}
