import Testing
@testable import GuestFixups

/// Replaces exactly one occurrence of `old` in `text`, so an expected text is derived from the
/// fixture with the change spelled out, and a typo in `old` fails the test instead of passing it.
func replacingOnce(_ text: String, _ old: String, _ new: String) -> String {
    let ranges = text.ranges(of: old)
    precondition(ranges.count == 1, "\(old) occurs \(ranges.count) times")
    var result = text
    result.replaceSubrange(ranges[0], with: new)
    return result
}

@Suite struct InittabRepairTests {
    @Test func centos5XenConsoleCommentedOutAndSerialGettyAdded() throws {
        let fs = GuestFixtures.centos5()
        let changes = try GuestRepairs.apply(to: fs, options: GuestFixtures.only("inittab")).changes
        var expected = replacingOnce(GuestFixtures.centos5Inittab,
                                     "co:2345:respawn:/sbin/agetty xvc0 9600 vt100-nav\n",
                                     "# rehost: co:2345:respawn:/sbin/agetty xvc0 9600 vt100-nav\n")
        expected = replacingOnce(expected, "6:2345:respawn:/sbin/mingetty tty6\n",
                                 "6:2345:respawn:/sbin/mingetty tty6\nS0:2345:respawn:/sbin/agetty ttyS0 115200 vt100-nav\n")
        #expect(fs.text("/etc/inittab") == expected)
        #expect(changes == [GuestChange(repair: "inittab", path: "/etc/inittab", action: .edited, lines: [
            .init(before: "co:2345:respawn:/sbin/agetty xvc0 9600 vt100-nav",
                  after: "# rehost: co:2345:respawn:/sbin/agetty xvc0 9600 vt100-nav"),
            .init(before: nil, after: "S0:2345:respawn:/sbin/agetty ttyS0 115200 vt100-nav"),
        ])])
    }

    @Test func debianUsesItsGettyAndAFreeID() throws {
        let fs = GuestFixtures.debian6()
        _ = try GuestRepairs.apply(to: fs, options: RepairOptions(
            target: .kvm, rootReference: "UUID=1", rootFilesystemType: "ext3",
            skip: ["securetty", "modprobe", "fstab", "blkid-cache", "network", "initrd", "bootloader", "selinux"], serialSpeed: 38400)).changes
        #expect(fs.text("/etc/inittab") == """
            id:2:initdefault:
            si::sysinit:/etc/init.d/rcS
            1:2345:respawn:/sbin/getty 38400 tty1
            2:23:respawn:/sbin/getty 38400 tty2
            # rehost: S0:2345:respawn:/sbin/getty 38400 hvc0
            T0:2345:respawn:/sbin/getty ttyS0 38400 vt100-nav
            #T0:23:respawn:/sbin/getty -L ttyS0 9600 vt100

            """)
    }

    @Test func existingSerialGettyIsKeptAndNothingWritten() throws {
        let fs = MemoryGuestFilesystem()
        let inittab = "1:2345:respawn:/sbin/mingetty tty1\nT1:2345:respawn:/usr/sbin/agetty -L ttyS0 9600 vt100"
        fs.addFile("/etc/inittab", inittab)
        let changes = try GuestRepairs.apply(to: fs, options: GuestFixtures.only("inittab")).changes
        #expect(changes == [])
        #expect(fs.mutationCount == 0)
        #expect(fs.text("/etc/inittab") == inittab)
    }

    /// Found by the guest-inittab fuzz target: the only ttyS0 getty also named hvc0, so it was
    /// commented out and none added; the second run then added one.
    @Test func serialGettyOnTheXenConsoleIsReplacedInOneRun() throws {
        let fs = MemoryGuestFilesystem()
        fs.addFile("/etc/inittab", "1:2345:respawn:/sbin/mingetty tty1\nT0:23:respawn:/sbin/agetty ttyS0 hvc0\n")
        _ = try GuestRepairs.apply(to: fs, options: GuestFixtures.only("inittab"))
        #expect(fs.text("/etc/inittab") == "1:2345:respawn:/sbin/mingetty tty1\n"
            + "# rehost: T0:23:respawn:/sbin/agetty ttyS0 hvc0\nS0:2345:respawn:/sbin/agetty ttyS0 115200 vt100-nav\n")
        #expect(try GuestRepairs.apply(to: fs, options: GuestFixtures.only("inittab")).changes == [])
    }

    @Test func upstartInittabWithoutGettysIsLeftAlone() throws {
        let fs = GuestFixtures.rhel6()
        #expect(try GuestRepairs.apply(to: fs, options: GuestFixtures.only("inittab")).changes == [])
        #expect(fs.mutationCount == 0)
    }

    @Test func noFinalNewlineStaysThatWay() throws {
        let fs = MemoryGuestFilesystem()
        fs.addFile("/etc/inittab", "1:2345:respawn:/sbin/mingetty tty1\nco:2345:respawn:/sbin/agetty /dev/hvc0 9600")
        _ = try GuestRepairs.apply(to: fs, options: GuestFixtures.only("inittab")).changes
        #expect(fs.text("/etc/inittab") == "1:2345:respawn:/sbin/mingetty tty1\n"
            + "# rehost: co:2345:respawn:/sbin/agetty /dev/hvc0 9600\nS0:2345:respawn:/sbin/agetty ttyS0 115200 vt100-nav")
    }

    @Test func crlfDoesNotCrashAndKeepsTheCarriageReturns() throws {
        let fs = MemoryGuestFilesystem()
        fs.addFile("/etc/inittab", "1:2345:respawn:/sbin/mingetty tty1\r\nco:2345:respawn:/sbin/agetty xvc0 9600\r\n")
        _ = try GuestRepairs.apply(to: fs, options: GuestFixtures.only("inittab")).changes
        #expect(fs.text("/etc/inittab") == "1:2345:respawn:/sbin/mingetty tty1\r\n"
            + "# rehost: co:2345:respawn:/sbin/agetty xvc0 9600\r\nS0:2345:respawn:/sbin/agetty ttyS0 115200 vt100-nav\n")
    }
}

@Suite struct SecurettyRepairTests {
    @Test func ttyS0IsAppendedAndModeKept() throws {
        let fs = GuestFixtures.centos5()
        let changes = try GuestRepairs.apply(to: fs, options: GuestFixtures.only("securetty")).changes
        #expect(fs.text("/etc/securetty") == "console\nvc/1\nvc/2\ntty1\ntty2\nxvc0\nttyS0\n")
        guard case .file(_, let mode, _, _)? = fs.node(at: "/etc/securetty") else { Issue.record("not a file"); return }
        #expect(mode == 0o600)
        #expect(changes == [GuestChange(repair: "securetty", path: "/etc/securetty", action: .edited,
                                        lines: [.init(before: nil, after: "ttyS0")])])
    }

    @Test func alreadyListedOrMissingChangesNothing() throws {
        let rhel = GuestFixtures.rhel6()
        #expect(try GuestRepairs.apply(to: rhel, options: GuestFixtures.only("securetty")).changes == [])
        #expect(rhel.mutationCount == 0)
        let debian = GuestFixtures.debian6()
        #expect(try GuestRepairs.apply(to: debian, options: GuestFixtures.only("securetty")).changes == [])
        #expect(try debian.entry(at: "/etc/securetty") == nil)
    }

    @Test func noFinalNewline() throws {
        let fs = MemoryGuestFilesystem()
        fs.addFile("/etc/securetty", "console\ntty1")
        _ = try GuestRepairs.apply(to: fs, options: GuestFixtures.only("securetty")).changes
        #expect(fs.text("/etc/securetty") == "console\ntty1\nttyS0")
    }
}

@Suite struct ModprobeRepairTests {
    @Test(arguments: Target.allCases)
    func centos5AliasesNameTheTargetsDrivers(target: Target) throws {
        let fs = GuestFixtures.centos5()
        let changes = try GuestRepairs.apply(to: fs, options: GuestFixtures.only("modprobe", target: target)).changes
        let net = target.netDriver, block = target.blockDriver
        #expect(fs.text("/etc/modprobe.conf") == """
            alias eth0 \(net)
            alias\teth1\t\(net)   # the second NIC
            alias scsi_hostadapter \(block)
            options loop max_loop=64
            # alias eth2 xennet
            """)
        #expect(changes.map(\.path) == ["/etc/modprobe.conf"])
        #expect(changes.first?.lines.count == 3)
    }

    @Test func targetDrivers() {
        #expect(Target.kvm.blockDriver == "virtio_blk")
        #expect(Target.kvm.netDriver == "virtio_net")
        #expect(Target.virtualbox.blockDriver == "ahci")
        #expect(Target.virtualbox.alternativeBlockDrivers == ["ata_piix"])
        #expect(Target.virtualbox.netDriver == "e1000")
        #expect(Target.vmware.blockDriver == "mptspi")
        #expect(Target.vmware.netDriver == "e1000")
        #expect(Target.generic.blockDriver == "ata_piix")
        #expect(Target.generic.netDriver == "e1000")
    }

    @Test func rhel6ModprobeDFilesButNotSymlinks() throws {
        let fs = GuestFixtures.rhel6()
        let changes = try GuestRepairs.apply(to: fs, options: GuestFixtures.only("modprobe", target: .virtualbox)).changes
        #expect(fs.text("/etc/modprobe.d/anaconda.conf") == "alias scsi_hostadapter ahci\nalias eth0 e1000\n")
        #expect(fs.text("/etc/modprobe.d/blacklist.conf") == "# watchdog drivers\nblacklist i8xx_tco\n")
        #expect(fs.text("/usr/share/shared-modprobe.conf") == "alias eth9 xen-netfront\n")
        #expect(changes.map(\.path) == ["/etc/modprobe.d/anaconda.conf"])
    }

    @Test func everyXenModuleSpelling() throws {
        let fs = MemoryGuestFilesystem()
        fs.addFile("/etc/modprobe.conf.local", """
            alias scsi_hostadapter1 xen_blkfront
            alias scsi_hostadapter2 xen-blkfront
            alias eth3 xen_netfront
            alias eth4 xen_vnif
            alias eth5 e100
            alias usb-controller ehci-hcd
            """)
        _ = try GuestRepairs.apply(to: fs, options: GuestFixtures.only("modprobe", target: .generic)).changes
        #expect(fs.text("/etc/modprobe.conf.local") == """
            alias scsi_hostadapter1 ata_piix
            alias scsi_hostadapter2 ata_piix
            alias eth3 e1000
            alias eth4 e1000
            alias eth5 e100
            alias usb-controller ehci-hcd
            """)
    }
}

@Suite struct FstabRepairTests {
    @Test func centos5RootByReferenceAndXenDisksCommentedOut() throws {
        let fs = GuestFixtures.centos5()
        let changes = try GuestRepairs.apply(to: fs, options: GuestFixtures.only("fstab")).changes
        var expected = replacingOnce(GuestFixtures.centos5Fstab, "/dev/sda1               /", "LABEL=/               /")
        expected = replacingOnce(expected, "/dev/sda2 ", "# rehost: /dev/sda2 ")
        expected = replacingOnce(expected, "/dev/sdb\t", "# rehost: /dev/sdb\t")
        #expect(fs.text("/etc/fstab") == expected)
        #expect(changes.first?.lines == [
            .init(before: "/dev/sda1               /                       ext3    defaults        1 1",
                  after: "LABEL=/               /                       ext3    defaults        1 1"),
            .init(before: "/dev/sda2               swap                    swap    defaults        0 0",
                  after: "# rehost: /dev/sda2               swap                    swap    defaults        0 0"),
            .init(before: "/dev/sdb\t\t/mnt\t\t\text3\tdefaults\t0 0",
                  after: "# rehost: /dev/sdb\t\t/mnt\t\t\text3\tdefaults\t0 0"),
        ])
    }

    @Test func rootFilesystemTypeFollowsTheNewFilesystem() throws {
        let fs = GuestFixtures.rhel6()
        _ = try GuestRepairs.apply(to: fs, options: GuestFixtures.only("fstab", rootReference: "UUID=5d1c")).changes
        #expect(fs.text("/etc/fstab") == "UUID=5d1c\t/\text3\tdefaults\t1 1\n# rehost: /dev/xvde3 swap swap defaults 0 0\n"
            + "UUID=0a1b proc /proc proc defaults 0 0\n")
    }

    /// `--firmware uefi|both`: the ESP is mounted on /boot/efi (added, or an existing entry gets the
    /// new device), and the directory is made; fsck checks it at boot only when the guest has fsck.vfat.
    @Test func efiSystemPartitionIsMountedOnBootEFI() throws {
        let fs = GuestFixtures.rhel6()
        var options = GuestFixtures.only("fstab", rootReference: "UUID=5d1c")
        options.efiSystemPartition = "UUID=ABCD-1234"
        let changes = try GuestRepairs.apply(to: fs, options: options).changes
        #expect(fs.text("/etc/fstab")?.hasSuffix("UUID=ABCD-1234\t/boot/efi\tvfat\tumask=0077\t0 0\n") == true, "\(fs.text("/etc/fstab") ?? "")")
        #expect(try fs.entry(at: "/boot/efi") == .directory)
        #expect(changes.contains { $0.path == "/boot/efi" && $0.action == .created })

        let withDosfstools = GuestFixtures.rhel6()
        withDosfstools.addFile("/sbin/fsck.vfat", "#!/bin/sh\n")
        _ = try GuestRepairs.apply(to: withDosfstools, options: options)
        #expect(withDosfstools.text("/etc/fstab")?.hasSuffix("UUID=ABCD-1234\t/boot/efi\tvfat\tumask=0077\t0 1\n") == true)

        // The source's own ESP is not copied (a dropped device), but its line is the new ESP's.
        let existing = GuestFixtures.debian6()
        existing.addFile("/etc/fstab", "UUID=0000-0001 /boot/efi vfat umask=0077 0 1\n")
        existing.addDirectory("/boot/efi")
        var dropping = options
        dropping.droppedDevices = ["UUID=0000-0001"]
        _ = try GuestRepairs.apply(to: existing, options: dropping).changes
        #expect(existing.text("/etc/fstab") == "UUID=ABCD-1234 /boot/efi vfat umask=0077 0 1\n")
        // Without an ESP on the new disk (--firmware bios), the dropped ESP's line is commented out.
        let biosDisk = GuestFixtures.debian6()
        biosDisk.addFile("/etc/fstab", "UUID=0000-0001 /boot/efi vfat umask=0077 0 1\n")
        var bios = GuestFixtures.only("fstab", rootReference: "UUID=5d1c")
        bios.droppedDevices = ["UUID=0000-0001"]
        _ = try GuestRepairs.apply(to: biosDisk, options: bios)
        #expect(biosDisk.text("/etc/fstab") == "# rehost: UUID=0000-0001 /boot/efi vfat umask=0077 0 1\n")
    }

    @Test func debianNoFinalNewlineAndDeviceRoot() throws {
        let fs = GuestFixtures.debian6()
        _ = try GuestRepairs.apply(to: fs, options: GuestFixtures.only("fstab", rootReference: "/dev/vda1")).changes
        #expect(fs.text("/etc/fstab") == "proc /proc proc defaults 0 0\n/dev/vda1 / ext3 errors=remount-ro 0 1\n"
            + "# rehost: /dev/xvda1 none swap sw 0 0")
    }
}

@Suite struct CleanupRepairTests {
    @Test func blkidCachesAreRemoved() throws {
        let fs = GuestFixtures.centos5()
        fs.addFile("/etc/blkid.tab", "x")
        let changes = try GuestRepairs.apply(to: fs, options: GuestFixtures.only("blkid-cache")).changes
        #expect(changes == ["/etc/blkid/blkid.tab", "/etc/blkid/blkid.tab.old", "/etc/blkid.tab"].map {
            GuestChange(repair: "blkid-cache", path: $0, action: .removed)
        })
        #expect(try fs.listDirectory("/etc/blkid") == [])
        #expect(try fs.entry(at: "/etc/blkid.tab") == nil)
    }

    @Test func networkPinsAreDropped() throws {
        let fs = GuestFixtures.centos5()
        fs.addFile("/etc/udev/rules.d/75-persistent-net-generator.rules", "")
        let changes = try GuestRepairs.apply(to: fs, options: GuestFixtures.only("network")).changes
        #expect(fs.text("/etc/sysconfig/network-scripts/ifcfg-eth0")
            == "# Xen Virtual Ethernet\nDEVICE=eth0\nBOOTPROTO=dhcp\nONBOOT=yes\n")
        #expect(fs.text("/etc/sysconfig/network-scripts/ifcfg-lo") == "DEVICE=lo\nIPADDR=127.0.0.1\n")
        #expect(try fs.listDirectory("/etc/udev/rules.d") == ["50-udev.rules", "75-persistent-net-generator.rules"])
        #expect(changes == [
            GuestChange(repair: "network", path: "/etc/sysconfig/network-scripts/ifcfg-eth0", action: .edited, lines: [
                .init(before: "HWADDR=00:16:3E:5A:12:34", after: nil),
                .init(before: "\tMACADDR = 00:16:3E:5A:12:35", after: nil),
            ]),
            GuestChange(repair: "network", path: "/etc/udev/rules.d/70-persistent-net.rules", action: .removed),
        ])
    }

    @Test func suseIfcfgAndQuotedValuesWithoutFinalNewline() throws {
        let fs = GuestFixtures.rhel6()
        fs.addFile("/etc/sysconfig/network/ifcfg-eth0", "BOOTPROTO='dhcp'\nMACADDR='00:16:3e:00:00:01'\n")
        _ = try GuestRepairs.apply(to: fs, options: GuestFixtures.only("network")).changes
        #expect(fs.text("/etc/sysconfig/network-scripts/ifcfg-eth0") == "DEVICE=\"eth0\"\nONBOOT=\"yes\"")
        #expect(fs.text("/etc/sysconfig/network/ifcfg-eth0") == "BOOTPROTO='dhcp'\n")
    }
}

@Suite struct SystemdConsoleTests {
    @Test func gettyUnitsOnTheXenConsoleAreDisabled() throws {
        let fs = MemoryGuestFilesystem()
        SyntheticKernels.install("6.1.0-50-amd64", in: fs)
        fs.addSymlink("/sbin/init", target: "/lib/systemd/systemd")
        let wants = "/etc/systemd/system/getty.target.wants"
        fs.addSymlink("\(wants)/serial-getty@hvc0.service", target: "/lib/systemd/system/serial-getty@.service")
        fs.addSymlink("\(wants)/getty@tty1.service", target: "/lib/systemd/system/getty@.service")
        fs.addSymlink("/etc/systemd/system/multi-user.target.wants/serial-getty@xvc0.service", target: "/lib/systemd/system/serial-getty@.service")
        let traits = try GuestInspector.inspect(fs).xenTraits.map(\.file)
        #expect(traits.contains("\(wants)/serial-getty@hvc0.service"))
        let changes = try GuestRepairs.apply(to: fs, options: GuestFixtures.only("inittab")).changes
        #expect(changes.map { "\($0.action.rawValue) \($0.path)" } == [
            "removed \(wants)/serial-getty@hvc0.service",
            "removed /etc/systemd/system/multi-user.target.wants/serial-getty@xvc0.service",
        ])
        #expect(try fs.entry(at: "\(wants)/getty@tty1.service") != nil)
        #expect(try GuestRepairs.apply(to: fs, options: GuestFixtures.only("inittab")).changes.isEmpty)
    }
}
