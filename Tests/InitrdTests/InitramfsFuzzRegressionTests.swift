import ImageCore
import Initrd
import Testing
import TestSupport

/// Images the `initramfs` fuzz target once crashed on (Fuzz/Regressions/initramfs/, README
/// "Fuzzing"): each is refused with a typed error. None yet.
@Suite struct InitramfsFuzzRegressionTests {
    @Test(arguments: FuzzRegressions.inputs("initramfs"))
    func refusedWithATypedError(_ input: String) throws {
        let file = try RawFile(path: input, mode: .readOnly)
        let bytes = try file.read(count: Int(try file.size), at: 0)
        do {
            let image = try bytes.withUnsafeBytes { try InitramfsImage(bytes: $0, name: input) }
            _ = image.unpackedTree()
            Issue.record("\(input): accepted")
        } catch {
            #expect(error is RehostError, "\(input): \(error)")
        }
    }
}
