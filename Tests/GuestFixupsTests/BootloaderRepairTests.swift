import Testing
@testable import GuestFixups

@Suite struct BootloaderRepairTests {
    @Test func centos5GetsLegacyAndNativeMenusForTheNonXenKernels() throws {
        let fs = GuestFixtures.centos5()
        let changes = try GuestRepairs.apply(to: fs, options: GuestFixtures.only("bootloader"))
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
        #expect(changes.map { "\($0.action.rawValue) \($0.path)" } == ["edited /boot/grub/grub.conf", "created /boot/grub/grub.cfg"])
    }

    @Test func debianMenuLstBecomesALinkAndArgumentsAreKept() throws {
        let fs = GuestFixtures.debian6()
        let options = RepairOptions(target: .virtualbox, rootReference: "UUID=77aa", rootFilesystemType: "ext3",
                                    skip: ["inittab", "securetty", "modprobe", "fstab", "blkid-cache", "network"],
                                    serialSpeed: 9600)
        let changes = try GuestRepairs.apply(to: fs, options: options)
        #expect(changes.map { "\($0.action.rawValue) \($0.path)" } == [
            "created /boot/grub/grub.conf", "symlinked /boot/grub/menu.lst", "symlinked /etc/grub.conf",
            "created /boot/grub/grub.cfg",
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
        _ = try GuestRepairs.apply(to: fs, options: GuestFixtures.only("bootloader"))
        let grubConf = try #require(fs.text("/boot/grub/grub.conf"))
        #expect(grubConf.contains("\tkernel /boot/vmlinuz-2.6.32-754.el6.x86_64 ro root=LABEL=/ crashkernel=auto "
            + "KEYTABLE=us rhgb quiet console=tty0 console=ttyS0,115200\n\tinitrd /boot/initramfs-2.6.32-754.el6.x86_64.img\n"))
        #expect(grubConf.contains("title Red Hat Enterprise Linux Server (2.6.32-754.el6.x86_64)\n"))
        #expect(!grubConf.contains(".hmac"))
    }

    @Test func missingBootGrubDirectoryIsCreated() throws {
        let fs = MemoryGuestFilesystem()
        fs.addFile("/boot/vmlinuz-4.19.0-6-amd64", "k")
        fs.addFile("/etc/os-release", "NAME=\"Debian GNU/Linux\"\nVERSION_ID=\"10\"\nID=debian\n")
        let changes = try GuestRepairs.apply(to: fs, options: GuestFixtures.only("bootloader"))
        #expect(changes.first == GuestChange(repair: "bootloader", path: "/boot/grub", action: .created))
        #expect(fs.node(at: "/boot/grub") == .directory(mode: 0o755, uid: 0, gid: 0))
        #expect(fs.text("/boot/grub/grub.cfg")?.contains(
            "menuentry 'Debian GNU/Linux (4.19.0-6-amd64)' {\n\tlinux /boot/vmlinuz-4.19.0-6-amd64 ro root=LABEL=/ "
                + "console=tty0 console=ttyS0,115200\n}\n") == true)
        #expect(try fs.entry(at: "/etc/grub.conf") == .symlink(target: "../boot/grub/grub.conf"))
    }

    @Test func symlinkedGrubCfgIsReplacedByARealFile() throws {
        let fs = GuestFixtures.centos5()
        fs.addSymlink("/boot/grub/grub.cfg", target: "grub.conf")
        _ = try GuestRepairs.apply(to: fs, options: GuestFixtures.only("bootloader"))
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
        #expect(throws: RepairError.onlyXenKernels(versions: ["2.6.18-398.el5xen"])) {
            try GuestRepairs.apply(to: fs, options: GuestFixtures.kvmOptions)
        }
        #expect(fs.mutationCount == writesBefore)
        #expect(RepairError.onlyXenKernels(versions: ["2.6.18-398.el5xen"]).description
            == "only Xen PV kernels found in /boot: 2.6.18-398.el5xen; install a non-Xen kernel in the guest first")
        // Without the bootloader repair, the others still run.
        var options = GuestFixtures.kvmOptions
        options.skip = ["bootloader"]
        #expect(try !GuestRepairs.apply(to: fs, options: options).isEmpty)
    }

    @Test func singleQuoteInTitleIsEscapedForGrub2() throws {
        let fs = MemoryGuestFilesystem()
        fs.addFile("/boot/vmlinuz-5.10", "k")
        fs.addFile("/etc/os-release", "NAME=\"Bob's Linux\"\n")
        _ = try GuestRepairs.apply(to: fs, options: GuestFixtures.only("bootloader"))
        #expect(fs.text("/boot/grub/grub.cfg")?.contains("menuentry 'Bob'\\''s Linux (5.10)' {") == true)
    }
}

@Suite struct RepairRunTests {
    static let guests: [(String, @Sendable () -> MemoryGuestFilesystem)] = [
        ("centos5", GuestFixtures.centos5), ("rhel6", GuestFixtures.rhel6), ("debian6", GuestFixtures.debian6),
    ]

    @Test(arguments: GuestRepairs.names.map(\.name))
    func eachRepairIsIdempotent(repair: String) throws {
        for (name, make) in Self.guests {
            let fs = make()
            _ = try GuestRepairs.apply(to: fs, options: GuestFixtures.only(repair))
            let after = fs.nodes
            let writes = fs.mutationCount
            #expect(try GuestRepairs.apply(to: fs, options: GuestFixtures.only(repair)) == [], "\(name)")
            #expect(fs.mutationCount == writes, "\(name)")
            #expect(fs.nodes == after, "\(name)")
        }
    }

    @Test func allRepairsTogetherAreIdempotentAndEachRanOnce() throws {
        for target in Target.allCases {
            let fs = GuestFixtures.centos5()
            let first = try GuestRepairs.apply(to: fs, options: RepairOptions(
                target: target, rootReference: target.firstPartitionDevice, rootFilesystemType: "ext3"))
            #expect(Set(first.map(\.repair)) == Set(GuestRepairs.names.map(\.name)))
            let writes = fs.mutationCount
            #expect(try GuestRepairs.apply(to: fs, options: RepairOptions(
                target: target, rootReference: target.firstPartitionDevice, rootFilesystemType: "ext3")) == [])
            #expect(fs.mutationCount == writes)
        }
    }

    @Test func skipSetIsHonoured() throws {
        let fs = GuestFixtures.centos5()
        var options = GuestFixtures.kvmOptions
        options.skip = ["fstab", "network"]
        let changes = try GuestRepairs.apply(to: fs, options: options)
        #expect(!changes.contains { $0.repair == "fstab" || $0.repair == "network" })
        #expect(fs.text("/etc/fstab") == GuestFixtures.centos5Fstab)
        #expect(fs.text("/etc/sysconfig/network-scripts/ifcfg-eth0") == GuestFixtures.centos5Ifcfg)
        #expect(changes.contains { $0.repair == "inittab" })
    }

    @Test func unknownSkipNameIsAnError() {
        #expect(throws: RepairError.self) {
            var options = GuestFixtures.kvmOptions
            options.skip = ["no-such-repair"]
            _ = try GuestRepairs.apply(to: GuestFixtures.centos5(), options: options)
        }
    }

    @Test func missingFilesAreNotErrors() throws {
        let fs = MemoryGuestFilesystem()
        fs.addFile("/boot/vmlinuz-3.2.0-4-amd64", "k")
        let changes = try GuestRepairs.apply(to: fs, options: GuestFixtures.kvmOptions)
        #expect(Set(changes.map(\.repair)) == ["bootloader"])
    }

    @Test func namesAreStableAndDescribed() {
        #expect(GuestRepairs.names.map(\.name)
            == ["inittab", "securetty", "modprobe", "fstab", "blkid-cache", "network", "bootloader"])
        #expect(GuestRepairs.names.allSatisfy { !$0.description.isEmpty && !$0.description.contains("\n") })
    }
}

@Suite struct RootReferenceTests {
    static func report(initrd: String?) -> GuestReport {
        let kernel = Kernel(version: "2.6.18-398.el5", path: "/boot/vmlinuz-2.6.18-398.el5", initrd: initrd, size: 1,
                            xenOnly: false)
        return GuestReport(os: OperatingSystem(family: .redhat, name: "CentOS", version: "5.11", majorVersion: 5, source: nil),
                           kernels: [kernel], bootableKernel: kernel, kernelProblem: nil, xenTraits: [],
                           bootloaderConfigs: [], initSystem: .sysvinit)
    }

    @Test func choices() {
        let report = Self.report(initrd: "/boot/initrd-2.6.18-398.el5.img")
        func resolve(_ choice: RootReferenceChoice, _ label: String?, _ target: Target = .kvm) -> String {
            RootReference.resolve(choice: choice, label: label, uuid: "9f3c", target: target, report: report)
        }
        #expect(resolve(.auto, "/") == "LABEL=/")
        #expect(resolve(.auto, "my root") == "UUID=9f3c")
        #expect(resolve(.auto, "") == "UUID=9f3c")
        #expect(resolve(.auto, nil) == "UUID=9f3c")
        #expect(resolve(.uuid, "/") == "UUID=9f3c")
        #expect(resolve(.label, "root") == "LABEL=root")
        #expect(resolve(.device, "/", .kvm) == "/dev/vda1")
        #expect(resolve(.device, "/", .virtualbox) == "/dev/sda1")
        #expect(resolve(.device, "/", .vmware) == "/dev/sda1")
        #expect(resolve(.device, "/", .generic) == "/dev/sda1")
    }

    @Test func autoWithoutInitrdUsesTheDevice() {
        #expect(RootReference.resolve(choice: .auto, label: "/", uuid: "9f3c", target: .kvm,
                                      report: Self.report(initrd: nil)) == "/dev/vda1")
    }
}
