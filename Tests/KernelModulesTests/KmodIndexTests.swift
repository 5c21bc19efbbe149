import Foundation
import KernelModules
import Testing
import TestSupport

@Suite struct KmodIndexTests {
    @Test func roundTripAndLayout() throws {
        var rng = SplitMix(seed: 7)
        var entries: [(key: String, value: String, priority: UInt32)] = []
        let alphabet = Array("abc_:*?[]-0123".utf8)
        for _ in 0..<2000 {
            let key = String(decoding: (0..<(1 + rng.below(12))).map { _ in alphabet[rng.below(alphabet.count)] }, as: UTF8.self)
            entries.append((key, "v\(rng.below(50))", UInt32(rng.below(5))))
        }
        entries.append(("", "empty key", 9))
        let bytes = KmodIndex.write(entries)
        #expect(bytes.loadBE(UInt32.self, at: 0) == 0xB007_F457 && bytes.loadBE(UInt32.self, at: 4) == 0x0002_0001)
        let read = try KmodIndex.read(bytes, name: "random")
        var expected: [String: [(String, UInt32)]] = [:]
        for e in entries {
            var list = expected[e.key] ?? []
            list.insert((e.value, e.priority), at: list.firstIndex { $0.1 >= e.priority } ?? list.count)
            expected[e.key] = list
        }
        #expect(Set(read.keys) == Set(expected.keys))
        for (key, values) in expected {
            #expect(read[key]?.map(\.value) == values.map(\.0) && read[key]?.map(\.priority) == values.map(\.1), "\(key)")
        }
        // An empty index is the 12-byte header whose root has no parts.
        #expect(KmodIndex.write([]) == [0xB0, 0x07, 0xF4, 0x57, 0, 2, 0, 1, 0, 0, 0, 12])
    }

    /// depmod's own .bin files: readable, consistent with its text files, and rewritten byte for byte.
    @Test func readsAndRewritesDepmodIndexes() throws {
        let tree = try KernelTree.subset()
        try Command.run("depmod", ["-b", tree.base, tree.version]).requireSuccess()
        for name in ["modules.dep.bin", "modules.alias.bin", "modules.symbols.bin", "modules.builtin.bin", "modules.builtin.alias.bin"] {
            let bytes = try tree.file(name)
            let entries = try KmodIndex.entries(bytes, name: name)
            // Equal priorities are stored newest first: give them back oldest first.
            let rewritten = KmodIndex.write(entries.flatMap { e in e.values.reversed().map { (e.key, $0.value, $0.priority) } })
            #expect(rewritten == bytes, "\(name)")
        }
        let dep = try KmodIndex.read(try tree.file("modules.dep.bin"), name: "modules.dep.bin")
        let text = try ModulesDep.parse(try tree.text("modules.dep"))
        #expect(dep.count == text.entries.count)
        for entry in text.entries {
            let line = entry.path + ":" + entry.dependencies.map { " " + $0 }.joined()
            #expect(dep[entry.name]?.map(\.value) == [line])
        }
        let aliases = try KmodIndex.read(try tree.file("modules.alias.bin"), name: "modules.alias.bin")
        #expect(aliases["virtio:d00000002v*"]?.map(\.value) == ["virtio_blk"])
        let symbols = try KmodIndex.read(try tree.file("modules.symbols.bin"), name: "modules.symbols.bin")
        #expect(symbols["symbol:virtqueue_add_sgs"]?.map(\.value) == ["virtio_ring"])
    }
}
