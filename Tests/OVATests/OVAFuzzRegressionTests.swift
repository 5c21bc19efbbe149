import ImageCore
import ImageFormats
import Testing
import TestSupport

/// Archives the `ova` fuzz target once crashed on (Fuzz/Regressions/ova/): each is refused with
/// a typed error, the reader never traps.
@Suite struct OVAFuzzRegressionTests {
    @Test(arguments: FuzzRegressions.inputs("ova"))
    func refusedWithATypedError(_ input: String) throws {
        let scratch = try TemporaryDirectory(prefix: "rehost-ova-fuzz")
        do {
            let reader = try OVAReader(path: input, scratchDirectory: scratch.path)
            try reader.forEachDataPiece { _, _ in }
            Issue.record("\(input): accepted")
        } catch {
            #expect(error is RehostError, "\(input): \(error)")
        }
    }

    /// The first finding: a file shorter than one tar block made `fileSize - 512` wrap.
    @Test func fileShorterThanOneBlockIsTruncated() throws {
        let directory = try TemporaryDirectory(prefix: "rehost-ova-fuzz")
        let path = directory.file("short.ova")
        try RawFile(path: path, mode: .createExclusive).write([UInt8](repeating: 0x41, count: 100), at: 0)
        #expect(throws: ImageReadError.truncated(format: .ova, path: path, offset: 0, needed: 512, fileSize: 100)) {
            try OVAReader(path: path, scratchDirectory: directory.path)
        }
    }
}
