import ImageCore
import ImageFormats
import Testing
import TestSupport

/// Images the `vdi` and `vhd` fuzz targets once crashed on (Fuzz/Regressions/vdi/ and vhd/,
/// README "Fuzzing"): each is refused with a typed error. None yet.
@Suite struct VDIVHDFuzzRegressionTests {
    @Test(arguments: FuzzRegressions.inputs("vdi"))
    func vdiRefusedWithATypedError(_ input: String) {
        do {
            try VDIReader(path: input).forEachDataPiece { _, _ in }
            Issue.record("\(input): accepted")
        } catch {
            #expect(error is RehostError, "\(input): \(error)")
        }
    }

    @Test(arguments: FuzzRegressions.inputs("vhd"))
    func vhdRefusedWithATypedError(_ input: String) {
        do {
            try VHDReader(path: input).forEachDataPiece { _, _ in }
            Issue.record("\(input): accepted")
        } catch {
            #expect(error is RehostError, "\(input): \(error)")
        }
    }
}
