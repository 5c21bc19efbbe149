import Foundation
import Testing
import TestSupport

/// Bytes from an image reach the terminal escaped: a label, a file name and a VMDK createType
/// holding ESC [31m and BEL (and an invalid UTF-8 byte) show as `\xNN`, in the text reports and
/// in the one-line errors; the JSON report stays JSON and holds the real value.
struct PrintableMessagesTests {
    static let hostile = "\u{1B}[31mred\u{07}"

    func expectPrintable(_ bytes: [UInt8], _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let bad = bytes.filter { $0 < 0x20 && $0 != 0x0A && $0 != 0x09 || $0 == 0x7F }
        #expect(bad.isEmpty, "\(what) holds control bytes \(bad): \(String(decoding: bytes, as: UTF8.self).debugDescription)",
                sourceLocation: sourceLocation)
    }

    @Test func labelsAndFileNamesAreEscapedInReportsAndWarnings() throws {
        let dir = try TemporaryDirectory(prefix: "rehost-printable")
        try dir.makeWorldWritable()
        let fixture = try Fixture.xenInstance()
        let image = dir.file("hostile.img")
        try Command.run("cp", ["--sparse=always", fixture.imagePath, image]).requireSuccess()
        try Command.run("tune2fs", ["-L", Self.hostile, image]).requireSuccess()
        // A hard-linked directory with a hostile name: the copy's warning quotes the name.
        let name = "/srv/\u{1B}[31mevil\u{07}"
        try Command.run("debugfs", ["-w", "-R", "link /opt/app \(name)", image]).requireSuccess()
        try Command.run("chmod", ["644", image]).requireSuccess()

        let inspect = try Command.runRehost(["inspect", image], asUser: "nobody")
        #expect(inspect.status == 0, "\(inspect.stderr)")
        expectPrintable(inspect.stdoutBytes + inspect.stderrBytes, "inspect's output")
        #expect(inspect.stdout.contains("label \"\\x1B[31mred\\x07\""), "\(inspect.stdout)")

        let convert = try Command.runRehost(["convert", image, "-o", dir.file("out.raw")], asUser: "nobody")
        #expect(convert.status == 0, "\(convert.stderr)")
        expectPrintable(convert.stdoutBytes + convert.stderrBytes, "convert's output")
        #expect(convert.stdout.contains("/srv/\\x1B[31mevil\\x07: a second link to the directory /opt/app"), "\(convert.stdout)")

        let json = try Command.runRehost(["inspect", image, "--json"], asUser: "nobody")
        expectPrintable(json.stdoutBytes, "the JSON report")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(json.stdoutBytes)) as? [String: Any])
        let filesystem = (report["input"] as? [String: Any])?["filesystem"] as? [String: Any]
        #expect(filesystem?["label"] as? String == Self.hostile)
    }

    @Test func aVMDKDescriptorFieldIsEscapedInTheError() throws {
        let dir = try TemporaryDirectory(prefix: "rehost-printable")
        try dir.makeWorldWritable()
        let descriptor = dir.file("hostile.vmdk")
        let text = "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"\(Self.hostile)\"\nRW 2048 FLAT \"hostile-flat.vmdk\" 0\n"
        try text.write(toFile: descriptor, atomically: true, encoding: .utf8)
        #expect(FileManager.default.createFile(atPath: dir.file("hostile-flat.vmdk"), contents: Data(count: 1 << 20)))
        let result = try Command.runRehost(["export", descriptor, "-o", dir.file("out.raw")])
        #expect(result.status == 1)
        expectPrintable(result.stderrBytes, "the error")
        #expect(result.stderr.split(separator: "\n").count == 1)
        #expect(result.stderr.contains("createType \"\\x1B[31mred\\x07\""), "\(result.stderr)")
    }
}
