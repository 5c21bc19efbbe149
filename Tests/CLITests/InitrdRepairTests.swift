import Foundation
import Testing
import TestSupport

/// The fixture's kernel is a bzImage named like a Xen kernel, beside a real Xen PV image; its
/// initrd is RHEL 5 mkinitrd-shaped (nash) and loads only xen-blkfront. Rehost must judge both
/// kernels by their bytes, add the target's drivers to the initrd from the guest's own
/// (compressed) modules, and the result must boot where the unrepaired guest does not.
@Suite(.serialized)
struct InitrdRepairTests {
    static func walk(_ image: String) throws -> [[String: Any]] {
        let result = try Command.run("/usr/bin/python3", ["\(Fixture.repositoryRoot)/Tests/Tools/initramfs-walk.py", image]).requireSuccess()
        let json = try JSONSerialization.jsonObject(with: Data(result.stdoutBytes)) as? [String: Any]
        return json?["members"] as? [[String: Any]] ?? []
    }

    static func entries(_ member: [String: Any]) -> [[String: Any]] { member["entries"] as? [[String: Any]] ?? [] }

    static func dump(_ guestPath: String, from image: String, to file: String) throws {
        try Command.run("debugfs", ["-R", "dump \(guestPath) \(file)", image]).requireSuccess()
        #expect(FileManager.default.fileExists(atPath: file), "debugfs could not dump \(guestPath)")
    }

    @Test func inspectJudgesKernelsByTheirBytes() throws {
        let fixture = try Fixture.xenInstance()
        let result = try Command.runRehost(["inspect", fixture.imagePath, "--json"], asUser: "nobody")
        #expect(result.status == 0, "\(result.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(result.stdoutBytes)) as? [String: Any]
        let guest = report?["guest"] as? [String: Any]
        let kernels = guest?["kernels"] as? [[String: Any]] ?? []
        let byPath = Dictionary(kernels.map { (($0["path"] as? String) ?? "", $0) }, uniquingKeysWith: { a, _ in a })

        let real = try #require(byPath[fixture["KERNEL_PATH"] ?? ""], "kernels: \(byPath.keys)")
        let image = real["image"] as? [String: Any]
        #expect(image?["format"] as? String == "bzImage")
        #expect(image?["bootsOnBIOS"] as? Bool == true)
        #expect(image?["release"] as? String == fixture["KERNEL_VERSION"], "the release comes from the image, not the file name")
        #expect(real["modulesDirectory"] as? String == "/lib/modules/\(fixture["KERNEL_VERSION"] ?? "?")")
        #expect((real["initrdDetails"] as? [String: Any])?["family"] as? String == "nash")
        let verdicts = real["verdicts"] as? [[String: Any]] ?? []
        let kvm = verdicts.first { $0["target"] as? String == "kvm" }
        #expect(kvm?["outcome"] as? String == "boots after repair", "\(kvm ?? [:])")
        #expect((kvm?["because"] as? String)?.contains("virtio_blk") == true)
        // The drivers come from the guest's own tree, compressed as it ships them.
        let buses = kvm?["buses"] as? [[String: Any]] ?? []
        let virtio = buses.first?["drivers"] as? [[String: Any]] ?? []
        #expect(virtio.contains { $0["name"] as? String == "virtio_blk" && ($0["path"] as? String)?.hasSuffix(".ko.xz") == true })

        let xen = try #require(byPath[fixture["XEN_KERNEL_PATH"] ?? ""])
        #expect((xen["image"] as? [String: Any])?["format"] as? String == "xenPV")
        #expect(((xen["verdicts"] as? [[String: Any]]) ?? []).allSatisfy { $0["outcome"] as? String == "does not boot" })
        #expect((guest?["bootableKernel"] as? [String: Any])?["path"] as? String == fixture["KERNEL_PATH"])

        let text = try Command.runRehost(["inspect", fixture.imagePath], asUser: "nobody")
        #expect(text.stdout.contains("xenPV: Xen PV image: gzip-compressed ELF with Xen ELF notes"), "\(text.stdout)")
        #expect(text.stdout.contains("kvm:          boots after repair: the initrd repair adds"), "\(text.stdout)")
    }

    @Test func convertedInitrdLoadsTheTargetDriversAndKeepsTheOriginal() throws {
        let c = try ConvertFixtureTests.converted()
        #expect(c.status == 0, "\(c.stderr)")
        let scratch = try TemporaryDirectory(prefix: "rehost-initrd-test")
        let initrdPath = c.fixture["INITRD_PATH"] ?? "?"
        let before = scratch.file("before.img"), after = scratch.file("after.img"), kept = scratch.file("kept.img")
        try Self.dump(initrdPath, from: c.fixture.imagePath, to: before)
        try Self.dump(initrdPath, from: c.partition, to: after)
        try Self.dump(initrdPath + ".pre-rehost", from: c.partition, to: kept)
        #expect(try Command.run("cmp", [before, kept]).status == 0, "the .pre-rehost copy must be the original, byte for byte")
        let original = try Data(contentsOf: URL(fileURLWithPath: before))
        let repaired = try Data(contentsOf: URL(fileURLWithPath: after))
        #expect(repaired.prefix(original.count) == original, "the original bytes stay in front, untouched")

        let members = try Self.walk(after)
        #expect(members.count == 2, "the original member and one appended: \(members.map { $0["compression"] ?? "?" })")
        let appended = Self.entries(members.last ?? [:])
        let names = appended.compactMap { $0["name"] as? String }
        for module in ["virtio", "virtio_ring", "virtio_pci", "virtio_blk", "virtio_scsi", "ata_piix", "libata", "ahci", "sd_mod", "scsi_mod"] {
            #expect(names.contains("lib/\(module).ko"), "lib/\(module).ko is not in the appended archive: \(names)")
        }
        #expect(!names.contains { $0.hasPrefix("lib/") && $0.hasSuffix(".xz") }, "modules are added decompressed")
        // The module added is the guest's own, decompressed.
        let guestModule = scratch.file("virtio_blk.ko.xz")
        let modules = "/lib/modules/\(c.fixture["KERNEL_VERSION"] ?? "?")"
        try Self.dump("\(modules)/kernel/drivers/block/virtio_blk.ko.xz", from: c.fixture.imagePath, to: guestModule)
        let plain = try Command.run("xz", ["-dc", guestModule]).requireSuccess().stdoutBytes
        let digest = try Command.run("sha256sum", [], stdin: plain).requireSuccess().stdout.prefix(64)
        #expect(appended.first { $0["name"] as? String == "lib/virtio_blk.ko" }?["sha256"] as? String == String(digest))

        // /init: the new insmods come after xen-blkfront's and before root is looked for, each
        // module after its dependencies.
        let initScript = try extractInit(after, scratch: scratch)
        let lines = initScript.split(separator: "\n").map(String.init)
        let insmods = lines.filter { $0.hasPrefix("insmod ") }.map { String($0.dropFirst("insmod /lib/".count).dropLast(3)) }
        func position(_ name: String) -> Int { insmods.firstIndex(of: name) ?? -1 }
        #expect(position("xen-blkfront") >= 0 && position("xen-blkfront") < position("virtio_blk"), "\(insmods)")
        for (dependency, module) in [("virtio", "virtio_blk"), ("virtio_ring", "virtio_blk"), ("virtio_pci", "virtio_blk"),
                                     ("scsi_mod", "sd_mod"), ("libata", "ata_piix"), ("libahci", "ahci")] {
            #expect(position(dependency) >= 0 && position(dependency) < position(module), "\(dependency) must load before \(module): \(insmods)")
        }
        let rootLine = lines.firstIndex { $0.hasPrefix("mkrootdev") } ?? -1
        let lastInsmod = lines.lastIndex { $0.hasPrefix("insmod") } ?? Int.max
        #expect(lastInsmod < rootLine)
        let changes = c.changes.filter { $0["repair"] as? String == "initrd" }.compactMap { $0["path"] as? String }
        #expect(changes.contains(initrdPath) && changes.contains(initrdPath + ".pre-rehost"), "\(changes)")
    }

    /// The last `init` in the image, as the kernel would leave it.
    func extractInit(_ image: String, scratch: TemporaryDirectory) throws -> String {
        let script = """
        import sys
        sys.path.insert(0, sys.argv[1])
        walker = __import__("initramfs-walk")
        data = open(sys.argv[2], "rb").read()
        init = None
        for member in walker.walk(data):
            raw = data[member["offset"]:member["offset"] + member["length"]]
            content = raw if member["compression"] == "none" else walker.decompress_member(data, member["offset"])[0]
            position = 0
            while position < len(content):
                if content[position] == 0:
                    position += 1
                    continue
                header = content[position:position + 110]
                namesize = int(header[94:102], 16); filesize = int(header[54:62], 16)
                name = content[position + 110:position + 110 + namesize - 1].decode()
                start = (position + 110 + namesize + 3) & ~3
                if name == "init":
                    init = content[start:start + filesize]
                position = (start + filesize + 3) & ~3
        sys.stdout.write(init.decode())
        """
        return try Command.run("/usr/bin/python3", ["-c", script, "\(Fixture.repositoryRoot)/Tests/Tools", image]).requireSuccess().stdout
    }

    /// Without the initrd repair the guest stops in its initrd on both buses; with it (the
    /// shared conversion, booted by ConvertFixtureTests.bootsFromItsOwnMBR) it boots.
    @Test(arguments: ["virtio", "ide"])
    func unrepairedInitrdDoesNotFindRoot(bus: String) throws {
        let fixture = try Fixture.xenInstance()
        let directory = "/tmp/rehost-initrd-unrepaired"
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o777])
        let disk = "\(directory)/skip-initrd-\(bus).raw"
        try? FileManager.default.removeItem(atPath: disk)
        let convert = try Command.runRehost(["convert", fixture.imagePath, "-o", disk, "--skip", "initrd", "-q"], asUser: "nobody")
        #expect(convert.status == 0, "\(convert.stderr)")
        #expect(convert.stdout.contains("--skip initrd"), "a warning says the kernel needs the initrd repair: \(convert.stdout)")
        let log = "\(directory)/serial-\(bus).log"
        let boot = try Command.run("/bin/bash", ["\(Fixture.repositoryRoot)/Fixtures/boot.sh", disk, "--bus", bus, "--log", log,
                                                 "--timeout", "240"], timeout: .seconds(300), asUser: "nobody")
        let serial = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(boot.status != 0, "the unrepaired guest should not boot on \(bus)")
        #expect(serial.contains("REHOST-INITRD-FAIL: root device"), "\(serial.suffix(2000))")
        try? FileManager.default.removeItem(atPath: disk)
    }
}
