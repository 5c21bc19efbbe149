import ImageCore
import KernelModules
import Testing
import TestSupport

/// Inputs the `kernel-module` and `kmod-index` fuzz targets once crashed on
/// (Fuzz/Regressions/kernel-module/ and kmod-index/, README "Fuzzing"): each is refused with a
/// typed error. None yet.
@Suite struct ModuleFuzzRegressionTests {
    static func bytes(_ input: String) throws -> [UInt8] {
        let file = try RawFile(path: input, mode: .readOnly)
        return try file.read(count: Int(try file.size), at: 0)
    }

    @Test(arguments: FuzzRegressions.inputs("kernel-module"))
    func moduleRefusedWithATypedError(_ input: String) throws {
        let bytes = try Self.bytes(input)
        #expect(throws: ModuleError.self, "\(input)") { try ModuleInfo.read(elf: bytes, path: input) }
    }

    /// The target feeds the bytes to both parsers: neither may trap, the index must refuse them.
    @Test(arguments: FuzzRegressions.inputs("kmod-index"))
    func indexRefusedWithATypedError(_ input: String) throws {
        let bytes = try Self.bytes(input)
        _ = try? ModulesDep.parse(String(decoding: bytes, as: UTF8.self))
        #expect(throws: KmodIndexError.self, "\(input)") { try KmodIndex.read(bytes, name: input) }
    }
}
