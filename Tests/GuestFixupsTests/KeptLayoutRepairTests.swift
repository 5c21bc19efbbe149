import Testing
@testable import GuestFixups

/// `--keep-layout` and `--swap-partition` as the repairs see them: fstab names each kept
/// filesystem's new partition and the new swap partition; with /boot on its own, both GRUB menus
/// name the kernels relative to it.
@Suite struct KeptLayoutRepairTests {
    @Test func fstabNamesKeptFilesystemsAndTheSwapPartition() throws {
        let fs = GuestFixtures.centos5()
        var options = GuestFixtures.only("fstab")
        options.keptMounts = ["/mnt": "UUID=0a1b2c3d", "/data": "/dev/vda3"]
        options.swapPartition = "UUID=feed"
        _ = try GuestRepairs.apply(to: fs, options: options)
        var expected = replacingOnce(GuestFixtures.centos5Fstab, "/dev/sda1               /", "LABEL=/               /")
        expected = replacingOnce(expected, "/dev/sda2 ", "# rehost: /dev/sda2 ")
        // The kept entries keep their separators and options; the swap line follows the guest's own.
        expected = replacingOnce(expected, "/dev/sdb\t\t/mnt", "UUID=0a1b2c3d\t\t/mnt")
        expected = replacingOnce(expected, "LABEL=data              /data", "/dev/vda3              /data")
        expected += "UUID=feed swap swap defaults 0 0\n"
        #expect(fs.text("/etc/fstab") == expected)
        // Again: nothing changes.
        let again = try GuestRepairs.apply(to: fs, options: options).changes
        #expect(again.isEmpty, "\(again)")
    }

    @Test func separateBootMakesGrubPathsRelativeToIt() throws {
        let fs = GuestFixtures.centos5()
        var options = GuestFixtures.only("bootloader", rootReference: "/dev/vda2")
        options.keptMounts = ["/boot": "LABEL=/boot"]
        #expect(options.separateBoot && options.bootLoaderPath("/boot/vmlinuz-1") == "/vmlinuz-1")
        _ = try GuestRepairs.apply(to: fs, options: options)
        let legacy = try #require(fs.text("/boot/grub/grub.conf"))
        let native = try #require(fs.text("/boot/grub/grub.cfg"))
        #expect(legacy.contains("\tkernel /vmlinuz-2.6.18-398.el5 ro root=/dev/vda2 ") && legacy.contains("\tinitrd /initrd-2.6.18-398.el5.img"))
        #expect(native.contains("\tlinux /vmlinuz-2.6.18-398.el5 ro root=/dev/vda2 ") && native.contains("\tinitrd /initrd-2.6.18-398.el5.img"))
        #expect(native.hasPrefix("# Written by rehost for kvm: native GRUB 2 syntax (prefix (hd0,msdos1)/grub)."))
        #expect(!legacy.contains("/boot/vmlinuz") && !native.contains("/boot/vmlinuz") && !native.contains("/boot/initrd"))

        // Without a separate /boot, the paths keep /boot.
        let merged = GuestFixtures.centos5()
        _ = try GuestRepairs.apply(to: merged, options: GuestFixtures.only("bootloader"))
        #expect(merged.text("/boot/grub/grub.cfg")?.contains("\tlinux /boot/vmlinuz-2.6.18-398.el5 ") == true)
    }

    @Test func deviceReferencesNameThePartition() {
        #expect(Target.kvm.partitionDevice(3) == "/dev/vda3" && Target.generic.partitionDevice(2) == "/dev/sda2")
        #expect(Target.kvm.firstPartitionDevice == "/dev/vda1")
    }
}
