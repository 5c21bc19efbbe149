import ImageCore
import ImageFormats
import Testing
import TestSupport

/// Inputs the `vmdk` and `vmdk-descriptor` fuzz targets once crashed on (Fuzz/Regressions/vmdk/
/// and vmdk-descriptor/, README "Fuzzing"): each is refused with a typed error. None yet.
@Suite struct VMDKFuzzRegressionTests {
    @Test(arguments: FuzzRegressions.inputs("vmdk"))
    func sparseRefusedWithATypedError(_ input: String) {
        do {
            try VMDKReader(path: input).forEachDataPiece { _, _ in }
            Issue.record("\(input): accepted")
        } catch {
            #expect(error is RehostError, "\(input): \(error)")
        }
    }

    /// The descriptor is read beside the flat extents the fuzz target provides
    /// (Fuzz/Sources/rehost-fuzz/Targets+Images.swift, `VMDKExtents`).
    @Test(arguments: FuzzRegressions.inputs("vmdk-descriptor"))
    func descriptorRefusedWithATypedError(_ input: String) throws {
        let directory = try TemporaryDirectory(prefix: "rehost-vmdk-fuzz")
        let pattern = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 9) }
        try RawFile(path: directory.file("flat.vmdk"), mode: .createExclusive).write(pattern, at: 0)
        try RawFile(path: directory.file("hole.vmdk"), mode: .createExclusive).truncate(to: 1 << 20)
        try RawFile(path: directory.file("small.vmdk"), mode: .createExclusive).write([UInt8](repeating: 0xA5, count: 1536), at: 0)
        let descriptor = directory.file("descriptor.vmdk")
        let source = try RawFile(path: input, mode: .readOnly)
        try RawFile(path: descriptor, mode: .createExclusive).write(try source.read(count: Int(try source.size), at: 0), at: 0)
        do {
            try VMDKReader(path: descriptor).forEachDataPiece { _, _ in }
            Issue.record("\(input): accepted")
        } catch {
            #expect(error is RehostError, "\(input): \(error)")
        }
    }
}
