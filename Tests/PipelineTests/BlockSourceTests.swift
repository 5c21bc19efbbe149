import Ext2
import Foundation
import GuestFixups
@testable import Pipeline
import Testing
import TestSupport

/// libext2fs reading through Rehost's io_manager, from a source that is no file: the same
/// filesystem as through unix_io, and a source's error in the message of the call it failed.
struct BlockSourceTests {
    final class MemorySource: Ext2BlockSource {
        let bytes: [UInt8]
        var reads = 0
        /// Reads touching bytes from here on fail.
        var failFrom: UInt64 = .max

        struct Broken: Error, CustomStringConvertible {
            let offset: UInt64
            var description: String { "the source cannot read byte \(offset): corrupt cluster" }
        }

        init(_ bytes: [UInt8]) { self.bytes = bytes }

        var size: UInt64 { UInt64(bytes.count) }

        func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws {
            reads += 1
            guard offset + UInt64(buffer.count) <= failFrom else { throw Broken(offset: offset) }
            bytes.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[Int(offset)..<(Int(offset) + buffer.count)])) }
        }
    }

    func makeImage(in dir: TemporaryDirectory) throws -> String {
        let staging = dir.file("staging"), image = dir.file("guest.img")
        try Command.run("/bin/sh", ["-c", """
            set -e
            mkdir -p \(staging)/etc \(staging)/opt
            printf 'hello\\n' > \(staging)/etc/motd
            head -c 3000000 /dev/urandom > \(staging)/opt/blob
            ln -s /etc/motd \(staging)/etc/motd-link
            mke2fs -q -F -t ext3 -b 4096 -I 128 -L guest -d \(staging) \(image) 32M
            """]).requireSuccess()
        return image
    }

    @Test func readsTheSameFilesystemAsUnixIO() throws {
        let dir = try TemporaryDirectory()
        let image = try makeImage(in: dir)
        let source = MemorySource(Array(try Data(contentsOf: URL(fileURLWithPath: image))))
        let direct = try Ext2Filesystem(path: image)
        let through = try Ext2Filesystem(source: source, name: "memory")
        #expect(through.label == "guest" && through.uuid == direct.uuid)
        #expect(through.blocksCount == direct.blocksCount && through.usedInodes == direct.usedInodes)
        let a = Ext2GuestFilesystem(direct), b = Ext2GuestFilesystem(through)
        #expect(try b.readText("/etc/motd-link") == "hello\n")
        #expect(try b.listDirectory("/etc") == a.listDirectory("/etc"))
        let ino = try #require(try through.lookup("/opt/blob"))
        #expect(try through.readWholeFile(ino) == direct.readWholeFile(#require(try direct.lookup("/opt/blob"))))
        #expect(source.reads > 0)
    }

    @Test func aSourceErrorIsNamedInTheFailure() throws {
        let dir = try TemporaryDirectory()
        let image = try makeImage(in: dir)
        let source = MemorySource(Array(try Data(contentsOf: URL(fileURLWithPath: image))))
        source.failFrom = 0
        let error = #expect(throws: Ext2Error.self) { _ = try Ext2Filesystem(source: source, name: "memory disk") }
        #expect(error?.description.hasPrefix("memory disk: opening the ext2/3/4 filesystem failed") == true, "\(String(describing: error))")
        #expect(error?.description.contains("corrupt cluster") == true, "\(String(describing: error))")
    }
}
