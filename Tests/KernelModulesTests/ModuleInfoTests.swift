import Foundation
import KernelModules
import Testing
import TestSupport

@Suite struct ModuleInfoTests {
    /// `modinfo -0 FILE...` (host kmod): per file a `filename:` record then `key=value` records.
    static func modinfoFields(_ paths: [String]) throws -> [[(String, String)]] {
        let out = try Command.run("modinfo", ["-0"] + paths).requireSuccess().stdoutBytes
        var modules: [[(String, String)]] = []
        for record in out.split(separator: 0) {
            let text = String(decoding: record, as: UTF8.self)
            if text.hasPrefix("filename:") { modules.append([]); continue }
            guard let equals = text.firstIndex(of: "=") else { continue }
            modules[modules.count - 1].append((String(text[..<equals]), String(text[text.index(after: equals)...])))
        }
        return modules
    }

    @Test func equalsModinfoOnSubset() throws {
        let tree = try KernelTree.subset()
        let modules = try tree.modules()
        let fields = try Self.modinfoFields(modules.map { "\(tree.modulesDirectory)/\($0.path)" })
        try #require(fields.count == modules.count)
        for (module, theirs) in zip(modules, fields) {
            let info = module.info
            func values(_ key: String) -> [String] { theirs.filter { $0.0 == key }.map(\.1) }
            #expect(info.depends == (values("depends").first ?? "").split(separator: ",").map(String.init), "\(module.path)")
            #expect(info.aliases == values("alias"), "\(module.path)")
            #expect(info.softdeps == values("softdep"), "\(module.path)")
            #expect(info.vermagic == values("vermagic").first, "\(module.path)")
            #expect(info.license == values("license").first, "\(module.path)")
            #expect(info.name == (values("name").first ?? ModuleName.fromPath(module.path)), "\(module.path)")
        }
        let virtioBlk = try #require(modules.first { $0.path.hasSuffix("/virtio_blk.ko") }?.info)
        #expect(virtioBlk.depends == ["virtio", "virtio_ring"])
        #expect(virtioBlk.aliases == ["virtio:d00000002v*"])
        let ext4 = try #require(modules.first { $0.path.hasSuffix("/ext4.ko") }?.info)
        #expect(ext4.softdepPre == ["crypto_crc32c"])
        #expect(ext4.exportedSymbols.isEmpty == false || ext4.requiredSymbols.contains("jbd2_journal_start"))
        let ring = try #require(modules.first { $0.path.hasSuffix("/virtio_ring.ko") }?.info)
        #expect(ring.exportedSymbols.contains("virtqueue_add_sgs"))
    }

    /// The `__ksymtab_strings` of a module are what it exports (the same set as its `__crc_` symbols).
    @Test func exportedSymbolsMatchKsymtabStrings() throws {
        let kernel = try DebianKernel.current()
        let path = "\(kernel.modulesDirectory)/kernel/drivers/virtio/virtio_ring.ko"
        let out = try Command.run("readelf", ["-p", "__ksymtab_strings", path]).requireSuccess().stdout
        let strings = out.split(separator: "\n").compactMap { line -> String? in
            guard let close = line.firstIndex(of: "]") else { return nil }
            return line[line.index(after: close)...].trimmingCharacters(in: .whitespaces)
        }.filter { !$0.isEmpty }
        let info = try ModuleInfo.read(elf: try readBytes(path), path: path)
        #expect(Set(info.exportedSymbols) == Set(strings))
        #expect(strings.count > 20)
    }

    @Test func names() {
        #expect(ModuleName.fromPath("kernel/drivers/block/xen-blkfront.ko.xz") == "xen_blkfront")
        #expect(ModuleName.fromPath("crc-t10dif.ko") == "crc_t10dif")
        #expect(ModuleName.compressionSuffix("a/b.ko.zst") == ".zst")
        #expect(ModuleName.compressionSuffix("a/b.ko.gz") == ".gz")
        #expect(ModuleName.compressionSuffix("a/b.ko") == nil)
        #expect(ModuleName.normalized("virtio-pci") == "virtio_pci")
    }
}
