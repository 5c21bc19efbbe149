import Foundation
import Initrd
import KernelModules
import Testing
import TestSupport

/// InitrdContents and InitrdPatcher on initramfs-tools and dracut images built by the real tools
/// from Debian's kernel, checked by oracles that share no code with Rehost: the repository's
/// Python walker lists and unpacks the result by the kernel's rules, and the host's kmod
/// (modprobe, depmod) resolves the modules from the unpacked tree with only the image's index.
@Suite struct InitrdPatcherTests {
    @Test(arguments: InitrdLayout.allCases)
    func addsDriversThatKmodResolvesFromTheImageAlone(layout: InitrdLayout) throws {
        let modules = try DebianModules.shared()
        let version = modules.version
        let scratch = try TemporaryDirectory(prefix: "rehost-initrd-patch")
        let built = try BuiltInitrd.make(layout, modules: modules, scratch: scratch)
        let name = "initrd.img-\(version)"

        // What the reader finds in the image as the tool wrote it.
        let contents = try InitrdContents(bytes: built.bytes, name: name)
        #expect(contents.family == layout.family)
        #expect(contents.modulesRoot == "usr/lib/modules/\(version)", "the archive's own spelling, never lib/...")
        #expect(contents.kernelRelease == version)
        #expect(Set(contents.modules.keys) == Set(built.modulePaths.map(ModuleName.fromPath)))
        #expect(contents.modules["xen_blkfront"] == "usr/lib/modules/\(version)/kernel/drivers/block/xen-blkfront.ko"
            + (layout.compressedModules ? ".zst" : ""))

        // The target's drivers with their closure, in modprobe's load order (some, such as
        // crc32c or crc16, are in the image already and must not be added twice).
        let closure = try modules.closure(DebianModules.targetDrivers)
        let added = try modules.initrdModules(closure)
        let forceLoad = ["virtio_blk", "virtio_pci", "virtio-pci", "ata_piix", "ahci", "ext4"]
        let patch = try InitrdPatcher.addModules(added, forceLoad: forceLoad, to: contents, original: built.bytes,
                                                 kernelRelease: version, name: name, mtime: 0)
        let newModules = added.filter { contents.modules[$0.name] == nil }
        #expect(newModules.count >= 10, "\(newModules.map(\.name))")

        // Bytes: the original untouched in front, then zeros, then one member.
        #expect(patch.bytes.starts(with: built.bytes), "the original bytes are a prefix of the result")
        let original = scratch.file("original.img"), patched = scratch.file("patched.img"), tree = scratch.file("tree")
        try writeFile(built.bytes, to: original)
        try writeFile(patch.bytes, to: patched)

        // The independent walker: the original members unchanged, one gzip member appended.
        let before = try Walker.walk(original)
        let after = try Walker.walk(patched, extractTo: tree)
        #expect(before.count == (layout.hasMicrocode ? 2 : 1))
        try #require(after.count == before.count + 1, "\(after.map(\.compression))")
        #expect(after.prefix(before.count).map(\.json) == before.map(\.json), "the original members are unchanged")
        let appended = after[before.count]
        #expect(appended.compression == "gzip")
        #expect(appended.offset % 4 == 0)
        #expect(patch.bytes[built.bytes.count..<appended.offset].allSatisfy { $0 == 0 }, "only zeros between the image and the new member")
        if let last = before.last, last.compression == "lz4" {
            // unlz4 reads chunk sizes until one is 0: the gzip magic must not be taken for one.
            #expect(appended.offset - (last.offset + last.length) >= 4, "≥4 zero bytes after an lz4 member")
        }
        #expect(appended.names == patch.entries, "the walker sees what the patcher says it wrote")

        // No entry replaces a symlink or lies under one, and every directory comes before its files.
        let originalEntries = before.flatMap(\.entries)
        let symlinks = Set(originalEntries.filter { $0["target"] != nil }.compactMap { $0["name"] as? String }.map(clean))
        #expect(symlinks.isSuperset(of: ["lib", "bin"]))
        var directories = Set(originalEntries.filter { ($0["mode"] as? Int ?? 0) & 0o170000 == 0o040000 }
            .compactMap { $0["name"] as? String }.map(clean))
        for entry in appended.entries {
            let path = clean(entry["name"] as? String ?? "?")
            #expect(!symlinks.contains(path), "\(path) would replace a symlink")
            #expect(!symlinks.contains { path.hasPrefix($0 + "/") }, "\(path) lies under a symlink")
            let parent = (path as NSString).deletingLastPathComponent
            #expect(parent.isEmpty || directories.contains(parent), "\(path) comes before its directory \(parent)")
            if (entry["mode"] as? Int ?? 0) & 0o170000 == 0o040000 { directories.insert(path) }
        }
        for module in newModules {
            let path = "usr/lib/modules/\(version)/\(module.relativePath)"
            #expect(appended.names.contains(path), "\(path) is not appended")
            #expect(try readFile("\(tree)/\(path)") == module.elf)
        }
        #expect(!appended.names.contains { $0.hasSuffix(".ko") && !newModules.map(\.relativePath).contains(String($0.dropFirst("usr/lib/modules/\(version)/".count))) },
                "modules already in the image are not added again")

        // The unpacked tree keeps its links, and kmod finds everything through the image's index.
        #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: "\(tree)/lib")) == "usr/lib")
        #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: "\(tree)/bin")) == "usr/bin")
        try expectKmodAgrees(tree: tree, version: version, oldModulesCompressed: layout.compressedModules)

        // conf/modules: old lines kept, each forced driver once; dracut has no such list.
        if layout.family == .initramfsTools {
            let lines = try readText("\(tree)/conf/modules").split(separator: "\n").map(String.init)
            #expect(lines == ["xen-blkfront", "ext4", "virtio_blk", "virtio_pci", "ata_piix", "ahci"], "\(lines)")
        } else {
            #expect(!FileManager.default.fileExists(atPath: "\(tree)/conf/modules"))
            #expect(!patch.entries.contains("conf/modules"))
        }

        // Idempotence: the patched image loads every module, and a second patch adds nothing.
        let again = try InitrdContents(bytes: patch.bytes, name: name)
        #expect(again.family == layout.family)
        #expect(again.modulesRoot == contents.modulesRoot)
        for module in added { #expect(again.loads(module.name), "\(module.name)") }
        let second = try InitrdPatcher.addModules(added, forceLoad: forceLoad, to: again, original: patch.bytes,
                                                  kernelRelease: version, name: name, mtime: 0)
        #expect(second.entries.isEmpty, "\(second.entries)")
        #expect(second.bytes == patch.bytes, "nothing appended, not even an empty archive")
    }

    /// The host's kmod on the unpacked tree, with only the index files the image carries: every
    /// driver resolves to plain .ko files under the modules directory, each after what it needs;
    /// the device aliases give the drivers; and depmod, run on the same tree, writes exactly the
    /// index the image has.
    /// With `oldModulesCompressed`, the modules the image had may be .ko.zst; the added ones are
    /// plain .ko, checked by the caller.
    func expectKmodAgrees(tree: String, version: String, oldModulesCompressed: Bool = false,
                          sourceLocation: SourceLocation = #_sourceLocation) throws {
        let kmod = try Kmod(tree: tree, version: version)
        let imageDep = try ModulesDep.parse(try readText("\(kmod.modulesDirectory)/modules.dep"))
        for driver in DebianModules.targetDrivers + DebianModules.guestDrivers {
            let insmods = try kmod.showDepends(driver)
            #expect(insmods.last.map(ModuleName.fromPath) == driver, "\(driver): \(insmods)", sourceLocation: sourceLocation)
            for (index, path) in insmods.enumerated() {
                #expect(path.hasPrefix("\(tree)/lib/modules/\(version)/") || path.hasPrefix("\(tree)/usr/lib/modules/\(version)/"),
                        "\(path)", sourceLocation: sourceLocation)
                #expect((oldModulesCompressed ? ModuleName.isModulePath(path) : path.hasSuffix(".ko"))
                        && FileManager.default.fileExists(atPath: path), "\(path)", sourceLocation: sourceLocation)
                let needs = imageDep.entry(named: ModuleName.fromPath(path))?.dependencies.map(ModuleName.fromPath) ?? ["?"]
                let loadedBefore = Set(insmods[..<index].map(ModuleName.fromPath))
                #expect(loadedBefore.isSuperset(of: needs), "\(driver): \(path) loads before \(needs)", sourceLocation: sourceLocation)
            }
        }
        let aliases = [
            "virtio:d00000002v00001AF4": "virtio_blk", "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00": "virtio_pci",
            "pci:v00008086d00007010sv00001AF4sd00001100bc01sc01i80": "ata_piix",
            "pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01": "ahci", "scsi:t-0x00": "sd_mod",
            "xen:vbd": "xen_blkfront", "fs-ext4": "ext4",
        ]
        for (alias, module) in aliases.sorted(by: { $0.key < $1.key }) {
            #expect(try kmod.resolve(alias) == [module], "\(alias)", sourceLocation: sourceLocation)
        }

        var indexes: [String: [UInt8]] = [:]
        for file in Depmod.fileNames { indexes[file] = try readFile("\(kmod.modulesDirectory)/\(file)") }
        try Command.run("depmod", ["-b", tree, version]).requireSuccess()
        for file in Depmod.fileNames {
            #expect(indexes[file] == (try readFile("\(kmod.modulesDirectory)/\(file)")), "\(file) differs from depmod's",
                    sourceLocation: sourceLocation)
        }
    }

    /// Two repairs in turn (virtio, then IDE/AHCI): the second archive's index covers the
    /// original modules and both additions, and the kernel-order unpack of all three members
    /// is what kmod and depmod agree with.
    @Test func aSecondPatchIndexesEveryAddition() throws {
        let modules = try DebianModules.shared()
        let version = modules.version
        let scratch = try TemporaryDirectory(prefix: "rehost-initrd-twice")
        let built = try BuiltInitrd.make(.initramfsToolsZstd, modules: modules, scratch: scratch)
        let contents = try InitrdContents(bytes: built.bytes, name: "twice")
        let virtio = try modules.initrdModules(try modules.closure(["virtio_blk", "virtio_pci"]))
        let first = try InitrdPatcher.addModules(virtio, forceLoad: ["virtio_blk"], to: contents, original: built.bytes,
                                                 kernelRelease: version, name: "twice", mtime: 0)
        let middle = try InitrdContents(bytes: first.bytes, name: "twice")
        let ata = try modules.initrdModules(try modules.closure(["ata_piix", "ahci", "sd_mod"]))
        #expect(!ata.allSatisfy { middle.loads($0.name) })
        let second = try InitrdPatcher.addModules(ata, forceLoad: ["ata_piix", "virtio_blk"], to: middle, original: first.bytes,
                                                  kernelRelease: version, name: "twice", mtime: 0)
        #expect(second.bytes.starts(with: first.bytes))
        #expect(!second.entries.contains { $0.hasSuffix("virtio_blk.ko") }, "virtio is in the image already")
        let path = scratch.file("twice.img"), tree = scratch.file("tree")
        try writeFile(second.bytes, to: path)
        let members = try Walker.walk(path, extractTo: tree)
        #expect(members.map(\.compression) == ["zstd", "gzip", "gzip"])
        try expectKmodAgrees(tree: tree, version: version)
        let lines = try readText("\(tree)/conf/modules").split(separator: "\n").map(String.init)
        #expect(lines == ["xen-blkfront", "ext4", "virtio_blk", "ata_piix"])
    }

    /// The path as the kernel looks it up: no "./", no trailing "/".
    func clean(_ name: String) -> String {
        name.split(separator: "/").filter { $0 != "." }.joined(separator: "/")
    }
}

/// The host's kmod on an unpacked tree, with no modprobe.d configuration.
struct Kmod {
    let tree: String
    let version: String
    let config: TemporaryDirectory

    init(tree: String, version: String) throws {
        self.tree = tree
        self.version = version
        config = try TemporaryDirectory(prefix: "rehost-modprobe-conf")
    }

    var modulesDirectory: String { "\(tree)/lib/modules/\(version)" }

    private func run(_ arguments: [String]) throws -> String {
        try Command.run("modprobe", ["-C", config.path, "-d", tree, "-S", version] + arguments).requireSuccess().stdout
    }

    /// The files `modprobe --show-depends` would insmod, in its order.
    func showDepends(_ module: String) throws -> [String] {
        try run(["--show-depends", module]).split(separator: "\n").filter { $0.hasPrefix("insmod ") }
            .map { String($0.dropFirst("insmod ".count)).trimmingCharacters(in: .whitespaces) }
    }

    /// The modules `modprobe -R` gives for an alias, each once (it prints a module once per
    /// matching alias: ahci has both a class and a device alias for 8086:2922).
    func resolve(_ alias: String) throws -> [String] {
        var seen = Set<String>()
        return try run(["-R", alias]).split(separator: "\n").map(String.init).filter { seen.insert($0).inserted }
    }
}
