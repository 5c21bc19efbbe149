import GuestFixups
import ImageCore

/// The guest text parsers (Sources/GuestFixups): a small CentOS 5 guest in memory whose one
/// file is the input, put through every repair with the options a conversion uses. A second
/// run must change nothing (the repairs promise idempotence; a difference is a finding).
extension FuzzTargets {
    static let guestTargets: [FuzzTarget] = [
        guestText("guest-fstab", "/etc/fstab", "FstabRepair: fstab fields, root and Xen disk entries"),
        guestText("guest-inittab", "/etc/inittab", "InittabRepair: id:runlevels:action:process lines and gettys"),
        guestText("guest-grub", "/boot/grub/grub.conf", "GuestInspector and BootloaderRepair: GRUB legacy menus and kernel arguments"),
        guestText("guest-modprobe", "/etc/modprobe.conf", "ModprobeRepair: alias and options lines"),
        FuzzTarget(name: "guest-etc", summary: "the other files the inspector and repairs read: the first byte picks one of `etcPaths`, the rest is its contents",
                   maxLength: 16 << 10) { data in
            guard let selector = data.first else { return }
            try repairTwice("guest-etc", path: etcPaths[Int(selector) % etcPaths.count], contents: Array(data.dropFirst()))
        },
    ]

    /// For `guest-etc`, indexed by the input's first byte (Fuzz/make-seeds.sh writes one seed each).
    static let etcPaths = [
        "/etc/securetty", "/etc/sysconfig/network-scripts/ifcfg-eth0", "/etc/os-release", "/etc/redhat-release",
        "/etc/lsb-release", "/etc/SuSE-release", "/etc/debian_version", "/etc/default/grub", "/etc/network/interfaces",
        "/etc/udev/rules.d/70-persistent-net.rules", "/etc/blkid/blkid.tab", "/etc/sysconfig/kernel",
        "/boot/grub2/grub.cfg", "/etc/modprobe.d/xen.conf", "/etc/initramfs-tools/modules", "/etc/sysconfig/network",
    ]

    static func repairTwice(_ name: String, path: String, contents: [UInt8]) throws {
        let fs = FuzzGuest.centos5()
        fs.addFile(path, bytes: contents)
        let options = RepairOptions(target: .kvm, rootReference: "LABEL=/", rootFilesystemType: "ext3")
        _ = try GuestRepairs.apply(to: fs, options: options)
        let writes = fs.mutationCount
        let again = try GuestRepairs.apply(to: fs, options: options)
        precondition(again.changes.isEmpty && fs.mutationCount == writes,
                     "\(name): a second run changed \(again.changes.map(\.path))")
    }

    static func guestText(_ name: String, _ path: String, _ summary: String) -> FuzzTarget {
        FuzzTarget(name: name, summary: summary + " (\(path))", maxLength: 16 << 10) { data in
            try repairTwice(name, path: path, contents: Array(data))
        }
    }
}

/// A CentOS 5 guest off Xen, as Tests/GuestFixupsTests/GuestFixtures.swift builds it, cut
/// down to one kernel that boots everywhere (a bzImage with every driver built in).
enum FuzzGuest {
    static func centos5() -> MemoryGuestFilesystem {
        let fs = MemoryGuestFilesystem()
        fs.addFile("/etc/redhat-release", "CentOS release 5.11 (Final)\n")
        fs.addFile("/etc/inittab", "id:3:initdefault:\nco:2345:respawn:/sbin/agetty xvc0 9600 vt100-nav\n1:2345:respawn:/sbin/mingetty tty1\n")
        fs.addFile("/etc/fstab", "/dev/sda1 / ext3 defaults 1 1\n/dev/sdb /mnt ext3 defaults 0 0\n")
        fs.addFile("/etc/modprobe.conf", "alias eth0 xennet\nalias scsi_hostadapter xenblk\n")
        fs.addFile("/etc/securetty", "console\ntty1\nxvc0\n", mode: 0o600)
        fs.addFile("/etc/sysconfig/network-scripts/ifcfg-eth0", "DEVICE=eth0\nHWADDR=00:16:3E:5A:12:34\n")
        fs.addFile("/sbin/agetty", "ELF")
        fs.addFile("/sbin/mingetty", "ELF")
        let release = "2.6.18-398.el5"
        fs.addFile("/boot/vmlinuz-\(release)", bytes: bzImage(release: release))
        fs.addFile("/lib/modules/\(release)/modules.builtin", builtinDrivers.joined(separator: "\n") + "\n")
        fs.addFile("/boot/initrd-\(release).img", "initrd")
        fs.addFile("/boot/grub/grub.conf", """
            default=0
            timeout=5
            title CentOS (\(release))
            \troot (hd0,0)
            \tkernel /boot/vmlinuz-\(release) ro root=/dev/sda1 console=xvc0
            \tinitrd /boot/initrd-\(release).img

            """, mode: 0o600)
        fs.addSymlink("/boot/grub/menu.lst", target: "./grub.conf")
        return fs
    }

    static let builtinDrivers = [
        "kernel/drivers/virtio/virtio.ko", "kernel/drivers/virtio/virtio_ring.ko", "kernel/drivers/virtio/virtio_pci.ko",
        "kernel/drivers/block/virtio_blk.ko", "kernel/drivers/scsi/virtio_scsi.ko", "kernel/drivers/scsi/sd_mod.ko",
        "kernel/drivers/ata/ata_piix.ko", "kernel/drivers/ata/ahci.ko", "kernel/fs/ext3/ext3.ko", "kernel/fs/ext4/ext4.ko",
    ]

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
}
