import Foundation
import KernelModules
import Testing
import TestSupport

/// Depmod.generate against the host's `depmod -b DIR VERSION` (kmod 30) on the same modules.
@Suite struct DepmodTests {
    /// Every file depmod writes, compared byte for byte.
    @Test func byteIdenticalToHostDepmodOnSubset() throws {
        let tree = try KernelTree.subset()
        try Command.run("depmod", ["-b", tree.base, tree.version]).requireSuccess()
        let ours = try tree.generateOutputs()
        #expect(Set(ours.keys) == Set(Depmod.fileNames))
        for name in Depmod.fileNames {
            try expectSameFile(ours[name], tree, name)
        }
        #expect(tree.modulePaths.count > 250)
    }

    /// The same on every module of the kernel (about 4000), when parsing them all is quick enough.
    @Test func byteIdenticalToHostDepmodOnWholeKernel() throws {
        let tree = try KernelTree.subset(["kernel"])
        try Command.run("depmod", ["-b", tree.base, tree.version]).requireSuccess()
        let ours = try tree.generateOutputs()
        for name in Depmod.fileNames {
            try expectSameFile(ours[name], tree, name)
        }
        #expect(tree.modulePaths.count > 3000)
    }

    /// kmod's modprobe, run on a tree whose indexes only we wrote, resolves every module's
    /// dependencies and sample aliases exactly as on the tree depmod indexed.
    @Test func modprobeAgreesOnTreeWeIndexed() throws {
        let reference = try KernelTree.subset()
        try Command.run("depmod", ["-b", reference.base, reference.version]).requireSuccess()
        let ours = try KernelTree.subset()
        for (name, bytes) in try ours.generateOutputs() {
            try writeBytes(bytes, to: "\(ours.modulesDirectory)/\(name)")
        }
        let config = try TemporaryDirectory(prefix: "rehost-modprobe-conf")
        func modprobe(_ tree: KernelTree, _ arguments: [String]) throws -> String {
            let result = try Command.run("modprobe", ["-C", config.path, "-d", tree.base, "-S", tree.version] + arguments)
            return (result.stdout + "status \(result.status)\n").replacingOccurrences(of: tree.base, with: "ROOT")
        }
        let modules = try ours.modules()
        for module in modules {
            let name = ModuleName.fromPath(module.path)
            let expected = try modprobe(reference, ["--show-depends", name])
            #expect(expected.hasPrefix("insmod") || expected.hasPrefix("builtin"), "\(name): \(expected)")
            #expect(try modprobe(ours, ["--show-depends", name]) == expected, "\(name)")
        }
        let aliases = [
            "virtio:d00000002v00001AF4", "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00",
            "pci:v00008086d00007010sv00001AF4sd00001100bc01sc01i80", "fs-ext4", "crypto-crc32c", "crc32c",
            "symbol:jbd2_journal_start", "symbol:virtqueue_add_sgs", "scsi:t-0x00", "xen:vbd", "block-major-8-0",
        ]
        let fromFile = try ours.text("modules.alias").split(separator: "\n").dropFirst().enumerated()
            .filter { $0.offset % 50 == 0 }.compactMap { $0.element.split(separator: " ").dropFirst().first.map(String.init) }
            .filter { !$0.contains("[") }
        for alias in aliases + fromFile {
            let expected = try modprobe(reference, ["-R", alias])
            #expect(try modprobe(ours, ["-R", alias]) == expected, "\(alias)")
        }
        #expect(try modprobe(ours, ["-R", "virtio:d00000002v00001AF4"]) == "virtio_blk\nstatus 0\n")
    }

    /// Our own closure agrees with modprobe's insmod list (same set, valid order).
    @Test func closureMatchesModprobeShowDepends() throws {
        let tree = try KernelTree.subset()
        try Command.run("depmod", ["-b", tree.base, tree.version]).requireSuccess()
        var dep = try ModulesDep.parse(try tree.text("modules.dep"))
        dep.addSoftdeps(try tree.text("modules.softdep"))
        dep.addAliases(try tree.text("modules.alias"))
        let config = try TemporaryDirectory(prefix: "rehost-modprobe-conf")
        for name in ["virtio_blk", "virtio_pci", "ext4", "ahci", "ata_piix", "sd_mod", "xen_blkfront", "virtio_scsi"] {
            let result = try Command.run("modprobe", ["-C", config.path, "-d", tree.base, "-S", tree.version, "--show-depends", name])
                .requireSuccess()
            let insmods = result.stdout.split(separator: "\n").filter { $0.hasPrefix("insmod ") }.map {
                String($0.dropFirst("insmod ".count).trimmingCharacters(in: .whitespaces).dropFirst(tree.modulesDirectory.count + 1))
            }
            let closure = dep.closure(of: [name], softdeps: true)
            #expect(closure.missing.isEmpty)
            #expect(Set(closure.paths) == Set(insmods), "\(name)")
            #expect(closure.paths.last.map(ModuleName.fromPath) == name)
            try expectLoadOrder(closure.paths, dep)
        }
    }
}

/// Every module comes after all the modules its modules.dep line names.
func expectLoadOrder(_ paths: [String], _ dep: ModulesDep, sourceLocation: SourceLocation = #_sourceLocation) throws {
    var position: [String: Int] = [:]
    for (i, p) in paths.enumerated() { position[p] = i }
    for (i, p) in paths.enumerated() {
        let entry = try #require(dep.entry(named: ModuleName.fromPath(p)), sourceLocation: sourceLocation)
        for d in entry.dependencies {
            #expect((position[d] ?? Int.max) < i, "\(d) must load before \(p)", sourceLocation: sourceLocation)
        }
    }
}

/// Compares one output file; on a difference, names the first differing byte and keeps our file
/// beside depmod's as NAME.rehost (REHOST_KEEP_TEST_FILES=1 keeps the directory).
func expectSameFile(_ ours: [UInt8]?, _ tree: KernelTree, _ name: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
    let theirs = try tree.file(name)
    guard let ours else { Issue.record("\(name): not generated", sourceLocation: sourceLocation); return }
    if ours == theirs { return }
    let first = (0..<min(ours.count, theirs.count)).first { ours[$0] != theirs[$0] } ?? min(ours.count, theirs.count)
    try writeBytes(ours, to: "\(tree.modulesDirectory)/\(name).rehost")
    Issue.record("\(name): ours \(ours.count) bytes, depmod's \(theirs.count), first difference at byte \(first)", sourceLocation: sourceLocation)
}
