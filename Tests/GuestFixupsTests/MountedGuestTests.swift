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
