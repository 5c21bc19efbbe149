import ImageCore
import ImageFormats
import Testing
import TestSupport

/// Images the `qcow2` fuzz target once crashed on (Fuzz/Regressions/qcow2/, README "Fuzzing"):
/// each is refused with a typed error. None yet; a finding's input goes there once fixed.
@Suite struct QCOW2FuzzRegressionTests {
    @Test(arguments: FuzzRegressions.inputs("qcow2"))
    func refusedWithATypedError(_ input: String) {
        do {
            try QCOW2Reader(path: input).forEachDataPiece { _, _ in }
            Issue.record("\(input): accepted")
        } catch {
            #expect(error is RehostError, "\(input): \(error)")
        }
    }
}
