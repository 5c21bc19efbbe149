import DiskLayout
import ImageCore
import Testing
import TestSupport

/// Inputs the `mbr` fuzz target once crashed on (Fuzz/Regressions/mbr/, README "Fuzzing"): 512
/// bytes of sector, then 8 of disk size in sectors (little-endian), as the target reads them.
/// Each is refused with a typed error. None yet.
@Suite struct MBRFuzzRegressionTests {
    @Test(arguments: FuzzRegressions.inputs("mbr"))
    func refusedWithATypedError(_ input: String) throws {
        let file = try RawFile(path: input, mode: .readOnly)
        let bytes = try file.read(count: Int(try file.size), at: 0)
        let sector = Array(bytes.prefix(MBR.sectorSize)) + [UInt8](repeating: 0, count: max(0, MBR.sectorSize - bytes.count))
        let diskSectors = bytes.count >= MBR.sectorSize + 8 ? bytes.loadLE(UInt64.self, at: MBR.sectorSize) : nil
        do {
            _ = try MBR.decode(sector, diskSectors: diskSectors).encode()
            Issue.record("\(input): accepted")
        } catch {
            #expect(error is RehostError, "\(input): \(error)")
        }
    }
}
