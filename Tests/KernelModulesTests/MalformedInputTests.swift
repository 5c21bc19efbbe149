import Foundation
import KernelModules
import Testing
import TestSupport

/// Seeded mutations of real files: every outcome is a value or a typed error, never a trap.
@Suite struct MalformedInputTests {
    static func mutate(_ original: [UInt8], _ rng: inout SplitMix, headerBias: Int) -> [UInt8] {
        var bytes = original
        switch rng.below(4) {
        case 0: bytes = Array(bytes.prefix(rng.below(bytes.count)))
        case 1:
            for _ in 0..<(1 + rng.below(8)) {
                let at = rng.below(4) == 0 ? rng.below(bytes.count) : rng.below(min(headerBias, bytes.count))
                bytes[at] = UInt8(truncatingIfNeeded: rng.next())
            }
        case 2:
            // A 16-, 32- or 64-bit field set to an extreme value.
            let at = rng.below(min(headerBias, bytes.count - 8))
            let value: UInt64 = [0, 1, 0xFFFF, 0xFFFF_FFFF, UInt64.max, 0x7FFF_FFFF, UInt64(bytes.count)][rng.below(7)]
            for i in 0..<[2, 4, 8][rng.below(3)] { bytes[at + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))) }
        default:
            let at = rng.below(bytes.count)
            bytes.replaceSubrange(at..<min(bytes.count, at + rng.below(64)), with: rng.bytes(rng.below(64)))
        }
        return bytes
    }

    @Test func corruptModulesGiveTypedErrors() throws {
        let kernel = try DebianKernel.current()
        let path = "\(kernel.modulesDirectory)/kernel/drivers/block/virtio_blk.ko"
        let original = try readBytes(path)
        let shoff = Int(original.loadLE(UInt64.self, at: 40))
        var rng = SplitMix(seed: 0x5EED)
        var failures = 0
        for round in 0..<400 {
            // Half aimed at the ELF header and section table, where the offsets live.
            let bias = round % 2 == 0 ? 64 : original.count
            var bytes = Self.mutate(original, &rng, headerBias: bias)
            if round % 4 == 1, bytes.count > shoff + 64 {
                for i in 0..<8 { bytes[shoff + 64 * (1 + rng.below(10)) + 24 + i] = UInt8(truncatingIfNeeded: rng.next()) }
            }
            do {
                _ = try ModuleInfo.read(elf: bytes, path: "mutant-\(round)")
            } catch {
                failures += 1
                #expect(!error.description.isEmpty && error.description.contains("mutant-\(round)"))
            }
        }
        #expect(failures > 50)
    }

    @Test func corruptIndexesGiveTypedErrors() throws {
        let tree = try KernelTree.subset(["kernel/drivers/virtio", "kernel/drivers/block"])
        let original = KmodIndex.write(try tree.modules().flatMap { m in m.info.aliases.map { ($0, m.info.name, UInt32(0)) } })
        var rng = SplitMix(seed: 0xB007)
        var failures = 0
        for round in 0..<400 {
            let bytes = Self.mutate(original, &rng, headerBias: original.count)
            do {
                _ = try KmodIndex.read(bytes, name: "mutant-\(round)")
            } catch {
                failures += 1
                #expect(error.description.contains("mutant-\(round)"))
            }
        }
        #expect(failures > 50)
        // A node that refers to itself.
        var loop = KmodIndex.write([("a", "x", 0), ("b", "y", 0)])
        let root = Int(loop.loadBE(UInt32.self, at: 8) & 0x0FFF_FFFF)
        loop.storeBE(loop.loadBE(UInt32.self, at: 8), at: root + 2)
        #expect(throws: KmodIndexError.self) { try KmodIndex.read(loop, name: "loop") }
    }

    @Test func truncatedELFHeaders() {
        for n in [0, 4, 15, 16, 40] {
            #expect(throws: ELFError.self) { try ELFFile(bytes: Array([0x7F, 0x45, 0x4C, 0x46, 2, 1, 1] + [UInt8](repeating: 0, count: 60)).prefix(n).map { $0 }, name: "short") }
        }
        #expect(throws: ModuleError.self) { try ModuleInfo.read(elf: Array("not an elf at all, no".utf8), path: "text") }
    }
}
