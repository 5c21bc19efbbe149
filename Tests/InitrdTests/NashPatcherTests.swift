import Foundation
import Initrd
import KernelModules
import Testing
import TestSupport

/// RHEL 5 mkinitrd images: nash's /init insmods /lib/<name>.ko by path, so the patch adds the
/// files and insmod lines; the result is read back by the independent walker.
@Suite struct NashPatcherTests {
    static let header = """
    #!/bin/nash

    mount -t proc /proc /proc
    setquiet
    echo Mounting proc filesystem
    mount -t sysfs /sys /sys
    mount -o mode=0755 -t tmpfs /dev /dev
    mknod /dev/console c 5 1
    hotplug
    echo Creating block device nodes.
    mkblkdevs
    """
    static let footer = """
    echo Waiting for driver initialization.
    stabilized --hash --interval 250 /proc/scsi/scsi
    mkblkdevs
    echo Scanning and configuring dmraid supported devices
    resume LABEL=SWAP-xvda2
    echo Creating root device.
    mkrootdev -t ext3 -o defaults,ro /dev/xvda1
    echo Mounting root filesystem.
    mount /sysroot
    echo Setting up other filesystems.
    setuproot
    echo Switching to new root and running init.
    switchroot

    """
    static let xenInsmods = """
    echo "Loading xen-blkfront.ko module"
    insmod /lib/xen-blkfront.ko
    """

    /// virtio's closure, in load order, from Debian's kernel.
    static func virtio() throws -> [InitrdModule] {
        let modules = try DebianModules.shared()
        return try modules.initrdModules(try modules.closure(["virtio_blk", "virtio_pci"]))
    }

    static func xenBlkfront() throws -> [UInt8] {
        let modules = try DebianModules.shared()
        return try readFile("\(modules.kernel.modulesDirectory)/kernel/drivers/block/xen-blkfront.ko")
    }

    /// Patches `script` with `modules` and returns the walker's view and the unpacked /init lines.
    static func patch(_ script: String, _ modules: [InitrdModule], tag: String,
                      scratch: TemporaryDirectory) throws -> (patch: InitrdPatch, lines: [String], tree: String) {
        let image = try BuiltInitrd.nash(init: script, modules: [("xen-blkfront.ko", try xenBlkfront())],
                                         scratch: scratch, tag: tag)
        let contents = try InitrdContents(bytes: image, name: "initrd-\(tag).img")
        #expect(contents.family == .nash)
        #expect(contents.modulesRoot == "lib")
        #expect(contents.modules["xen_blkfront"] == "lib/xen-blkfront.ko")
        let patch = try InitrdPatcher.addModules(modules, forceLoad: ["virtio_blk"], to: contents, original: image,
                                                 kernelRelease: "2.6.18-419.el5", name: "initrd-\(tag).img", mtime: 0)
        #expect(patch.bytes.starts(with: image))
        let path = scratch.file("patched-\(tag).img"), tree = scratch.file("tree-\(tag)")
        try writeFile(patch.bytes, to: path)
        let members = try Walker.walk(path, extractTo: tree)
        #expect(members.map(\.compression) == ["gzip", "gzip"])
        #expect(members.last?.names == patch.entries)
        let lines = try readText("\(tree)/init").split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        return (patch, lines, tree)
    }

    @Test func newInsmodsFollowTheLastOldOneInDependencyOrder() throws {
        let scratch = try TemporaryDirectory(prefix: "rehost-nash")
        let modules = try Self.virtio()
        let script = [Self.header, Self.xenInsmods, Self.footer].joined(separator: "\n")
        let (patch, lines, tree) = try Self.patch(script, modules, tag: "insmod", scratch: scratch)

        let insmods = lines.enumerated().filter { $0.element.hasPrefix("insmod ") }
        let names = insmods.map { ModuleName.fromPath(String($0.element.dropFirst("insmod ".count))) }
        #expect(names == ["xen_blkfront"] + modules.map(\.name), "\(names)")
        // Right after the old insmod, each with mkinitrd's echo line, before mkrootdev.
        let old = try #require(lines.firstIndex(of: "insmod /lib/xen-blkfront.ko"))
        let expected = modules.flatMap { module -> [String] in
            let file = (module.relativePath as NSString).lastPathComponent
            return ["echo \"Loading \(file) module\"", "insmod /lib/\(file)"]
        }
        #expect(Array(lines[(old + 1)..<(old + 1 + expected.count)]) == expected)
        let root = try #require(lines.firstIndex { $0.hasPrefix("mkrootdev") })
        #expect((insmods.last?.offset ?? .max) < root)
        // The rest of the script is as it was.
        let original = script.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        var unchanged = lines
        unchanged.removeSubrange((old + 1)..<(old + 1 + expected.count))
        #expect(unchanged == original)

        // Each dependency before its user, by the modules' own depends= field.
        for (index, module) in modules.enumerated() {
            let before = Set(modules[..<index].map(\.name))
            #expect(before.isSuperset(of: module.info.depends.map(ModuleName.normalized)), "\(module.name)")
        }
        for module in modules {
            let file = (module.relativePath as NSString).lastPathComponent
            #expect(try readFile("\(tree)/lib/\(file)") == module.elf, "lib/\(file) holds the module, plain")
        }
        #expect(patch.entries.filter { $0.hasSuffix(".ko") }.count == modules.count)

        // Idempotent: the patched image insmods everything, and patching again adds nothing.
        let again = try InitrdContents(bytes: patch.bytes, name: "again")
        #expect(again.loadedByInit == ["xen_blkfront"] + modules.map(\.name))
        for module in modules { #expect(again.loads(module.name)) }
        let second = try InitrdPatcher.addModules(modules, forceLoad: [], to: again, original: patch.bytes,
                                                  kernelRelease: "2.6.18-419.el5", name: "again", mtime: 0)
        #expect(second.entries.isEmpty)
        #expect(second.bytes == patch.bytes)
    }

    @Test func withoutInsmodTheLinesGoBeforeTheMkblkdevsThatPrecedesMkrootdev() throws {
        let scratch = try TemporaryDirectory(prefix: "rehost-nash")
        let modules = try Self.virtio()
        let script = [Self.header, Self.footer].joined(separator: "\n")
        let (_, lines, _) = try Self.patch(script, modules, tag: "mkblkdevs", scratch: scratch)
        let root = try #require(lines.firstIndex { $0.hasPrefix("mkrootdev") })
        let last = try #require(lines[..<root].lastIndex(of: "mkblkdevs"))
        let firstNew = try #require(lines.firstIndex { $0.hasPrefix("echo \"Loading ") })
        #expect(lines.firstIndex(of: "mkblkdevs")! < firstNew, "after the first mkblkdevs (hotplug's)")
        let block = modules.count * 2
        #expect(firstNew + block == last, "the new lines end right before the last mkblkdevs: \(lines)")
        #expect(lines.filter { $0.hasPrefix("insmod ") }.count == modules.count)
    }

    @Test func noInsertionPointAndUnknownFamilyAreErrors() throws {
        let scratch = try TemporaryDirectory(prefix: "rehost-nash")
        let modules = try Self.virtio()
        let bare = try BuiltInitrd.nash(init: "#!/bin/nash\nmount -t proc /proc /proc\nswitchroot\n", modules: [],
                                        scratch: scratch, tag: "bare")
        let contents = try InitrdContents(bytes: bare, name: "bare.img")
        #expect(contents.family == .nash)
        #expect(throws: InitrdPatchError.noInsertionPoint(name: "bare.img")) {
            try InitrdPatcher.addModules(modules, forceLoad: [], to: contents, original: bare,
                                         kernelRelease: "2.6.18", name: "bare.img", mtime: 0)
        }

        // A busybox-style image none of the three tools made.
        let stage = scratch.file("unknown")
        try FileManager.default.createDirectory(atPath: "\(stage)/bin", withIntermediateDirectories: true)
        try writeFile("#!/bin/sh\nexec switch_root /root /sbin/init\n", to: "\(stage)/init")
        let archive = try Command.run("sh", ["-c", "find . | LC_ALL=C sort | cpio -o -H newc --quiet"],
                                      currentDirectory: stage).requireSuccess().stdoutBytes
        let unknown = try InitrdContents(bytes: archive, name: "custom.img")
        #expect(unknown.family == .unknown)
        #expect(throws: InitrdPatchError.unknownFamily(name: "custom.img")) {
            try InitrdPatcher.addModules(modules, forceLoad: [], to: unknown, original: archive,
                                         kernelRelease: "6.1", name: "custom.img", mtime: 0)
        }
    }
}
