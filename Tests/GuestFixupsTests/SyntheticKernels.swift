import Compression
import GuestFixups

/// Kernel files for in-memory guests, shaped as the real ones are at the bytes Rehost judges:
/// a bzImage boot header, or a gzip'd ELF carrying a Xen note (see KernelPackagesTests for the
/// real Debian kernel).
enum SyntheticKernels {
    /// A bzImage header of boot protocol 2.15 whose version string starts with `release`.
    static func bzImage(release: String) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: 0x400)
        bytes[0x1F1] = 1
        bytes[0x1FE] = 0x55
        bytes[0x1FF] = 0xAA
        bytes.replaceSubrange(0x202..<0x206, with: Array("HdrS".utf8))
        bytes.storeLE(UInt16(0x020F), at: 0x206)
        bytes.storeLE(UInt16(0x100), at: 0x20E)
        let banner = Array("\(release) (builder@example) #1 SMP".utf8) + [0]
        bytes.replaceSubrange(0x300..<0x300 + banner.count, with: banner)
        return bytes
    }

    /// gzip(ELF64 with one SHT_NOTE section holding a "Xen" note): a classic Xen PV vmlinuz.
    static func xenPV() -> [UInt8] {
        var elf = [UInt8](repeating: 0, count: 64)
        elf.replaceSubrange(0..<4, with: [0x7F, 0x45, 0x4C, 0x46])
        elf[4] = 2; elf[5] = 1; elf[6] = 1
        elf.storeLE(UInt16(2), at: 16)          // ET_EXEC
        elf.storeLE(UInt16(62), at: 18)         // x86-64
        elf.storeLE(UInt32(1), at: 20)
        elf.storeLE(UInt16(64), at: 52)         // header size
        elf.storeLE(UInt16(64), at: 58)         // section header size
        // The note: namesz 4, descsz 8, type 6 (XEN_ELFNOTE_GUEST_OS), "Xen\0", "linux\0\0\0".
        var note = [UInt8](repeating: 0, count: 12)
        note.storeLE(UInt32(4), at: 0); note.storeLE(UInt32(8), at: 4); note.storeLE(UInt32(6), at: 8)
        note += Array("Xen".utf8) + [0] + Array("linux".utf8) + [0, 0, 0]
        let noteOffset = elf.count
        elf += note
        let names = [0] + Array(".note.Xen".utf8) + [0] + Array(".shstrtab".utf8) + [0]
        let namesOffset = elf.count
        elf += names
        while elf.count % 8 != 0 { elf.append(0) }
        let sectionsOffset = elf.count
        func section(name: UInt32, type: UInt32, offset: Int, size: Int) -> [UInt8] {
            var header = [UInt8](repeating: 0, count: 64)
            header.storeLE(name, at: 0); header.storeLE(type, at: 4)
            header.storeLE(UInt64(offset), at: 24); header.storeLE(UInt64(size), at: 32)
            header.storeLE(UInt64(4), at: 48)
            return header
        }
        elf += [UInt8](repeating: 0, count: 64)
        elf += section(name: 1, type: 7, offset: noteOffset, size: note.count)
        elf += section(name: 11, type: 3, offset: namesOffset, size: names.count)
        elf.storeLE(UInt64(sectionsOffset), at: 40)
        elf.storeLE(UInt16(3), at: 60)          // section count
        elf.storeLE(UInt16(2), at: 62)          // names section index
        return StreamCompression.gzip(elf)
    }

    /// The drivers every target's buses need, as modules.builtin lists them.
    static let builtinDrivers = [
        "kernel/drivers/virtio/virtio.ko", "kernel/drivers/virtio/virtio_ring.ko", "kernel/drivers/virtio/virtio_pci.ko",
        "kernel/drivers/block/virtio_blk.ko", "kernel/drivers/scsi/virtio_scsi.ko", "kernel/drivers/scsi/sd_mod.ko",
        "kernel/drivers/ata/ata_piix.ko", "kernel/drivers/ata/ahci.ko", "kernel/drivers/message/fusion/mptspi.ko",
        "kernel/drivers/message/fusion/mptsas.ko", "kernel/drivers/scsi/vmw_pvscsi.ko", "kernel/fs/ext3/ext3.ko",
        "kernel/fs/ext4/ext4.ko",
    ]

    /// /boot/vmlinuz-`version` (a bzImage with every driver built in, so it boots everywhere
    /// without an initrd repair) and its initrd; or a Xen PV image when `xenPV`.
    static func install(_ version: String, in fs: MemoryGuestFilesystem, xenPV: Bool = false,
                        initrd: String? = nil) {
        if xenPV {
            fs.addFile("/boot/vmlinuz-\(version)", bytes: Self.xenPV())
        } else {
            fs.addFile("/boot/vmlinuz-\(version)", bytes: bzImage(release: version))
            fs.addFile("/lib/modules/\(version)/modules.builtin", builtinDrivers.joined(separator: "\n") + "\n")
        }
        if let initrd { fs.addFile("/boot/\(initrd)", "initrd \(version)") }
    }
}
