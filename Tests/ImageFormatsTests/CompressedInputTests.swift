import Foundation
import ImageCore
import ImageFormats
import Testing

/// xz and zstd inputs to `convert` and `inspect`: expanded as gzip input is, found by magic.
@Suite struct CompressedInputTests {
    let uuid = "3c1e0b8e-2c47-4c1a-8d0e-5b9a7e3f2a12"
    let fsKiB: UInt64 = 16384

    @Test(arguments: [("xz", ["-c", "-T2"]), ("zstd", ["-c", "-q"])])
    func xzAndZstdOfBareFilesystem(tool: String, flags: [String]) throws {
        let dir = try TestDirectory()
        let raw = dir.file("root.img")
        try makeExt3(raw, sizeKiB: fsKiB, label: "root", uuid: uuid)
        // No suffix that says what it is: the magic does.
        let path = dir.file("root.bin")
        try writeAll(path, try run(tool, flags + [raw]))
        let image = try InputImage.open(path: path, scratchDirectory: dir.path)
        guard case let .compressed(format, inner) = image.kind else {
            Issue.record("\(tool): kind \(image.kind)")
            return
        }
        #expect(format.rawValue == (tool == "zstd" ? "zstd" : "xz"))
        #expect(inner == .bareFilesystem)
        #expect(image.probe.uuid == uuid)
        #expect(try readAll(try #require(image.temporaryPath)) == readAll(raw))
    }

    @Test(arguments: ["xz", "zstd"])
    func aTruncatedStreamIsRefused(tool: String) throws {
        let dir = try TestDirectory()
        let raw = dir.file("root.img")
        try makeExt3(raw, sizeKiB: fsKiB, label: "root", uuid: uuid)
        let whole = try run(tool, ["-c", "-q", raw])
        let path = dir.file("root.img.cut")
        try writeAll(path, Array(whole.prefix(whole.count / 2)))
        #expect(throws: (any Error).self) { try InputImage.open(path: path, scratchDirectory: dir.path) }
        do {
            _ = try InputImage.open(path: path, scratchDirectory: dir.path)
        } catch {
            #expect("\(error)".contains("truncated"), "\(error)")
        }
    }
}
