import Foundation
import Testing
@testable import GuestFixups

@Suite struct GuestInspectorTests {
    @Test func centos5FindsEveryXenTrait() throws {
        let report = try GuestInspector.inspect(GuestFixtures.centos5())
        #expect(report.os == OperatingSystem(family: .redhat, name: "CentOS", version: "5.11", majorVersion: 5,
                                             source: "/etc/redhat-release"))
        #expect(report.initSystem == .sysvinit)
        #expect(report.bootloaderConfigs == ["/boot/grub/grub.conf", "/boot/grub/menu.lst", "/etc/grub.conf"])
        let found = report.xenTraits.map { "\($0.kind.rawValue) \($0.file):\($0.line.map(String.init) ?? "-")" }
        #expect(found == [
            "consoleGetty /etc/inittab:18",
            "secureTTY /etc/securetty:6",
            "modprobeAlias /etc/modprobe.conf:1",
            "modprobeAlias /etc/modprobe.conf:2",
            "modprobeAlias /etc/modprobe.conf:3",
            "fstabDevice /etc/fstab:1",
            "fstabDevice /etc/fstab:2",
            "fstabDevice /etc/fstab:8",
            "hardwareAddress /etc/sysconfig/network-scripts/ifcfg-eth0:4",
            "hardwareAddress /etc/sysconfig/network-scripts/ifcfg-eth0:6",
            "persistentNetRules /etc/udev/rules.d/70-persistent-net.rules:-",
            "blkidCache /etc/blkid/blkid.tab:-",
            "blkidCache /etc/blkid/blkid.tab.old:-",
        ])
        #expect(report.xenTraits[0].text == "co:2345:respawn:/sbin/agetty xvc0 9600 vt100-nav")
    }

    @Test func kernelsAreSortedAndJudgedByTheirBytes() throws {
        let report = try GuestInspector.inspect(GuestFixtures.centos5())
        #expect(report.kernels.map(\.version) == ["2.6.18-398.el5xen", "2.6.18-398.el5", "2.6.18-8.el5"])
        #expect(report.kernels.map(\.image.format) == [.xenPV, .bzImage, .bzImage])
        #expect(report.kernels.map(\.xenOnly) == [true, false, false])
        let chosen = try #require(report.bootableKernel)
        #expect(chosen.path == "/boot/vmlinuz-2.6.18-398.el5")
        #expect(chosen.initrd == "/boot/initrd-2.6.18-398.el5.img")
        #expect(chosen.release == "2.6.18-398.el5")
        #expect(chosen.image.bootProtocol == "2.15")
        #expect(chosen.verdict(for: .kvm)?.outcome == .boots)
        #expect(report.kernels[0].verdicts.allSatisfy { $0.outcome == .doesNotBoot && $0.because.hasPrefix("Xen PV image") })
        #expect(report.kernelProblem == nil)
    }

    @Test func aNameIsOnlyAHint() throws {
        let fs = MemoryGuestFilesystem()
        // A pvops bzImage named like RHEL 5's Xen kernel boots; a PV image with a plain name does not.
        fs.addFile("/boot/vmlinuz-2.6.18-400.el5xen", bytes: SyntheticKernels.bzImage(release: "2.6.18-400.el5xen"))
        fs.addFile("/lib/modules/2.6.18-400.el5xen/modules.builtin", SyntheticKernels.builtinDrivers.joined(separator: "\n"))
        fs.addFile("/boot/vmlinuz-9.9.9", bytes: SyntheticKernels.xenPV())
        fs.addFile("/boot/vmlinuz-1.0", "not a kernel at all")
        let report = try GuestInspector.inspect(fs)
        #expect(report.kernels.map(\.image.format) == [.xenPV, .bzImage, .unknown])
        #expect(report.bootableKernel?.path == "/boot/vmlinuz-2.6.18-400.el5xen")
    }

    @Test func initrdNamingSchemes() throws {
        let fs = MemoryGuestFilesystem()
        fs.addFile("/boot/vmlinuz-a", "k"); fs.addFile("/boot/initrd-a.img", "i")
        fs.addFile("/boot/vmlinuz-b", "k"); fs.addFile("/boot/initramfs-b.img", "i")
        fs.addFile("/boot/vmlinuz-c", "k"); fs.addFile("/boot/initrd.img-c", "i")
        fs.addFile("/boot/vmlinuz-d", "k"); fs.addFile("/boot/initrd-d", "i")
        fs.addFile("/boot/vmlinuz-e", "k")
        fs.addSymlink("/boot/vmlinuz", target: "vmlinuz-e")
        let initrds = try GuestInspector.inspect(fs).kernels.map { "\($0.version)=\($0.initrd ?? "none")" }
        #expect(initrds == ["e=none", "d=/boot/initrd-d", "c=/boot/initrd.img-c", "b=/boot/initramfs-b.img",
                            "a=/boot/initrd-a.img"])
    }

    @Test func onlyXenKernelsIsReported() throws {
        let fs = MemoryGuestFilesystem()
        for version in ["2.6.18-398.el5xen", "2.6.21.7-2.fc8xen", "2.6.16-xenU", "2.6.32-312-ec2"] {
            SyntheticKernels.install(version, in: fs, xenPV: true)
        }
        let report = try GuestInspector.inspect(fs)
        #expect(report.kernels.allSatisfy { $0.xenOnly })
        #expect(report.bootableKernel == nil)
        #expect(report.kernelProblem?.hasPrefix("no kernel in /boot boots on kvm: /boot/vmlinuz-2.6.32-312-ec2: Xen PV image") == true)
        #expect(report.kernelProblem?.contains("2.6.18-398.el5xen") == true)
        #expect(try GuestInspector.inspect(MemoryGuestFilesystem()).kernelProblem == RepairError.noKernels.description)
    }

    @Test func rhel6IsUpstartWithModprobeDAliases() throws {
        let report = try GuestInspector.inspect(GuestFixtures.rhel6())
        #expect(report.os.name == "Red Hat Enterprise Linux Server")
        #expect(report.os.version == "6.10")
        #expect(report.os.majorVersion == 6)
        #expect(report.initSystem == .upstart)
        #expect(report.kernels.map(\.version) == ["2.6.32-754.el6.x86_64", "2.6.32-71.el6.x86_64"])
        let aliases = report.xenTraits.filter { $0.kind == .modprobeAlias }.map(\.text)
        // The symlinked file is not one of the guest's own modprobe.d files.
        #expect(aliases == ["alias scsi_hostadapter xen-blkfront", "alias eth0 xen-netfront"])
    }

    @Test func distributionFiles() throws {
        func os(_ files: [String: String]) throws -> OperatingSystem {
            let fs = MemoryGuestFilesystem()
            for (path, text) in files { fs.addFile(path, text) }
            return try GuestInspector.inspect(fs).os
        }
        #expect(try os(["/etc/debian_version": "6.0.10\n"])
            == OperatingSystem(family: .debian, name: "Debian GNU/Linux", version: "6.0.10", majorVersion: 6,
                               source: "/etc/debian_version"))
        #expect(try os(["/etc/os-release": "NAME=\"Ubuntu\"\nVERSION_ID=\"14.04\"\nID=ubuntu\nID_LIKE=debian\n",
                        "/etc/debian_version": "jessie/sid\n"])
            == OperatingSystem(family: .debian, name: "Ubuntu", version: "14.04", majorVersion: 14, source: "/etc/os-release"))
        #expect(try os(["/etc/SuSE-release": "SUSE Linux Enterprise Server 11 (x86_64)\nVERSION = 11\nPATCHLEVEL = 4\n"])
            == OperatingSystem(family: .suse, name: "SUSE Linux Enterprise Server", version: "11.4", majorVersion: 11,
                               source: "/etc/SuSE-release"))
        #expect(try os(["/etc/lsb-release": "DISTRIB_ID=Ubuntu\nDISTRIB_RELEASE=10.04\n", "/etc/debian_version": "squeeze/sid\n"])
            == OperatingSystem(family: .debian, name: "Ubuntu", version: "10.04", majorVersion: 10, source: "/etc/lsb-release"))
        #expect(try os(["/etc/os-release": "NAME=\"CentOS Linux\"\nVERSION_ID=\"7\"\nID=\"centos\"\nID_LIKE=\"rhel fedora\"\n"]).family
            == .redhat)
        #expect(try os([:]) == OperatingSystem(family: .other, name: "Linux", version: nil, majorVersion: nil, source: nil))
    }

    @Test func initSystems() throws {
        let systemd = MemoryGuestFilesystem()
        systemd.addFile("/usr/lib/systemd/systemd", "ELF")
        systemd.addSymlink("/sbin/init", target: "../usr/lib/systemd/systemd")
        systemd.addFile("/etc/inittab", "# unused\n")
        #expect(try GuestInspector.inspect(systemd).initSystem == .systemd)
        #expect(try GuestInspector.inspect(GuestFixtures.debian6()).initSystem == .sysvinit)
        #expect(try GuestInspector.inspect(MemoryGuestFilesystem()).initSystem == .unknown)
    }

    @Test func reportEncodesAsJSONAndBack() throws {
        // The CLI prints the report as JSON; it must survive a round trip through Codable.
        let report = try GuestInspector.inspect(GuestFixtures.centos5())
        let encoded = try JSONDecoder().decode(GuestReport.self, from: JSONEncoder().encode(report))
        #expect(encoded == report)
    }
}

@Suite struct KernelVersionTests {
    @Test(arguments: [
        ("2.6.18-8.el5", "2.6.18-398.el5"),
        ("6.1.0-9-amd64", "6.1.0-27-amd64"),
        ("2.6.32-71.el6.x86_64", "2.6.32-754.el6.x86_64"),
        ("2.6.32-5-amd64", "3.2.0-4-amd64"),
        ("2.6.18", "2.6.18-8.el5"),
        ("3.10.0-1160.el7.x86_64", "4.18.0-80.el8.x86_64"),
        ("2.6.18-398.el5", "2.6.18-0398.1.el5"),
        ("1.0a", "1.0.1"),
        ("5.4.0-99999999999999999999999", "5.4.0-100000000000000000000000"),
    ])
    func olderThan(older: String, newer: String) {
        #expect(KernelVersion.isOlder(older, than: newer))
        #expect(!KernelVersion.isOlder(newer, than: older))
        #expect(KernelVersion.compare(older, older) == 0)
    }

    @Test func leadingZerosAreEqual() {
        #expect(KernelVersion.compare("2.6.018", "2.6.18") == 0)
    }
}
