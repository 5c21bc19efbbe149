import Foundation
import KernelModules
import Testing
import TestSupport

@Suite struct ModulesDepTests {
    @Test func parseWriteAndClosure() throws {
        let text = """
        kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
        kernel/drivers/virtio/virtio_ring.ko:
        kernel/drivers/virtio/virtio.ko:
        kernel/lib/crc-t10dif.ko: kernel/crypto/crct10dif_common.ko
        kernel/crypto/crct10dif_common.ko:
        kernel/arch/x86/crypto/crct10dif-pclmul.ko: kernel/crypto/crct10dif_common.ko
        kernel/drivers/block/xen-blkfront.ko: kernel/drivers/block/gone.ko

        """
        var dep = try ModulesDep.parse(text)
        #expect(dep.encoded() == Array(text.utf8))
        #expect(dep.entry(named: "xen-blkfront")?.path == "kernel/drivers/block/xen-blkfront.ko")
        let closure = dep.closure(of: ["virtio_blk", "nothere", "8250"], builtIn: ["8250"])
        #expect(closure.paths == ["kernel/drivers/virtio/virtio.ko", "kernel/drivers/virtio/virtio_ring.ko", "kernel/drivers/block/virtio_blk.ko"])
        #expect(closure.missing == ["nothere"])
        #expect(dep.closure(of: ["xen_blkfront"]).missing == ["gone"])
        dep.addSoftdeps("# comment\nsoftdep crc-t10dif pre: crct10dif-pclmul\n")
        dep.addAliases("alias crypto-crct10dif crct10dif_pclmul\n")
        #expect(dep.closure(of: ["crc_t10dif"]).paths.count == 2)
        let soft = dep.closure(of: ["crc_t10dif"], softdeps: true).paths
        #expect(soft == ["kernel/crypto/crct10dif_common.ko", "kernel/arch/x86/crypto/crct10dif-pclmul.ko", "kernel/lib/crc-t10dif.ko"])
        #expect(dep.closure(of: ["crypto-crct10dif"]).paths.last == "kernel/arch/x86/crypto/crct10dif-pclmul.ko")
        #expect(throws: ModulesDepError.self) { try ModulesDep.parse("no colon here\n") }
    }

    @Test func loopsDoNotHang() {
        let dep = ModulesDep(entries: [.init(path: "a.ko", dependencies: ["b.ko"]), .init(path: "b.ko", dependencies: ["a.ko"])])
        #expect(Set(dep.closure(of: ["a"]).paths) == ["a.ko", "b.ko"])
    }

    @Test func kernelConfigAndBuiltins() throws {
        let kernel = try DebianKernel.current()
        let config = KernelConfig(text: String(decoding: try readBytes(kernel.config), as: UTF8.self))
        for symbol in ["CONFIG_VIRTIO_BLK", "VIRTIO_PCI", "CONFIG_ATA_PIIX", "CONFIG_EXT4_FS", "CONFIG_XEN_BLKDEV_FRONTEND"] {
            #expect(config.state(of: symbol) == .module, "\(symbol)")
        }
        #expect(config["SERIAL_8250"] == .builtIn)
        #expect(config["CONFIG_NO_SUCH_THING"] == .absent)
        let synthetic = KernelConfig(text: "CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=m\nCONFIG_S=\"x y\"\n")
        #expect(synthetic["A"] == .builtIn && synthetic["B"] == .absent && synthetic["C"] == .module && synthetic.value(of: "S") == "\"x y\"")

        let builtin = BuiltinModules(text: String(decoding: try readBytes("\(kernel.modulesDirectory)/modules.builtin"), as: UTF8.self))
        #expect(builtin.contains("8250"))
        #expect(!builtin.contains("virtio_blk"))
        #expect(builtin.paths.count == builtin.names.count)
    }
}
