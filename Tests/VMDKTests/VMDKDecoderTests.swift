import Foundation
import ImageCore
import ImageFormats
import Testing
import TestSupport

/// The decoder the structural tests rely on, checked against qemu-img's own VMDKs and against
/// damaged files, so a wrong decoder cannot make those tests pass.
@Suite struct VMDKDecoderTests {
    @Test(arguments: WriterOptions.VMDKSubformat.allCases)
    func decodesQemuImages(subformat: WriterOptions.VMDKSubformat) throws {
        let directory = try TemporaryDirectory(prefix: "rehost-vmdk")
        let path = directory.file("qemu.vmdk")
        try Command.run("qemu-img", ["create", "-q", "-f", "vmdk", "-o", "subformat=\(subformat.rawValue),adapter_type=ide",
                                     path, "100M"]).requireSuccess()
        let reader = try VMDKFileReader(path: path)
        #expect(reader.header.capacity == (100 << 20) / 512)
        #expect(reader.header.grainSize == 128)
        #expect(reader.header.version == (subformat == .streamOptimized ? 3 : 1))
        #expect(reader.header.flags.contains([.compressedGrains, .markers]) == (subformat == .streamOptimized))
        #expect(reader.header.compressAlgorithm == (subformat == .streamOptimized ? 1 : 0))
        #expect(reader.descriptor.fields["createType"] == subformat.rawValue)
        #expect(reader.descriptor.fields["parentCID"] == "ffffffff")
        #expect(reader.descriptor.extents == [.init(access: "RW", sectors: (100 << 20) / 512, type: "SPARSE", fileName: "qemu.vmdk")])
        #expect(reader.descriptor.database["ddb.adapterType"] == "ide")
        // qemu floors cylinders like VMware: 204800 / (16 * 63) = 203.17.
        #expect(reader.descriptor.database["ddb.geometry.cylinders"] == "203")
        #expect(VMDKDescriptor.geometry(sectors: (100 << 20) / 512, adapter: .ide).cylinders == 203)
        #expect(try reader.grain(0) == nil)
    }

    @Test func rejectsDamage() throws {
        let converted = try convert(size: 16 << 20, options: options(.streamOptimized))
        let bytes = Array(FileManager.default.contents(atPath: converted.vmdkPath) ?? Data())
        func damaged(_ change: (inout [UInt8]) -> Void) throws -> String {
            var copy = bytes
            change(&copy)
            let path = converted.directory.file("damaged-\(UUID().uuidString).vmdk")
            _ = FileManager.default.createFile(atPath: path, contents: Data(copy))
            return path
        }
        let badMagic = try damaged { $0[0] = 0x4A }
        #expect(throws: VMDKError.badMagic(path: badMagic, offset: 0, found: 0x564D_444A)) { try VMDKFileReader(path: badMagic) }

        let badGrainSize = try damaged { $0.storeLE(UInt64(100), at: 20) }
        #expect(throws: VMDKError.self) { try VMDKFileReader(path: badGrainSize) }

        // The end-of-stream marker turned into a (bogus) type 7 marker.
        let badEOS = try damaged { $0.storeLE(UInt32(7), at: $0.count - 512 + 12) }
        #expect(throws: VMDKError.self) { try VMDKFileReader(path: badEOS).streamItems() }

        // A trailing sector after the end-of-stream marker.
        let trailing = try damaged { $0 += [UInt8](repeating: 0, count: 512) }
        #expect(throws: VMDKError.self) { try VMDKFileReader(path: trailing).streamItems() }

        // A corrupted grain no longer inflates.
        let items = try VMDKFileReader(path: converted.vmdkPath).streamItems()
        let firstGrain = try #require(items.first).offset
        let badGrain = try damaged { $0[Int(firstGrain) + 12] ^= 0xFF; $0[Int(firstGrain) + 13] ^= 0xFF }
        #expect(throws: (any Error).self) { try VMDKFileReader(path: badGrain).grainData(markerAt: firstGrain) }
    }
}
