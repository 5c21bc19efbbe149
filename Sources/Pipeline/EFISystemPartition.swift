import DiskLayout
import FAT
import Foundation
import GuestFixups
import ImageCore
import Volumes

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

    /// The new ESP's volume ID: the one of the ESP the guest's fstab already mounts on /boot/efi
    /// by `UUID=XXXX-XXXX` (kept, as the new filesystems keep their UUIDs, so fstab stays as it
    /// is and converting a converted disk again changes nothing), else a new one.
    static func volumeID(for guest: any GuestFilesystem) throws -> UInt32 {
        if let bytes = try guest.readFile("/etc/fstab"),
           let device = FstabEntry.parse(String(decoding: bytes, as: UTF8.self)).first(where: { $0.mountPoint == mountPoint })?.device,
           device.hasPrefix("UUID=") {
            let text = device.dropFirst(5)
            let halves = text.split(separator: "-", omittingEmptySubsequences: false)
            if text.count == 9, halves.count == 2, halves.allSatisfy({ $0.count == 4 }),
               let high = UInt32(halves[0], radix: 16), let low = UInt32(halves[1], radix: 16) {
                return high << 16 | low
            }
        }
        return Reproducibility.uint32(for: "esp volume id")
    }

    /// How fstab names the ESP: `UUID=XXXX-XXXX`, the volume ID in hex.
    static func fstabDevice(volumeID: UInt32) -> String {
        "UUID=" + String(format: "%04X-%04X", volumeID >> 16, volumeID & 0xFFFF)
    }

    static func make(size: UInt64, volumeID: UInt32, efiImage: [UInt8]) throws -> FAT32Writer {
        var writer = try FAT32Writer(size: size, label: label, volumeID: volumeID,
                                     date: Date(timeIntervalSince1970: TimeInterval(Reproducibility.now())))
        try writer.addFile(GrubEFIImage.removablePath, bytes: efiImage)
        try writer.addFile(GrubEFIImage.vendorPath, bytes: efiImage)
        return writer
    }
}
