import Foundation
import ImageCore
@testable import ImageFormats
import Testing
import TestSupport

@Suite struct TarHeaderTests {
    /// A header's fields land at the ustar offsets, and it decodes back to itself.
    @Test func ustarFieldsAndRoundTrip() throws {
        let header = TarHeader(name: "vm-disk1.vmdk", size: 0o1234567, modificationTime: 1_700_000_000)
        let block = try header.encoded()
        #expect(block.count == 512)
        #expect(Array(block[0..<13]) == Array("vm-disk1.vmdk".utf8) && block[13] == 0)
        #expect(String(decoding: block[100..<107], as: UTF8.self) == "0000644" && block[107] == 0)
        #expect(String(decoding: block[124..<135], as: UTF8.self) == "00001234567" && block[135] == 0)
        #expect(String(decoding: block[136..<147], as: UTF8.self) == String(1_700_000_000, radix: 8))
        #expect(block[156] == UInt8(ascii: "0"))
        #expect(Array(block[257..<265]) == Array("ustar".utf8) + [0] + Array("00".utf8))
        // Checksum: six octal digits, NUL, space; the sum with the field taken as spaces.
        #expect(block[154] == 0 && block[155] == UInt8(ascii: " "))
        var sum = 0
        for (index, byte) in block.enumerated() { sum += (148..<156).contains(index) ? 32 : Int(byte) }
        #expect(Int(String(decoding: block[148..<154], as: UTF8.self), radix: 8) == sum)
        #expect(try TarHeader.decode(block, path: "t", offset: 0) == header)
    }

    @Test func corruptHeadersAreRefused() throws {
        let block = try TarHeader(name: "a.ovf", size: 10, modificationTime: 0).encoded()
        var corrupt = block
        corrupt[0] = UInt8(ascii: "b")
        #expect(throws: OVAError.self) { try TarHeader.decode(corrupt, path: "t", offset: 1024) }
        var noMagic = block
        noMagic[257] = 0
        #expect(throws: OVAError.self) { try TarHeader.decode(noMagic, path: "t", offset: 0) }
        #expect(throws: OVAError.memberNameTooLong(name: String(repeating: "x", count: 101), limit: 100)) {
            _ = try TarHeader(name: String(repeating: "x", count: 101), size: 0, modificationTime: 0).encoded()
        }
    }

    /// 8 GiB - 1 is the last ustar size; from 8 GiB on the header is GNU with a base-256 size.
    @Test func sizeEncodingSwitchesAtEightGiB() throws {
        let last = try TarHeader(name: "d", size: (8 << 30) - 1, modificationTime: 0).encoded()
        #expect(String(decoding: last[124..<135], as: UTF8.self) == "77777777777")
        let big = try TarHeader(name: "d", size: 8 << 30, modificationTime: 0).encoded()
        #expect(big[124] == 0x80)
        #expect(Array(big[257..<265]) == Array("ustar  ".utf8) + [0])
        #expect(try TarHeader.decode(big, path: "t", offset: 0).size == 8 << 30)
    }

    /// A sparse archive with a 9 GiB member: GNU tar and python read its size from the GNU
    /// base-256 field, and find the next member after it.
    @Test func gnuToolsReadALargeMember() throws {
        let directory = try TemporaryDirectory(prefix: "rehost-tar")
        let path = directory.file("big.tar")
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        let file = try RawFile(path: path, mode: .readWrite)
        let size: UInt64 = (9 << 30) + 1000
        try file.write(try TarHeader(name: "big.vmdk", size: size, modificationTime: 0).encoded(), at: 0)
        let next = 512 + TarHeader.blocks(for: size)
        try file.write(try TarHeader(name: "after.mf", size: 3, modificationTime: 0).encoded() + Array("ok\n".utf8), at: next)
        try file.truncate(to: next + 1024 + 1024)

        let listing = try Command.run("tar", ["-tvf", path]).requireSuccess().stdout
        let lines = listing.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true) }
        #expect(lines.count == 2)
        #expect(lines.first.map { $0.contains(Substring(String(size))) && $0.last == "big.vmdk" } == true)
        #expect(lines.last?.last == "after.mf")

        let python = try OVAFixture.python(OVAFixture.tarfileProgram, [path])
        let members = try #require(python["members"] as? [[String: Any]])
        #expect(members.map { $0["name"] as? String } == ["big.vmdk", "after.mf"])
        #expect((members.first?["size"] as? NSNumber)?.uint64Value == size)
        #expect(members.allSatisfy { $0["pax"] as? Int == 0 })
    }

    @Test func memberNamesAreSafe() {
        #expect(OVAWriter.memberBaseName("web server/01") == "web_server_01")
        #expect(OVAWriter.memberBaseName("..hidden") == "hidden")
        #expect(OVAWriter.memberBaseName("") == "vm")
        #expect(OVAWriter.memberBaseName("é") == "_")
        #expect(OVAWriter.memberBaseName(String(repeating: "a", count: 300)).count == 64)
    }
}
