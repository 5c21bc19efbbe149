import ImageCore
import KernelPackages
import Testing
import TestSupport

/// Inputs the `package` and `kernel-image` fuzz targets once crashed on
/// (Fuzz/Regressions/package/ and kernel-image/, README "Fuzzing"). None yet.
@Suite struct PackageFuzzRegressionTests {
    @Test(arguments: FuzzRegressions.inputs("package"))
    func packageRefusedWithATypedError(_ input: String) {
        do {
            _ = try KernelPackage(PackageContents.read(path: input), path: input)
            Issue.record("\(input): accepted")
        } catch {
            #expect(error is RehostError, "\(input): \(error)")
        }
    }

    /// `identify` never throws: it judges any bytes, so the test is that it returns.
    @Test(arguments: FuzzRegressions.inputs("kernel-image"))
    func kernelImageJudged(_ input: String) throws {
        let file = try RawFile(path: input, mode: .readOnly)
        _ = KernelImage.identify(try file.read(count: Int(try file.size), at: 0), path: input)
    }
}
