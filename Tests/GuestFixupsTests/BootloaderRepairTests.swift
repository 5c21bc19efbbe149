import Foundation
import ImageCore
import Testing
@testable import GuestFixups

@Suite struct BootloaderRepairTests {
    @Test func centos5GetsLegacyAndNativeMenusForTheNonXenKernels() throws {
        let fs = GuestFixtures.centos5()
        let changes = try GuestRepairs.apply(to: fs, options: GuestFixtures.only("bootloader")).changes
        let arguments = "ro root=LABEL=/ rhgb quiet console=tty0 console=ttyS0,115200"
        #expect(fs.text("/boot/grub/grub.conf") == """
            # Written by rehost for kvm: GRUB legacy syntax, for the guest's own tools.
            # The disk boots GRUB 2, which reads the same menu from /boot/grub/grub.cfg.
            default=0
            timeout=5
            serial --unit=0 --speed=115200
            terminal --timeout=5 serial console
            title CentOS (2.6.18-398.el5)
            \troot (hd0,0)
            \tkernel /boot/vmlinuz-2.6.18-398.el5 \(arguments)
            \tinitrd /boot/initrd-2.6.18-398.el5.img
            title CentOS (2.6.18-8.el5)
            \troot (hd0,0)
            \tkernel /boot/vmlinuz-2.6.18-8.el5 \(arguments)
            \tinitrd /boot/initrd-2.6.18-8.el5.img

            """)
        #expect(fs.text("/boot/grub/grub.cfg") == """
            # Written by rehost for kvm: native GRUB 2 syntax (prefix (hd0,msdos1)/boot/grub).
            # /boot/grub/grub.conf holds the same menu in GRUB legacy syntax.
            serial --unit=0 --speed=115200
            terminal_input serial console
            terminal_output serial console
            set default=0
            set timeout=3
            menuentry 'CentOS (2.6.18-398.el5)' {
            \tlinux /boot/vmlinuz-2.6.18-398.el5 \(arguments)
            \tinitrd /boot/initrd-2.6.18-398.el5.img
            }
            menuentry 'CentOS (2.6.18-8.el5)' {
            \tlinux /boot/vmlinuz-2.6.18-8.el5 \(arguments)
            \tinitrd /boot/initrd-2.6.18-8.el5.img
            }

            """)
        // The grub.conf keeps its inode's mode; grub.cfg is a real file, not a link.
        guard case .file(_, let mode, _, _)? = fs.node(at: "/boot/grub/grub.conf") else { Issue.record("no grub.conf"); return }
        #expect(mode == 0o600)
        guard case .file? = fs.node(at: "/boot/grub/grub.cfg") else { Issue.record("grub.cfg is not a file"); return }
        // The existing menu.lst (./grub.conf) and /etc/grub.conf links already point at grub.conf.
        #expect(fs.node(at: "/boot/grub/menu.lst") == .symlink(target: "./grub.conf"))
        #expect(fs.node(at: "/etc/grub.conf") == .symlink(target: "../boot/grub/grub.conf"))
        #expect(changes.map { "\($0.action.rawValue) \($0.path)" } == ["edited /boot/grub/grub.conf", "created /boot/grub/grub.cfg",
                                                                      "edited /etc/sysconfig/kernel"])
    }

    /// On a GPT disk the root is partition 3 (after the BIOS boot partition and the ESP): GRUB 2
    /// names it (hd0,gpt3), and grub.conf, kept for the guest's tools, says (hd0,2).
    @Test func gptDisksNameTheirPartitionInBothMenus() throws {
        let fs = GuestFixtures.centos5()
        var options = GuestFixtures.only("bootloader")
        options.grubBootPartition = "hd0,gpt3"
        _ = try GuestRepairs.apply(to: fs, options: options)
        let legacy = try #require(fs.text("/boot/grub/grub.conf"))
        #expect(legacy.components(separatedBy: "\troot (hd0,2)\n").count == 3, "\(legacy)")
        #expect(!legacy.contains("(hd0,0)"))
        #expect(fs.text("/boot/grub/grub.cfg")?.contains("(prefix (hd0,gpt3)/boot/grub)") == true)
    }

    @Test func debianMenuLstBecomesALinkAndArgumentsAreKept() throws {
        let fs = GuestFixtures.debian6()
        let options = RepairOptions(target: .virtualbox, rootReference: "UUID=77aa", rootFilesystemType: "ext3",
                                    skip: ["inittab", "securetty", "modprobe", "fstab", "blkid-cache", "network"],
                                    serialSpeed: 9600)
        let changes = try GuestRepairs.apply(to: fs, options: options).changes
        #expect(changes.map { "\($0.action.rawValue) \($0.path)" } == [
            "created /boot/grub/grub.conf", "symlinked /boot/grub/menu.lst", "symlinked /etc/grub.conf",
            "created /boot/grub/grub.cfg", "edited /etc/default/grub",
        ])
        let grubConf = try #require(fs.text("/boot/grub/grub.conf"))
        #expect(grubConf.contains("serial --unit=0 --speed=9600\n"))
        #expect(grubConf.contains("""
            title Debian GNU/Linux (2.6.32-5-amd64)
            \troot (hd0,0)
            \tkernel /boot/vmlinuz-2.6.32-5-amd64 ro root=UUID=77aa quiet elevator=noop console=tty0 console=ttyS0,9600
            \tinitrd /boot/initrd.img-2.6.32-5-amd64

            """))
        #expect(!grubConf.contains("xen"))
        #expect(fs.node(at: "/boot/grub/menu.lst") == .symlink(target: "grub.conf"))
        #expect(fs.node(at: "/etc/grub.conf") == .symlink(target: "../boot/grub/grub.conf"))
        #expect(fs.text("/etc/grub.conf") == grubConf)
        #expect(fs.text("/boot/grub/grub.cfg")?.contains("menuentry 'Debian GNU/Linux (2.6.32-5-amd64)' {\n") == true)
    }

    @Test func rhel6ArgumentsComeFromTheDefaultEntry() throws {
        let fs = GuestFixtures.rhel6()
        _ = try GuestRepairs.apply(to: fs, options: GuestFixtures.only("bootloader")).changes
        let grubConf = try #require(fs.text("/boot/grub/grub.conf"))
        #expect(grubConf.contains("\tkernel /boot/vmlinuz-2.6.32-754.el6.x86_64 ro root=LABEL=/ crashkernel=auto "
            + "KEYTABLE=us rhgb quiet console=tty0 console=ttyS0,115200\n\tinitrd /boot/initramfs-2.6.32-754.el6.x86_64.img\n"))
        #expect(grubConf.contains("title Red Hat Enterprise Linux Server (2.6.32-754.el6.x86_64)\n"))
        #expect(!grubConf.contains(".hmac"))
    }

    @Test func missingBootGrubDirectoryIsCreated() throws {
        let fs = MemoryGuestFilesystem()
        SyntheticKernels.install("4.19.0-6-amd64", in: fs)
        fs.addFile("/etc/os-release", "NAME=\"Debian GNU/Linux\"\nVERSION_ID=\"10\"\nID=debian\n")
        let changes = try GuestRepairs.apply(to: fs, options: GuestFixtures.only("bootloader")).changes
        #expect(changes.first == GuestChange(repair: "bootloader", path: "/boot/grub", action: .created))
        #expect(fs.node(at: "/boot/grub") == .directory(mode: 0o755, uid: 0, gid: 0))
        #expect(fs.text("/boot/grub/grub.cfg")?.contains(
            "menuentry 'Debian GNU/Linux (4.19.0-6-amd64)' {\n\tlinux /boot/vmlinuz-4.19.0-6-amd64 ro root=LABEL=/ "
                + "console=tty0 console=ttyS0,115200\n}\n") == true)
        #expect(try fs.entry(at: "/etc/grub.conf") == .symlink(target: "../boot/grub/grub.conf"))
    }

    /// systemd names the new NIC ens3; a configuration that names eth0 needs the classic names.
    @Test(arguments: [("/etc/network/interfaces", "auto eth0\niface eth0 inet dhcp\n", true),
                      ("/etc/network/interfaces", "# eth0 is gone\nauto ens3\n", false),
                      ("/etc/sysconfig/network-scripts/ifcfg-eth0", "DEVICE=eth0\nBOOTPROTO=dhcp\n", true),
                      ("/etc/netplan/50-cloud-init.yaml", "network:\n  ethernets:\n    eth0:\n      dhcp4: true\n", true)])
    func classicInterfaceNamesForSystemdGuestsConfiguringEth0(file: String, text: String, expected: Bool) throws {
        for systemd in [true, false] {
            let fs = MemoryGuestFilesystem()
            SyntheticKernels.install("5.10.0-9-amd64", in: fs)
            fs.addFile(file, text)
            if systemd { fs.addSymlink("/sbin/init", target: "/lib/systemd/systemd") }
            _ = try GuestRepairs.apply(to: fs, options: GuestFixtures.only("bootloader"))
            let grubCfg = fs.text("/boot/grub/grub.cfg") ?? ""
            #expect(grubCfg.contains(" net.ifnames=0 biosdevname=0 ") == (expected && systemd), "\(file) systemd=\(systemd): \(grubCfg)")
        }
    }

    @Test func defaultsAreWrittenWhereTheGuestsToolsLook() throws {
        let centos = GuestFixtures.centos5()
        _ = try GuestRepairs.apply(to: centos, options: GuestFixtures.only("bootloader"))
        #expect(centos.text("/etc/sysconfig/kernel")?.contains("\nDEFAULTKERNEL=kernel\n") == true)
        let debian = GuestFixtures.debian6()
        _ = try GuestRepairs.apply(to: debian, options: GuestFixtures.only("bootloader"))
        #expect(debian.text("/etc/default/grub") == "GRUB_DEFAULT=0\nGRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\n"
            + "GRUB_CMDLINE_LINUX=\"elevator=noop console=tty0 console=ttyS0,115200\"\nGRUB_TERMINAL=\"serial console\"\n"
            + "GRUB_SERIAL_COMMAND=\"serial --unit=0 --speed=115200\"\n")
    }

    @Test func theKernelAskedForBootsFirst() throws {
        let fs = GuestFixtures.centos5()
        var options = GuestFixtures.only("bootloader")
        options.kernel = "2.6.18-8.el5"
        _ = try GuestRepairs.apply(to: fs, options: options)
        let titles = (fs.text("/boot/grub/grub.cfg") ?? "").split(separator: "\n").filter { $0.hasPrefix("menuentry") }
        #expect(titles.first?.contains("2.6.18-8.el5") == true && titles.count == 2, "\(titles)")
        options.kernel = "2.6.18-398.el5xen"
        #expect(throws: RepairError.self) { try GuestRepairs.apply(to: fs, options: options) }
        options.kernel = "4.0"
        let error = #expect(throws: RepairError.self) { try GuestRepairs.apply(to: fs, options: options) }
        #expect(error?.description == "--kernel 4.0: no such kernel in /boot; expected one of 2.6.18-398.el5xen, 2.6.18-398.el5, 2.6.18-8.el5")
    }

    @Test func symlinkedGrubCfgIsReplacedByARealFile() throws {
        let fs = GuestFixtures.centos5()
        fs.addSymlink("/boot/grub/grub.cfg", target: "grub.conf")
        _ = try GuestRepairs.apply(to: fs, options: GuestFixtures.only("bootloader")).changes
        guard case .file(let contents, _, _, _)? = fs.node(at: "/boot/grub/grub.cfg") else {
            Issue.record("grub.cfg is still a link"); return
        }
        #expect(String(decoding: contents, as: UTF8.self).contains("menuentry"))
        #expect(fs.text("/boot/grub/grub.conf")?.contains("menuentry") == false)
    }

    @Test func onlyXenKernelsIsAnErrorBeforeAnythingIsWritten() throws {
        let fs = GuestFixtures.centos5()
        for version in ["2.6.18-398.el5", "2.6.18-8.el5"] { try fs.remove("/boot/vmlinuz-\(version)") }
        let writesBefore = fs.mutationCount
        let error = #expect(throws: RepairError.self) {
            try GuestRepairs.apply(to: fs, options: GuestFixtures.kvmOptions).changes
        }
        #expect(fs.mutationCount == writesBefore)
        #expect(error?.description == "no kernel in /boot boots on kvm: /boot/vmlinuz-2.6.18-398.el5xen: Xen PV image: "
            + "gzip-compressed ELF with Xen ELF notes, no x86 boot header (HdrS)")
        // Without the bootloader repair, the others still run.
        var options = GuestFixtures.kvmOptions
        options.skip = ["bootloader"]
        #expect(try !GuestRepairs.apply(to: fs, options: options).changes.isEmpty)
    }

    @Test func singleQuoteInTitleIsEscapedForGrub2() throws {
        let fs = MemoryGuestFilesystem()
        SyntheticKernels.install("5.10", in: fs)
        fs.addFile("/etc/os-release", "NAME=\"Bob's Linux\"\n")
        _ = try GuestRepairs.apply(to: fs, options: GuestFixtures.only("bootloader")).changes
        #expect(fs.text("/boot/grub/grub.cfg")?.contains("menuentry 'Bob'\\''s Linux (5.10)' {") == true)
    }
}

/// GRUB's own parser as the oracle for the native grub.cfg.
@Suite struct GrubScriptCheckTests {
    @Test(arguments: ["centos5", "rhel6", "debian6", "quote"])
    func grubCfgParsesWithGrubScriptCheck(guest: String) throws {
        let fs: MemoryGuestFilesystem
        switch guest {
        case "centos5": fs = GuestFixtures.centos5()
        case "rhel6": fs = GuestFixtures.rhel6()
        case "debian6": fs = GuestFixtures.debian6()
        default:
            fs = MemoryGuestFilesystem()
            SyntheticKernels.install("5.10", in: fs)
            fs.addFile("/etc/os-release", "NAME=\"Bob's \\\"Linux\\\" {x}\"\n")
        }
        _ = try GuestRepairs.apply(to: fs, options: GuestFixtures.only("bootloader")).changes
        let grubCfg = try #require(try fs.readFile("/boot/grub/grub.cfg"))
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("rehost-grub-\(guest)-\(getpid()).cfg").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Data(grubCfg).write(to: URL(fileURLWithPath: path))
        let checker = try #require(Tool.find("grub-script-check"))
        let result = try Tool.run(checker, [path])
        #expect(result.status == 0, "\(result.stderr)")
    }
}
