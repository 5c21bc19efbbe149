import Foundation
import ISO9660
import Testing
import TestSupport

/// Rehost's ISO 9660 writer, read back by independent readers (isoinfo from genisoimage, xorriso,
/// 7z, blkid), never by mounting.
struct ISO9660WriterTests {
    static let time: Int64 = 1_704_067_200  // 2024-01-01 00:00:00 UTC

    func write(_ bytes: [UInt8], _ directory: TemporaryDirectory, _ name: String = "disc.iso") throws -> String {
        let path = directory.file(name)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    static let seedFiles = [
        ISO9660.File(name: "user-data", contents: Array("#cloud-config\nruncmd:\n  - echo hello\n".utf8)),
        ISO9660.File(name: "meta-data", contents: Array("instance-id: iid-test\n".utf8)),
        ISO9660.File(name: "network-config", contents: Array("version: 2\n".utf8)),
    ]

    /// isoinfo reads the primary descriptor (label, size, dates) and the Joliet tree with the
    /// exact names; every file's bytes come back.
    @Test func isoinfoReadsLabelJolietNamesAndContents() throws {
        let isoinfo = try Command.require("isoinfo")
        let directory = try TemporaryDirectory()
        let bytes = try ISO9660.image(label: "cidata", files: Self.seedFiles, time: Self.time)
        let path = try write(bytes, directory)
        #expect(bytes.count % 2048 == 0)
        let info = try Command.run(isoinfo, ["-d", "-i", path]).requireSuccess().stdout
        #expect(info.contains("Volume id: cidata"), "\(info)")
        #expect(info.contains("Volume size is: \(bytes.count / 2048)"), "\(info)")
        #expect(info.contains("Logical block size is: 2048"), "\(info)")
        #expect(info.contains("Joliet with UCS level 3 found"), "\(info)")
        // blkid makes an ISO's UUID from the descriptor's modification date.
        let blkid = try Command.run(try Command.require("blkid"), ["-p", "-o", "export", path]).requireSuccess().stdout
        #expect(blkid.contains("UUID=2024-01-01-00-00-00-00") && blkid.contains("LABEL=cidata"), "\(blkid)")
        let joliet = try Command.run(isoinfo, ["-f", "-J", "-i", path]).requireSuccess().stdout
        #expect(Set(joliet.split(separator: "\n").map(String.init)) == ["/user-data", "/meta-data", "/network-config"], "\(joliet)")
        let primary = try Command.run(isoinfo, ["-f", "-i", path]).requireSuccess().stdout
        #expect(Set(primary.split(separator: "\n").map(String.init)) == ["/USER_DATA.;1", "/META_DATA.;1", "/NETWORK_CONFIG.;1"], "\(primary)")
        for file in Self.seedFiles {
            let out = try Command.run(isoinfo, ["-J", "-i", path, "-x", "/" + file.name]).requireSuccess()
            #expect(out.stdoutBytes == file.contents, "\(file.name)")
        }
    }

    /// xorriso and 7z list the same names; blkid sees an iso9660 filesystem labelled as given.
    @Test func xorrisoSevenZipAndBlkidAgree() throws {
        let directory = try TemporaryDirectory()
        let path = try write(try ISO9660.image(label: "CONTEXT", files: [ISO9660.File(name: "context.sh", contents: Array("A='1'\n".utf8))],
                                               time: Self.time), directory)
        let xorriso = try Command.run(try Command.require("xorriso"), ["-indev", path, "-find", "/", "-type", "f"]).requireSuccess()
        #expect(xorriso.stdout.contains("'/context.sh'"), "\(xorriso.stdout)")
        #expect(xorriso.stderr.contains("Volume id    : 'CONTEXT'"), "\(xorriso.stderr)")
        let extracted = directory.file("out.sh")
        _ = try Command.run(try Command.require("xorriso"), ["-osirrox", "on", "-indev", path, "-extract", "/context.sh", extracted]).requireSuccess()
        #expect(try Data(contentsOf: URL(fileURLWithPath: extracted)) == Data("A='1'\n".utf8))
        let sevenZip = try Command.run(try Command.require("7z"), ["l", path]).requireSuccess().stdout
        #expect(sevenZip.contains("context.sh"), "\(sevenZip)")
        let blkid = try Command.run(try Command.require("blkid"), ["-p", "-o", "export", path]).requireSuccess().stdout
        #expect(blkid.contains("TYPE=iso9660"), "\(blkid)")
        #expect(blkid.contains("LABEL=CONTEXT"), "\(blkid)")
    }

    /// Same inputs, same bytes; another time, other bytes only in the dates.
    @Test func deterministic() throws {
        let first = try ISO9660.image(label: "cidata", files: Self.seedFiles, time: Self.time)
        let second = try ISO9660.image(label: "cidata", files: Self.seedFiles, time: Self.time)
        #expect(first == second)
        let later = try ISO9660.image(label: "cidata", files: Self.seedFiles, time: Self.time + 86400)
        #expect(later != first && later.count == first.count)
    }

    /// Many files with long names fill several directory sectors (no record crosses a sector),
    /// and files of several sectors, an empty file and names that collide in ISO 9660's upper-case
    /// form all come back intact.
    @Test func manyFilesAndLargeFiles() throws {
        let isoinfo = try Command.require("isoinfo")
        let directory = try TemporaryDirectory()
        var files: [ISO9660.File] = []
        for index in 0..<60 {
            files.append(ISO9660.File(name: "a-rather-long-file-name-number-\(index).txt", contents: Array("file \(index)\n".utf8)))
        }
        var big = [UInt8](repeating: 0, count: 5000)
        for index in big.indices { big[index] = UInt8(truncatingIfNeeded: index * 7) }
        files += [ISO9660.File(name: "big.bin", contents: big), ISO9660.File(name: "empty", contents: []),
                  ISO9660.File(name: "Case", contents: [1]), ISO9660.File(name: "case", contents: [2])]
        let path = try write(try ISO9660.image(label: "MANY", files: files, time: Self.time), directory)
        let listed = try Command.run(isoinfo, ["-f", "-J", "-i", path]).requireSuccess().stdout
        #expect(Set(listed.split(separator: "\n").map(String.init)) == Set(files.map { "/" + $0.name }))
        let primary = try Command.run(isoinfo, ["-f", "-i", path]).requireSuccess().stdout.split(separator: "\n")
        #expect(primary.count == files.count && Set(primary).count == files.count)
        for file in files {
            let out = try Command.run(isoinfo, ["-J", "-i", path, "-x", "/" + file.name]).requireSuccess()
            #expect(out.stdoutBytes == file.contents, "\(file.name)")
        }
        let xorriso = try Command.run(try Command.require("xorriso"), ["-indev", path, "-find", "/", "-type", "f"]).requireSuccess()
        #expect(xorriso.stdout.split(separator: "\n").count == files.count, "\(xorriso.stdout)")
    }

    @Test func refusesBadNamesAndLabels() {
        #expect(throws: ISO9660.Error.self) { try ISO9660.image(label: "", files: [], time: 0) }
        #expect(throws: ISO9660.Error.self) { try ISO9660.image(label: "a-label-longer-than-16", files: [], time: 0) }
        #expect(throws: ISO9660.Error.self) { try ISO9660.image(label: "X", files: [ISO9660.File(name: "a/b", contents: [])], time: 0) }
        #expect(throws: ISO9660.Error.self) { try ISO9660.image(label: "X", files: [ISO9660.File(name: "a;1", contents: [])], time: 0) }
        #expect(throws: ISO9660.Error.self) {
            try ISO9660.image(label: "X", files: [ISO9660.File(name: "a", contents: []), ISO9660.File(name: "a", contents: [])], time: 0)
        }
    }
}
