import Foundation
import ImageCore
@testable import ImageFormats
import Testing
import TestSupport

/// The VMDK inside the archive, extracted by GNU tar, is a valid streamOptimized image of
/// exactly the source disk, as qemu-img sees it.
@Suite struct OVADiskTests {
    static func qemuImgAgrees(raw: String, vmdk: String, size: UInt64) throws {
        try Command.run("qemu-img", ["check", "-f", "vmdk", vmdk]).requireSuccess()
        let compare = try Command.run("qemu-img", ["compare", "-f", "raw", "-F", "vmdk", raw, vmdk])
        #expect(compare.status == 0, "\(compare.stdout) \(compare.stderr)")
        let info = try Command.run("qemu-img", ["info", "--output=json", "-f", "vmdk", vmdk]).requireSuccess()
        let json = try #require(try JSONSerialization.jsonObject(with: Data(info.stdoutBytes)) as? [String: Any])
        #expect((json["virtual-size"] as? NSNumber)?.uint64Value == size)
        let specific = (json["format-specific"] as? [String: Any])?["data"] as? [String: Any]
        #expect(specific?["create-type"] as? String == "streamOptimized")
    }

    @Test func extractedDiskMatchesTheSource() throws {
        let archive = try OVAWriterTests.makeArchive(size: OVAWriterTests.oddSize, options: WriterOptions())
        try Self.qemuImgAgrees(raw: archive.raw, vmdk: archive.extracted + "/" + archive.writer.diskName,
                               size: OVAWriterTests.oddSize)
        #expect(archive.summary.variant.contains("streamOptimized"))
        // The VMDK's own descriptor names its file as it is called inside the archive.
        let head = try RawFile(path: archive.extracted + "/" + archive.writer.diskName, mode: .readOnly).read(count: 4096, at: 512)
        #expect(String(decoding: head, as: UTF8.self).contains("\"\(archive.writer.diskName)\""))
    }

    /// A sparse 5 GiB disk (data near the end, past every 32-bit byte offset), and a
    /// monolithicSparse request that must still produce a streamOptimized member.
    @Test func largeSparseDisk() throws {
        var options = WriterOptions()
        options.vmdkSubformat = .monolithicSparse
        let size: UInt64 = (5 << 30) + (7 << 9)
        let archive = try OVAWriterTests.makeArchive(size: size, options: options)
        let vmdk = archive.extracted + "/" + archive.writer.diskName
        try Self.qemuImgAgrees(raw: archive.raw, vmdk: vmdk, size: size)
        let facts = try OVAFixture.python(OVAFixture.descriptorProgram, [archive.extracted + "/" + archive.writer.descriptorName])
        #expect(facts["capacity"] as? String == String(size))
        let vmdkSize = try FileManager.default.attributesOfItem(atPath: vmdk)[.size] as? NSNumber
        #expect(facts["fileSize"] as? String == vmdkSize.map { String($0.uint64Value) })
        // The archive is only as large as its members: the disk's holes are not in it.
        #expect(archive.summary.fileSize < 64 << 20)
    }

    /// The manifest needs the disk member's digest from the one pass, so a disk writer that
    /// leaves holes (the sparse raw writer) is refused rather than hashed wrongly.
    @Test func aDiskWriterWithHolesIsRefused() throws {
        let directory = try TemporaryDirectory(prefix: "rehost-ova")
        let raw = directory.file("disk.raw"), ova = directory.file("vm.ova")
        try SyntheticDisk.make(at: raw, size: 16 << 20)
        let reader = try RawDiskReader(path: raw)
        _ = FileManager.default.createFile(atPath: ova, contents: nil)
        let writer = try OVAWriter(sink: OutputSink(file: try RawFile(path: ova, mode: .readWrite)),
                                   virtualSize: reader.size, options: WriterOptions()) { sink, size, _, _ in
            RawWriter(sink: sink, virtualSize: size)
        }
        #expect(throws: WriterError.self) { _ = try DiskStreamer.stream(reader, to: [writer]) }
    }
}
