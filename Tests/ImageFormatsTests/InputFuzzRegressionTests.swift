import ImageCore
import ImageFormats
import Testing
import TestSupport
import Zlib

/// Inputs the `gzip` and `input` fuzz targets once crashed on (Fuzz/Regressions/gzip/ and
/// input/, README "Fuzzing"): each is refused with a typed error. None yet.
@Suite struct InputFuzzRegressionTests {
    @Test(arguments: FuzzRegressions.inputs("gzip"))
    func gzipRefusedWithATypedError(_ input: String) throws {
        let file = try RawFile(path: input, mode: .readOnly)
        let bytes = try file.read(count: Int(try file.size), at: 0)
        do {
            let decompressor = try GzipDecompressor(name: input)
            try bytes.withUnsafeBytes { try decompressor.decompress($0) { _ in } }
            try decompressor.finish()
            Issue.record("\(input): accepted")
        } catch {
            #expect(error is RehostError, "\(input): \(error)")
        }
    }

    @Test(arguments: FuzzRegressions.inputs("input"))
    func inputRefusedWithATypedError(_ input: String) throws {
        let scratch = try TemporaryDirectory(prefix: "rehost-input-fuzz")
        do {
            _ = try InputImage.open(path: input, scratchDirectory: scratch.path)
            Issue.record("\(input): accepted")
        } catch {
            #expect(error is RehostError, "\(input): \(error)")
        }
    }
}
