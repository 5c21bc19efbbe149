import GuestFixups
import Testing

@Suite struct MountedGuestTests {
    static let lvmFstab = """
        /dev/VolGroup00/LogVol00 /                       ext3    defaults        1 1
        LABEL=/boot             /boot                   ext3    defaults        1 2
        /dev/mapper/VolGroup00-LogVol02 /home ext3 defaults 1 2
        /dev/sda3\t/var\text3\tdefaults\t1 2
        tmpfs                   /dev/shm                tmpfs   defaults        0 0
        /dev/VolGroup00/LogVol01 swap                    swap    defaults        0 0
        UUID=1111-2222 swap swap defaults 0 0
        LABEL=data /data xfs defaults 0 0
        LABEL=kept /kept ext3 defaults 0 0

        """

    @Test func fstabDropsMergedFilesystemsAndLogicalVolumes() throws {
        let fs = MemoryGuestFilesystem()
        fs.addFile("/etc/fstab", Self.lvmFstab)
        var options = GuestFixtures.only("fstab")
        options.mergedMountPoints = ["/boot", "/var"]
        options.volumeGroups = ["VolGroup00"]
        options.droppedDevices = ["UUID=1111-2222", "LABEL=data"]
        _ = try GuestRepairs.apply(to: fs, options: options)
        #expect(fs.text("/etc/fstab") == """
            LABEL=/ /                       ext3    defaults        1 1
            # rehost: merged into /: LABEL=/boot             /boot                   ext3    defaults        1 2
            # rehost: /dev/mapper/VolGroup00-LogVol02 /home ext3 defaults 1 2
            # rehost: merged into /: /dev/sda3\t/var\text3\tdefaults\t1 2
            tmpfs                   /dev/shm                tmpfs   defaults        0 0
            # rehost: /dev/VolGroup00/LogVol01 swap                    swap    defaults        0 0
            # rehost: UUID=1111-2222 swap swap defaults 0 0
            # rehost: LABEL=data /data xfs defaults 0 0
            LABEL=kept /kept ext3 defaults 0 0

            """)
    }

    /// `--swap-file`: one line for it, with the options and separators of the guest's own swap
    /// line, added once however often the repair runs.
    @Test(arguments: [
        (lvmFstab, "/swapfile none swap defaults 0 0"),
        ("/dev/xvda1\t/\text3\terrors=remount-ro\t0 1\n/dev/xvda3\tnone\tswap\tsw\t0 0\n", "/swapfile\tnone\tswap\tsw\t0 0"),
        ("LABEL=/ / ext3 defaults 1 1", "/swapfile\tnone\tswap\tdefaults\t0 0"),
    ])
    func fstabGainsTheSwapFile(fstab: String, line: String) throws {
        let fs = MemoryGuestFilesystem()
        fs.addFile("/etc/fstab", fstab)
        var options = GuestFixtures.only("fstab")
        options.volumeGroups = ["VolGroup00"]
        options.swapFile = "/swapfile"
        _ = try GuestRepairs.apply(to: fs, options: options)
        _ = try GuestRepairs.apply(to: fs, options: options)
        let lines = (fs.text("/etc/fstab") ?? "").split(separator: "\n").map(String.init)
        #expect(lines.last == line, "\(lines)")
        #expect(lines.filter { $0.hasPrefix("/swapfile") }.count == 1, "\(lines)")
        #expect(!lines.contains { $0.hasPrefix("/dev/xvda3") || $0.hasPrefix("/dev/VolGroup00/LogVol01") })
    }

    @Test func pathsGoToTheLongestMountPoint() throws {
        let root = MemoryGuestFilesystem()
        root.addFile("/etc/fstab", "x")
        root.addDirectory("/boot")
        let boot = MemoryGuestFilesystem()
        boot.addFile("/vmlinuz-1", "kernel")
        boot.addDirectory("/grub")
        let grub = MemoryGuestFilesystem()
        grub.addFile("/grub.conf", "deep")
        let mounted = MountedGuestFilesystem(root: root, mounts: [("/boot", boot), ("/boot/grub", grub)])
        #expect(try mounted.readText("/boot/vmlinuz-1") == "kernel")
        #expect(try mounted.readText("/boot/grub/grub.conf") == "deep")
        #expect(try mounted.readText("/etc/fstab") == "x")
        #expect(try mounted.listDirectory("/boot") == ["grub", "vmlinuz-1"])
        #expect(try mounted.entry(at: "/boot") == .directory)
        #expect(try mounted.readText("/bootx") == nil)
        try mounted.writeText("/boot/new", "n")
        #expect(boot.text("/new") == "n")
        #expect(root.text("/boot/new") == nil)
    }
}
