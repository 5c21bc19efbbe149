import Foundation
import KernelPackages
import Testing
import TestSupport

/// Damaged, truncated, hostile and oversized packages: each gives one typed error line, with the
/// byte offset where one applies, and nothing else.
@Suite struct DamagedPackageTests {
    static func bytes(_ path: String) throws -> [UInt8] { Array(try Data(contentsOf: URL(fileURLWithPath: path))) }

    static func write(_ bytes: [UInt8], _ name: String, in directory: TemporaryDirectory) throws -> String {
        let path = directory.file(name)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// Reads `bytes` written to a file; returns the error (or nil when reading succeeded).
    static func readError(_ bytes: [UInt8], in directory: TemporaryDirectory, name: String = "damaged") throws -> KernelPackageError? {
        let path = try write(bytes, name, in: directory)
        do {
            _ = try KernelPackage.read(path: path)
            return nil
        } catch {
            return error
        }
    }

    /// The offsets of the RPM's structures: signature at 96, then the main header, then the payload.
    static func rpmLayout(_ bytes: [UInt8]) -> (header: Int, payload: Int) {
        func headerEnd(_ start: Int) -> Int {
            start + 16 + 16 * Int(bytes.loadBE(UInt32.self, at: start + 8)) + Int(bytes.loadBE(UInt32.self, at: start + 12))
        }
        let header = (headerEnd(96) + 7) & ~7
        return (header, headerEnd(header))
    }

    @Test func truncatedRPMsNameWhereTheyEnd() throws {
        let original = try Self.bytes(try BuiltPackages.kernelRPM(payload: "w9.gzdio"))
        let layout = Self.rpmLayout(original)
        let directory = try TemporaryDirectory(prefix: "rehost-cut")
        for cut in [0, 10, 95, 100, 200, layout.header + 8, layout.header + 100, layout.payload - 1, layout.payload + 10,
                    original.count / 2, original.count - 1] {
            let error = try #require(try Self.readError(Array(original.prefix(cut)), in: directory), "cut at \(cut)")
            if cut == 0 {
                #expect(error.description.hasSuffix("found an empty file"))
                continue
            }
            guard case let .truncated(_, offset, _) = error else {
                Issue.record("cut at \(cut): \(error)")
                continue
            }
            #expect(offset == UInt64(cut), "\(error)")
            #expect(error.description.contains("truncated at byte \(cut)"))
        }
    }

    @Test func damagedRPMHeadersAreCaughtWhereTheyBreak() throws {
        let original = try Self.bytes(try BuiltPackages.tinyKernelRPM())
        let layout = Self.rpmLayout(original)
        let directory = try TemporaryDirectory(prefix: "rehost-flip")
        func damaged(_ change: (inout [UInt8]) -> Void) throws -> KernelPackageError? {
            var bytes = original
            change(&bytes)
            return try Self.readError(bytes, in: directory)
        }
        // Lead magic.
        let lead = try #require(try damaged { $0[0] = 0x00 })
        #expect(lead.description.contains("not an RPM or DEB package") && lead.description.contains("found 00 ab ee db"))
        // Signature and main header magic.
        #expect(try damaged { $0[96] = 0x8F }.flatMap(offset(of:)) == 96)
        #expect(try damaged { $0[layout.header + 1] = 0 }.flatMap(offset(of:)) == UInt64(layout.header))
        // An index entry's type, and its offset pointing outside the store.
        let entry = layout.header + 16 + 16 * 3
        #expect(try damaged { $0[entry + 7] = 0x42 }.flatMap(offset(of:)) == UInt64(entry))
        #expect(try damaged { $0[entry + 8] = 0x7F }.flatMap(offset(of:)) == UInt64(entry))
        // An absurd entry count: the header claims more than the file holds.
        let huge = try #require(try damaged { $0.replaceSubrange(layout.header + 8..<layout.header + 12, with: [0, 0, 0xFF, 0xFF]) })
        guard case .truncated = huge else { Issue.record("\(huge)"); return }
        // The payload: a flipped compressed byte is caught by the decoder (xz checks a CRC).
        let payloadError = try #require(try damaged { $0[$0.count - 40] ^= 0xFF })
        switch payloadError {
        case .compression, .cpio, .corrupt: break
        default: Issue.record("payload flip: \(payloadError)")
        }
        if let at = offset(of: payloadError), case .compression = payloadError { #expect(at >= UInt64(layout.payload)) }
    }

    @Test func damagedDebsAreCaughtWhereTheyBreak() throws {
        let deb = try SmallDebTests.featureDeb(compression: "gzip")
        let original = try Self.bytes(deb)
        let directory = try TemporaryDirectory(prefix: "rehost-deb-flip")
        // The ar member header end of debian-binary, at 8 + 58.
        var bytes = original
        bytes[66] = UInt8(ascii: "x")
        let fmag = try #require(try Self.readError(bytes, in: directory))
        #expect(offset(of: fmag) == 66, "\(fmag)")
        // A size that runs past the end.
        bytes = original
        bytes.replaceSubrange(56..<66, with: Array("9999999999".utf8))
        let size = try #require(try Self.readError(bytes, in: directory))
        guard case .truncated = size else { Issue.record("\(size)"); return }
        // Cut anywhere: truncated, with the offset where the file ends (or a decoder's complaint).
        for cut in stride(from: 9, to: original.count, by: max(1, original.count / 17)) {
            let error = try #require(try Self.readError(Array(original.prefix(cut)), in: directory), "cut at \(cut)")
            #expect(offset(of: error) != nil, "cut at \(cut): \(error)")
        }
        // The wrong first member.
        bytes = original
        bytes.replaceSubrange(8..<21, with: Array("debian-binarz".utf8))
        #expect(try Self.readError(bytes, in: directory)?.description.contains("expected the first ar member to be debian-binary") == true)
    }

    @Test func limitsBoundTheExpandedPayloadAndTheEntries() throws {
        let rpm = try BuiltPackages.tinyKernelRPM()
        let small = PackageLimits(maxExpandedBytes: 1024, maxFiles: 200_000)
        let expanded = expectPackageError { () throws(KernelPackageError) in _ = try KernelPackage.read(path: rpm, limits: small) }
        #expect(expanded?.description.contains("exceeds the limit of 1024") == true, "\(String(describing: expanded))")
        let few = PackageLimits(maxExpandedBytes: 1 << 30, maxFiles: 2)
        let entries = expectPackageError { () throws(KernelPackageError) in _ = try KernelPackage.read(path: rpm, limits: few) }
        #expect(entries?.description.contains("exceeds the limit of 2") == true, "\(String(describing: entries))")
        let deb = try SmallDebTests.featureDeb(compression: "xz")
        let debEntries = expectPackageError { () throws(KernelPackageError) in _ = try KernelPackage.read(path: deb, limits: few) }
        #expect(debEntries?.description.contains("exceeds the limit of 2") == true, "\(String(describing: debEntries))")
    }

    @Test(arguments: ["./../etc/passwd", "usr/../../x", "../boot/vmlinuz-1"])
    func namesLeavingTheRootAreRefused(name: String) throws {
        let directory = try TemporaryDirectory(prefix: "rehost-escape")
        let data = CraftedArchives.tar([.init(name: "./", type: "5"), .init(name: name, contents: Array("x".utf8))])
        let deb = CraftedArchives.deb(data: data)
        let error = try #require(try Self.readError(deb, in: directory))
        guard case let .unsafePath(_, offset, found) = error else { Issue.record("\(error)"); return }
        #expect(found == name && offset == 512)
        #expect(error.description.contains("no \"..\""))
    }

    @Test func linksMustNameEarlierFiles() throws {
        let directory = try TemporaryDirectory(prefix: "rehost-links")
        let dangling = CraftedArchives.deb(data: CraftedArchives.tar([.init(name: "./a", type: "1", linkName: "./missing")]))
        let error = try #require(try Self.readError(dangling, in: directory))
        #expect(error.description.contains("hard link /a to name an earlier regular file"), "\(error)")
        // Absolute symlink targets are content, not names: they are kept as written.
        let absolute = CraftedArchives.deb(data: CraftedArchives.tar([.init(name: "./a", type: "2", linkName: "/../../etc/shadow")]))
        let contents = try PackageContents.read(path: try Self.write(absolute, "absolute.deb", in: directory))
        #expect(contents.files == [PackageFile(path: "/a", kind: .symlink, mode: 0o644, linkTarget: "/../../etc/shadow")])
    }

    @Test func entriesBeneathTheirOwnSymlinksAreRefused() throws {
        let directory = try TemporaryDirectory(prefix: "rehost-beneath")
        let deb = CraftedArchives.deb(data: CraftedArchives.tar([
            .init(name: "./lib", type: "2", linkName: "/etc"),
            .init(name: "./lib/passwd", contents: Array("root::0:0::/:/bin/sh\n".utf8)),
        ]))
        let error = try #require(try Self.readError(deb, in: directory))
        guard case let .throughSymlink(_, offset, name, symlink) = error else { Issue.record("\(error)"); return }
        #expect(offset == 512 && name == "/lib/passwd" && symlink == "/lib")
    }

    @Test func otherFilesAreNotPackages() throws {
        let directory = try TemporaryDirectory(prefix: "rehost-other")
        let error = try #require(try Self.readError(Array("#!/bin/sh\nexit 0\n".utf8), in: directory))
        #expect(error.description == "\(directory.file("damaged")): not an RPM or DEB package: expected the RPM lead magic ed ab ee db or the ar magic \"!<arch>\\n\" at byte 0, found 23 21 2f 62 69 6e 2f 73")
        let missing = expectPackageError { () throws(KernelPackageError) in _ = try KernelPackage.read(path: directory.file("absent.rpm")) }
        #expect(missing?.description.contains("absent.rpm") == true)
    }

    /// Seeded mutations of small packages (byte flips biased to the headers, cuts, inserted and
    /// deleted runs): each read returns or throws a typed one-line error; none crashes or hangs.
    @Test(arguments: ["rpm", "deb"])
    func seededMutationsOnlyThrowTypedErrors(kind: String) throws {
        let path = kind == "rpm" ? try BuiltPackages.tinyKernelRPM() : try SmallDebTests.featureDeb(compression: "gzip")
        let original = try Self.bytes(path)
        let headerSpan = kind == "rpm" ? Self.rpmLayout(original).payload : min(original.count, 1200)
        let directory = try TemporaryDirectory(prefix: "rehost-fuzz")
        var random = SplitMix(seed: kind == "rpm" ? 0x5250_4D21 : 0x4445_4221)
        var outcomes: [String: Int] = [:]
        let started = ContinuousClock.now
        for round in 0..<300 {
            var bytes = original
            switch random.below(6) {
            case 0, 1, 2:
                for _ in 0...random.below(4) {
                    let at = random.below(3) == 0 ? random.below(bytes.count) : random.below(headerSpan)
                    bytes[at] = random.below(2) == 0 ? bytes[at] ^ UInt8(1 << random.below(8)) : UInt8(truncatingIfNeeded: random.next())
                }
            case 3:
                bytes = Array(bytes.prefix(random.below(bytes.count)))
            case 4:
                let at = random.below(bytes.count)
                bytes.insert(contentsOf: random.bytes(1 + random.below(64)), at: at)
            default:
                let at = random.below(bytes.count)
                bytes.removeSubrange(at..<min(bytes.count, at + 1 + random.below(64)))
            }
            let file = try Self.write(bytes, "mutant-\(round)", in: directory)
            do {
                _ = try KernelPackage.read(path: file)
                outcomes["read", default: 0] += 1
            } catch {
                #expect(!error.description.isEmpty && !error.description.contains("\n"), "round \(round): \(error.description)")
                #expect(error.description.hasPrefix(file), "round \(round): \(error.description)")
                outcomes[String(describing: error).prefix { $0 != "(" }.description, default: 0] += 1
            }
            try FileManager.default.removeItem(atPath: file)
        }
        #expect(ContinuousClock.now - started < .seconds(60))
        #expect((outcomes["read"] ?? 0) < 300, "\(outcomes)")
    }
}

/// Hand-made tar and ar archives, for names and links dpkg-deb would never write.
enum CraftedArchives {
    struct TarEntry {
        var name: String
        var type: Character = "0"
        var linkName: String = ""
        var contents: [UInt8] = []
    }

    static func tar(_ entries: [TarEntry]) -> [UInt8] {
        var output: [UInt8] = []
        for entry in entries {
            var block = [UInt8](repeating: 0, count: 512)
            func put(_ text: String, at offset: Int) { for (index, byte) in text.utf8.enumerated() { block[offset + index] = byte } }
            func octal(_ value: Int, at offset: Int, width: Int) {
                put(String(repeating: "0", count: max(0, width - 1 - String(value, radix: 8).count)) + String(value, radix: 8), at: offset)
            }
            put(entry.name, at: 0)
            octal(0o644, at: 100, width: 8)
            octal(0, at: 108, width: 8)
            octal(0, at: 116, width: 8)
            octal(entry.contents.count, at: 124, width: 12)
            octal(0, at: 136, width: 12)
            block[156] = entry.type.asciiValue!
            put(entry.linkName, at: 157)
            put("ustar\0" + "00", at: 257)
            put("        ", at: 148)
            let sum = block.reduce(0) { $0 + Int($1) }
            octal(sum, at: 148, width: 7)
            output += block + entry.contents
            output += [UInt8](repeating: 0, count: (512 - entry.contents.count % 512) % 512)
        }
        return output + [UInt8](repeating: 0, count: 1024)
    }

    static func ar(_ members: [(String, [UInt8])]) -> [UInt8] {
        var output = Array("!<arch>\n".utf8)
        for (name, data) in members {
            func field(_ text: String, _ width: Int) -> [UInt8] { Array((text + String(repeating: " ", count: width - text.count)).utf8) }
            output += field(name, 16) + field("0", 12) + field("0", 6) + field("0", 6) + field("100644", 8) + field("\(data.count)", 10)
            output += Array("`\n".utf8) + data
            if data.count % 2 == 1 { output.append(UInt8(ascii: "\n")) }
        }
        return output
    }

    /// A DEB whose data.tar (uncompressed) is `data`, with a minimal control.tar.
    static func deb(data: [UInt8]) -> [UInt8] {
        let control = tar([TarEntry(name: "./control", contents: Array("Package: crafted\nVersion: 1\nArchitecture: all\n".utf8))])
        return ar([("debian-binary", Array("2.0\n".utf8)), ("control.tar", control), ("data.tar", data)])
    }
}
