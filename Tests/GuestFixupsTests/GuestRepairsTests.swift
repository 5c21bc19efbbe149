import KernelPackages
import Testing
@testable import GuestFixups

@Suite struct RepairRunTests {
    static let guests: [(String, @Sendable () -> MemoryGuestFilesystem)] = [
        ("centos5", GuestFixtures.centos5), ("rhel6", GuestFixtures.rhel6), ("debian6", GuestFixtures.debian6),
    ]

    @Test(arguments: GuestRepairs.names.map(\.name))
    func eachRepairIsIdempotent(repair: String) throws {
        for (name, make) in Self.guests {
            let fs = make()
            _ = try GuestRepairs.apply(to: fs, options: GuestFixtures.only(repair)).changes
            let after = fs.nodes
            let writes = fs.mutationCount
            #expect(try GuestRepairs.apply(to: fs, options: GuestFixtures.only(repair)).changes == [], "\(name)")
            #expect(fs.mutationCount == writes, "\(name)")
            let unchanged = fs.nodes == after
            #expect(unchanged, "\(name)")
        }
    }

    @Test func allRepairsTogetherAreIdempotentAndEachRanOnce() throws {
        for target in Target.allCases {
            let fs = GuestFixtures.centos5()
            let first = try GuestRepairs.apply(to: fs, options: RepairOptions(
                target: target, rootReference: target.firstPartitionDevice, rootFilesystemType: "ext3")).changes
            // The in-memory kernels have every driver built in, so the initrd needs nothing here
            // (InitrdRepairTests converts a guest whose initrd does), and this guest has no SELinux
            // (SELinuxRepairTests).
            #expect(Set(first.map(\.repair)) == Set(GuestRepairs.names.map(\.name)).subtracting(["initrd", "selinux"]))
            let writes = fs.mutationCount
            #expect(try GuestRepairs.apply(to: fs, options: RepairOptions(
                target: target, rootReference: target.firstPartitionDevice, rootFilesystemType: "ext3")).changes == [])
            #expect(fs.mutationCount == writes)
        }
    }

    @Test func skipSetIsHonoured() throws {
        let fs = GuestFixtures.centos5()
        var options = GuestFixtures.kvmOptions
        options.skip = ["fstab", "network"]
        let changes = try GuestRepairs.apply(to: fs, options: options).changes
        #expect(!changes.contains { $0.repair == "fstab" || $0.repair == "network" })
        #expect(fs.text("/etc/fstab") == GuestFixtures.centos5Fstab)
        #expect(fs.text("/etc/sysconfig/network-scripts/ifcfg-eth0") == GuestFixtures.centos5Ifcfg)
        #expect(changes.contains { $0.repair == "inittab" })
    }

    @Test func unknownSkipNameIsAnError() {
        #expect(throws: RepairError.self) {
            var options = GuestFixtures.kvmOptions
            options.skip = ["no-such-repair"]
            _ = try GuestRepairs.apply(to: GuestFixtures.centos5(), options: options).changes
        }
    }

    @Test func missingFilesAreNotErrors() throws {
        let fs = MemoryGuestFilesystem()
        SyntheticKernels.install("3.2.0-4-amd64", in: fs)
        let changes = try GuestRepairs.apply(to: fs, options: GuestFixtures.kvmOptions).changes
        #expect(Set(changes.map(\.repair)) == ["bootloader"])
    }

    @Test func namesAreStableAndDescribed() {
        #expect(GuestRepairs.names.map(\.name)
            == ["inittab", "securetty", "modprobe", "fstab", "blkid-cache", "network", "initrd", "bootloader", "selinux"])
        #expect(GuestRepairs.names.allSatisfy { !$0.description.isEmpty && !$0.description.contains("\n") })
        #expect(Set(GuestRepairs.names.map(\.name)).count == GuestRepairs.names.count)
    }
}

@Suite struct RootReferenceTests {
    static func report(initrd: String?) -> GuestReport {
        let image = KernelImage.identify(SyntheticKernels.bzImage(release: "2.6.18-398.el5"), path: "/boot/vmlinuz-2.6.18-398.el5")
        let kernel = Kernel(version: "2.6.18-398.el5", path: "/boot/vmlinuz-2.6.18-398.el5", initrd: initrd, size: 1,
                            image: image, release: "2.6.18-398.el5", modulesDirectory: nil, initrdDetails: nil, verdicts: [])
        return GuestReport(os: OperatingSystem(family: .redhat, name: "CentOS", version: "5.11", majorVersion: 5, source: nil),
                           kernels: [kernel], target: .kvm, bootableKernel: kernel, kernelProblem: nil, xenTraits: [],
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
