import Foundation
import Testing
import TestSupport

/// `convert --firmware uefi|both`: the fixture converted to a GPT disk with an EFI System
/// Partition, read back with gdisk, dosfstools, mtools and e2fsprogs, and booted from its own disk
/// under OVMF (virtio, and AHCI on q35) and, for `both`, under SeaBIOS.
@Suite(.serialized)
struct FirmwareBootTests {
    static let directory = "/tmp/rehost-firmware-test"

    struct Converted: Sendable {
        let firmware: String
        let disk: String
        let reportJSON: [UInt8]
        let stderr: String
        let status: Int32

        var report: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(reportJSON))) as? [String: Any] ?? [:] }
        var partitions: [[String: Any]] { report["partitions"] as? [[String: Any]] ?? [] }
        func start(of mountPoint: String) -> Int {
            (partitions.first { $0["mountPoint"] as? String == mountPoint }?["start"] as? NSNumber)?.intValue ?? -1
        }
        func size(of mountPoint: String) -> Int {
            (partitions.first { $0["mountPoint"] as? String == mountPoint }?["size"] as? NSNumber)?.intValue ?? -1
        }
        var root: String { "\(disk)?offset=\(start(of: "/"))" }
        var esp: String { "\(disk)@@\(start(of: "/boot/efi"))" }
    }

    nonisolated(unsafe) static var shared: [String: Converted] = [:]
    static let lock = NSLock()

    /// One conversion per firmware, shared by the tests; `both` also writes every other format qemu boots, `uefi` an OVA.
    static func converted(_ firmware: String) throws -> Converted {
        lock.lock()
        defer { lock.unlock() }
        if let made = shared[firmware] { return made }
        let fixture = try Fixture.xenInstance()
        if shared.isEmpty {
            try? FileManager.default.removeItem(atPath: directory)
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o777])
        }
        let disk = "\(directory)/\(firmware).raw"
        let more = firmware == "both" ? ["qcow2", "vmdk", "vdi", "vhd", "vhdx"].flatMap { ["-o", "\(directory)/\(firmware).\($0)"] }
            : firmware == "uefi" ? ["-o", "\(directory)/\(firmware).ova"] : []
        let started = Date()
        let result = try Command.runRehost(["convert", fixture.imagePath, "-o", disk] + more + ["--firmware", firmware, "--json"],
                                           asUser: "nobody")
        print("FirmwareBootTests: convert --firmware \(firmware) took \(String(format: "%.1f", Date().timeIntervalSince(started))) s")
        let made = Converted(firmware: firmware, disk: disk, reportJSON: result.stdoutBytes, stderr: result.stderr,
                             status: result.status)
        shared[firmware] = made
        return made
    }

    static func debugfs(_ request: String, _ image: String) throws -> String {
        try Command.run("debugfs", ["-R", request, image]).requireSuccess().stdout
    }

    @Test(arguments: ["uefi", "both"])
    func gptAndFilesystemsAreClean(firmware: String) throws {
        let c = try Self.converted(firmware)
        #expect(c.status == 0, "rehost convert --firmware \(firmware) failed: \(c.stderr)")
        let verify = try Command.run("sgdisk", ["-v", c.disk])
        #expect(verify.status == 0 && verify.stdout.contains("No problems found"), "sgdisk -v: \(verify.stdout)\(verify.stderr)")
        let print = try Command.run("sgdisk", ["-p", c.disk]).requireSuccess().stdout
        let codes = print.split(separator: "\n").compactMap { line -> String? in
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 6, Int(fields[0]) != nil else { return nil }
            return String(fields[5])
        }
        #expect(codes == (firmware == "both" ? ["EF02", "EF00", "8300"] : ["EF00", "8300"]), "\(print)")

        // The ESP: fsck.fat on a copy of its bytes, mdir on the disk itself.
        let espCopy = "\(Self.directory)/\(firmware)-esp.img"
        try Command.run("dd", ["if=\(c.disk)", "of=\(espCopy)", "bs=1M", "skip=\(c.start(of: "/boot/efi") >> 20)",
                               "count=\(c.size(of: "/boot/efi") >> 20)", "status=none"]).requireSuccess()
        let fsck = try Command.run("fsck.fat", ["-n", espCopy])
        #expect(fsck.status == 0, "fsck.fat -n: \(fsck.stdout)\(fsck.stderr)")
        let boot = try Command.run("mdir", ["-i", c.esp, "::/EFI/BOOT"])
        #expect(boot.status == 0 && boot.stdout.contains("BOOTX64"), "mdir: \(boot.stdout)\(boot.stderr)")
        let vendor = try Command.run("mdir", ["-i", c.esp, "::/EFI/rehost"])
        #expect(vendor.status == 0 && vendor.stdout.contains("grubx64"), "mdir: \(vendor.stdout)\(vendor.stderr)")

        let e2fsck = try Command.run("e2fsck", ["-fn", c.root])
        #expect(e2fsck.status == 0, "e2fsck -fn: \(e2fsck.stdout)\(e2fsck.stderr)")
        // fstab mounts the ESP by its volume ID, and /boot/efi exists.
        let espUUID = c.partitions.first { $0["mountPoint"] as? String == "/boot/efi" }?["uuid"] as? String ?? "?"
        let blkid = try Command.run("blkid", ["-p", "-o", "value", "-s", "UUID", espCopy]).stdout
        #expect(blkid.trimmingCharacters(in: .whitespacesAndNewlines) == espUUID)
        let fstab = try Self.debugfs("cat /etc/fstab", c.root)
        // The fixture has no fsck.vfat, so the ESP is not checked at boot (pass 0).
        #expect(fstab.contains("UUID=\(espUUID)\t/boot/efi\tvfat\tumask=0077\t0 0"), "\(fstab)")
        #expect(try Self.debugfs("stat /boot/efi", c.root).contains("Type: directory"))
        let grubCfg = try Self.debugfs("cat /boot/grub/grub.cfg", c.root)
        #expect(grubCfg.contains("root=LABEL=/"), "\(grubCfg)")
        #expect(grubCfg.contains("(prefix (hd0,gpt\(firmware == "both" ? 3 : 2))/boot/grub)"), "\(grubCfg)")
        // grub.conf, for the guest's own tools, names the same partition in GRUB legacy's 0-based form.
        let grubConf = try Self.debugfs("cat /boot/grub/grub.conf", c.root)
        #expect(grubConf.contains("\troot (hd0,\(firmware == "both" ? 2 : 1))\n") && !grubConf.contains("(hd0,0)"), "\(grubConf)")
    }

    /// `--root-ref device` names the root by its GPT partition number.
    @Test(arguments: [("uefi", "/dev/vda2"), ("both", "/dev/vda3"), ("bios", "/dev/vda1"), ("auto", "/dev/vda3")])
    func deviceRootReferenceCountsTheBootPartitions(firmware: String, device: String) throws {
        let fixture = try Fixture.xenInstance()
        let result = try Command.runRehost(["convert", fixture.imagePath, "-o", "\(Self.directory)-dry.raw", "--firmware", firmware,
                                            "--root-ref", "device", "--dry-run", "--json"], asUser: "nobody")
        #expect(result.status == 0, "\(result.stderr)")
        let report = (try? JSONSerialization.jsonObject(with: Data(result.stdoutBytes))) as? [String: Any] ?? [:]
        #expect(report["rootReference"] as? String == device)
    }

    /// Boots: (firmware of the disk, firmware of the VM, bus, format).
    @Test(arguments: [("uefi", "uefi", "virtio", "raw"), ("both", "uefi", "virtio", "raw"), ("both", "uefi", "ahci", "raw"),
                      ("both", "bios", "virtio", "raw"), ("both", "uefi", "virtio", "qcow2"), ("both", "uefi", "virtio", "vmdk"),
                      ("both", "uefi", "virtio", "vdi"), ("both", "uefi", "virtio", "vpc"), ("both", "uefi", "virtio", "vhdx")])
    func bootsFromItsOwnDisk(disk firmware: String, vm: String, bus: String, format: String) throws {
        let c = try Self.converted(firmware)
        try #require(c.status == 0, "\(c.stderr)")
        // qemu calls VHD "vpc".
        let image = format == "raw" ? c.disk : "\(Self.directory)/\(firmware).\(format == "vpc" ? "vhd" : format)"
        let log = "\(Self.directory)/serial-\(firmware)-\(vm)-\(bus)-\(format).log"
        let started = Date()
        let boot = try Command.run("/bin/bash", ["\(Fixture.repositoryRoot)/Fixtures/boot.sh", image, "--format", format,
                                                 "--bus", bus, "--firmware", vm, "--log", log, "--timeout", "240"],
                                   timeout: .seconds(300), asUser: "nobody")
        print("FirmwareBootTests: \(firmware) disk (\(format)) under \(vm == "uefi" ? "OVMF" : "SeaBIOS") on \(bus): \(String(format: "%.1f", Date().timeIntervalSince(started))) s")
        // OVMF's console output is not UTF-8 throughout.
        let serial = String(decoding: (try? Data(contentsOf: URL(fileURLWithPath: log))) ?? Data(), as: UTF8.self)
        #expect(boot.status == 0, "no boot marker from the \(firmware) disk under \(vm) on \(bus):\n\(boot.stdout)\(boot.stderr)")
        #expect(serial.contains("REHOST-BOOT-OK"))
        let number = firmware == "both" ? 3 : 2
        let device = (bus == "virtio" ? "/dev/vda" : "/dev/sda") + String(number)
        #expect(serial.contains("root-mount=\(device) / "), "the root should be mounted from \(device)")
    }

    /// A boot kernel without an EFI stub ("MZ" cleared) is refused for uefi and both, with one
    /// line and before anything is written; bios still takes it.
    @Test func kernelWithoutEFIStubIsRefused() throws {
        let fixture = try Fixture.xenInstance()
        let work = "\(Self.directory)-nostub"
        try? FileManager.default.removeItem(atPath: work)
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o777])
        // The kernel convert boots (the fixture names its Debian kernel vmlinuz-RELEASE-xen).
        let inspected = try Command.runRehost(["inspect", fixture.imagePath, "--json"], asUser: "nobody").requireSuccess()
        let json = (try? JSONSerialization.jsonObject(with: Data(inspected.stdoutBytes))) as? [String: Any] ?? [:]
        let bootPath = ((json["guest"] as? [String: Any])?["bootableKernel"] as? [String: Any])?["path"] as? String ?? "?"
        let name = String(bootPath.split(separator: "/").last ?? "?")
        let kernel = "\(work)/\(name)"
        try Command.run("debugfs", ["-R", "dump \(bootPath) \(kernel)", fixture.imagePath]).requireSuccess()
        try Command.run("/bin/sh", ["-c", "printf '\\000\\000' | dd of=\(kernel) bs=1 seek=0 conv=notrunc status=none"]).requireSuccess()
        let image = "\(work)/nostub.img"
        try Command.run("cp", ["--sparse=always", fixture.imagePath, image]).requireSuccess()
        let script = "\(work)/edit.debugfs"
        try Data(["cd /boot", "rm \(name)", "write \(kernel) \(name)"].joined(separator: "\n").utf8)
            .write(to: URL(fileURLWithPath: script))
        try Command.run("debugfs", ["-w", "-f", script, image]).requireSuccess()
        try Command.run("chmod", ["644", image]).requireSuccess()

        let inspect = try Command.runRehost(["inspect", image], asUser: "nobody")
        #expect(inspect.stdout.contains("firmware:     BIOS only"), "\(inspect.stdout)")
        for firmware in ["uefi", "both"] {
            let output = "\(work)/out-\(firmware).raw"
            let result = try Command.runRehost(["convert", image, "-o", output, "--firmware", firmware], asUser: "nobody")
            #expect(result.status == 1)
            #expect(result.stderr.split(separator: "\n").count == 1, "one line: \(result.stderr)")
            #expect(result.stderr.contains("--firmware \(firmware): the boot kernel \(bootPath) cannot boot under UEFI: it has no EFI stub"),
                    "\(result.stderr)")
            #expect(!FileManager.default.fileExists(atPath: output), "nothing written")
        }
        // auto falls back to bios for this kernel, and says why.
        let auto = try Command.runRehost(["convert", image, "-o", "\(work)/auto.raw", "--firmware", "auto", "--dry-run", "--json"],
                                         asUser: "nobody")
        #expect(auto.status == 0, "\(auto.stderr)")
        let report = (try? JSONSerialization.jsonObject(with: Data(auto.stdoutBytes))) as? [String: Any] ?? [:]
        #expect(report["firmware"] as? String == "bios")
        #expect((report["firmwareReason"] as? String)?.contains("has no EFI stub, so bios") == true, "\(report["firmwareReason"] ?? "")")
    }

    /// `--size` is still the whole disk: the boot partitions and the backup GPT come out of it;
    /// a size they leave too little of is refused with one line, nothing written.
    @Test func sizeIsTheWholeGPTDisk() throws {
        let fixture = try Fixture.xenInstance()
        _ = try Self.converted("uefi")   // makes the directory
        let disk = "\(Self.directory)/sized.raw"
        let result = try Command.runRehost(["convert", fixture.imagePath, "-o", disk, "--size", "1G", "--firmware", "uefi", "-q"],
                                           asUser: "nobody")
        #expect(result.status == 0, "\(result.stderr)")
        let size = (try FileManager.default.attributesOfItem(atPath: disk)[.size] as? NSNumber)?.intValue
        #expect(size == 1 << 30)
        #expect(try Command.run("sgdisk", ["-v", disk]).stdout.contains("No problems found"))
        let small = "\(Self.directory)/small.raw"
        let refused = try Command.runRehost(["convert", fixture.imagePath, "-o", small, "--size", "100M", "--firmware", "both"],
                                            asUser: "nobody")
        #expect(refused.status == 1)
        #expect(refused.stderr.split(separator: "\n").count == 1, "\(refused.stderr)")
        #expect(refused.stderr.contains("--size 100 MiB is too small for --firmware both"), "\(refused.stderr)")
        #expect(!FileManager.default.fileExists(atPath: small))
    }

    /// `--keep-layout` with `both`: /boot, / and /var on GPT partitions 3 to 5 behind the boot
    /// partitions; GRUB x86_64-efi finds /boot by UUID and reads /grub there, and the kernel mounts
    /// / from partition 4.
    @Test func keptLayoutBootsUnderOVMF() throws {
        let fixture = try Fixture.lvmGuest(.separateVar)
        _ = try Self.converted("uefi")   // makes the directory
        let disk = "\(Self.directory)/keep-layout-both.raw"
        let result = try Command.runRehost(["convert", fixture.imagePath, "-o", disk, "--keep-layout", "--firmware", "both", "--json"],
                                           asUser: "nobody")
        try #require(result.status == 0, "\(result.stderr)")
        let verify = try Command.run("sgdisk", ["-v", disk])
        #expect(verify.stdout.contains("No problems found"), "\(verify.stdout)")
        let log = "\(Self.directory)/serial-keep-layout-both.log"
        let started = Date()
        let boot = try Command.run("/bin/bash", ["\(Fixture.repositoryRoot)/Fixtures/boot.sh", disk, "--format", "raw", "--bus", "virtio",
                                                 "--firmware", "uefi", "--log", log, "--timeout", "240"],
                                   timeout: .seconds(300), asUser: "nobody")
        print("FirmwareBootTests: keep-layout both disk under OVMF on virtio: \(String(format: "%.1f", Date().timeIntervalSince(started))) s")
        let serial = String(decoding: (try? Data(contentsOf: URL(fileURLWithPath: log))) ?? Data(), as: UTF8.self)
        #expect(boot.status == 0, "\(boot.stdout)\(boot.stderr)")
        #expect(serial.contains("cmdline=BOOT_IMAGE=/vmlinuz-"), "\(serial.suffix(2000))")
        #expect(serial.contains("root-mount=/dev/vda4 / "))
    }

    /// `--reproducible`: the GPT GUIDs, the ESP's volume ID and dates, and GRUB's images come out
    /// the same twice (with another seed's run as the control).
    @Test func bothDiskIsReproducible() throws {
        let fixture = try Fixture.xenInstance()
        let work = "\(Self.directory)-reproducible"
        try? FileManager.default.removeItem(atPath: work)
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        var digests: [String] = []
        for run in ["a", "b"] {
            let disk = "\(work)/\(run).raw"
            let result = try Command.run(try Command.rehostExecutable(),
                                         ["convert", fixture.imagePath, "-o", disk, "--firmware", "both", "--reproducible", "-q"])
            #expect(result.status == 0, "\(result.stderr)")
            digests.append(try Command.run("sha256sum", [disk]).requireSuccess().stdout.prefix(64).description)
        }
        #expect(digests[0] == digests[1], "two --reproducible runs differ")
        // Each GUID derived for a purpose of its own: the disk's and the three partitions' all differ.
        var guids: Set<String> = []
        let table = try Command.run("sgdisk", ["-p", "\(work)/a.raw"]).requireSuccess().stdout
        guids.formUnion(table.split(separator: "\n").filter { $0.hasPrefix("Disk identifier (GUID): ") }
            .map { String($0.dropFirst("Disk identifier (GUID): ".count)) })
        for number in 1...3 {
            let info = try Command.run("sgdisk", ["-i", "\(number)", "\(work)/a.raw"]).requireSuccess().stdout
            guids.formUnion(info.split(separator: "\n").filter { $0.hasPrefix("Partition unique GUID: ") }
                .map { String($0.dropFirst("Partition unique GUID: ".count)) })
        }
        #expect(guids.count == 4, "\(guids)")
    }

    /// The fixture's real Debian kernel has an EFI stub, and inspect says so.
    /// A UEFI-only disk in an OVA: its machine says `firmware = efi` to VMware.
    @Test func theOVAOfAUEFIDiskDeclaresEFI() throws {
        let uefi = try Self.converted("uefi")
        #expect(uefi.status == 0, "\(uefi.stderr)")
        let ovf = try Command.run("tar", ["-xOf", "\(Self.directory)/uefi.ova", "--wildcards", "*.ovf"]).requireSuccess().stdout
        #expect(ovf.contains("vmw:key=\"firmware\" vmw:value=\"efi\""), "\(ovf)")
    }

    @Test func inspectSaysWhichFirmwareTheKernelBootsUnder() throws {
        let fixture = try Fixture.xenInstance()
        let inspect = try Command.runRehost(["inspect", fixture.imagePath], asUser: "nobody")
        #expect(inspect.status == 0)
        #expect(inspect.stdout.contains("firmware:     BIOS and UEFI (boot protocol 2."), "\(inspect.stdout)")
    }
}
