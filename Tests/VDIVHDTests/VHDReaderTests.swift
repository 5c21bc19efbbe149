import Foundation
import ImageCore
import ImageFormats
import Testing
import TestSupport

/// 12 MiB and three sectors: not a multiple of the 2 MiB block, and no CHS geometry says it, so
/// images whose size comes from CHS ("qemu", "vpc ") read larger than their source.
private let oddSize: UInt64 = 12 * MiB + 3 * 512

private func writerVHD(_ raw: String, _ output: String, _ variant: WriterOptions.VHDVariant) throws {
    var options = WriterOptions()
    options.vhdVariant = variant
    try convert(raw, to: output) { try VHDWriter(sink: $0, virtualSize: $1, options: options) }
}

/// The specification's checksum of `bytes` with the four at `field` left out.
private func checksum(_ bytes: [UInt8], field: Int) -> UInt32 {
    var sum: UInt32 = 0
    for (i, byte) in bytes.enumerated() where !(field..<(field + 4)).contains(i) { sum &+= UInt32(byte) }
    return ~sum
}

/// Edits the footer (512 bytes) or dynamic header (1024 bytes) at `offset` and stores a
/// checksum that matches again, so the test reaches the check behind it.
private func rewrite(_ path: String, footerAt offset: UInt64, _ edit: (inout [UInt8]) -> Void) throws {
    try rewrite(path, at: offset, size: 512, checksumField: 64, edit)
}

private func rewrite(_ path: String, dynamicHeaderAt offset: UInt64, _ edit: (inout [UInt8]) -> Void) throws {
    try rewrite(path, at: offset, size: 1024, checksumField: 36, edit)
}

private func rewrite(_ path: String, at offset: UInt64, size: Int, checksumField: Int, _ edit: (inout [UInt8]) -> Void) throws {
    let file = try RawFile(path: path, mode: .readWrite)
    var bytes = try file.read(count: size, at: offset)
    edit(&bytes)
    bytes.replaceSubrange(checksumField..<(checksumField + 4), with: be32(checksum(bytes, field: checksumField)))
    try file.write(bytes, at: offset)
}

private func fileSize(_ path: String) throws -> UInt64 { try RawFile(path: path, mode: .readOnly).size }

/// A small dynamic VHD from qemu (creator "qemu"): footer copy, header at 512, BAT at 1536.
private func smallVHD(in directory: TemporaryDirectory) throws -> (path: String, disk: String) {
    let disk = try syntheticDisk(in: directory, size: 8 * MiB)
    let output = directory.file("small.vhd")
    try qemuConvert(disk.path, to: output, format: "vpc")
    return (output, disk.path)
}

private func openVHD(_ path: String) throws -> any DiskImageReader { try VHDReader(path: path) }

@Suite struct VHDReaderTests {
    /// Every way qemu-img writes a VHD: dynamic and fixed, with the CHS size ("qemu") and the
    /// exact size (force_size, "qem2"). qemu's own reading is the oracle, since with CHS it
    /// differs from the source.
    @Test(arguments: [[String](), ["-o", "subformat=fixed"], ["-o", "force_size=on"], ["-o", "force_size=on,subformat=fixed"]])
    func readsQemuImages(options: [String]) throws {
        let directory = try TemporaryDirectory()
        let disk = try syntheticDisk(in: directory, size: oddSize)
        let image = directory.file("qemu.vhd")
        try qemuConvert(disk.path, to: image, format: "vpc", options: options)

        let reader = try VHDReader(path: image)
        #expect(reader.virtualSize == (try Qemu.info(image, format: "vpc")).virtualSize)
        let exact = options.last?.contains("force_size") == true
        if exact {
            #expect(reader.virtualSize == oddSize)
            #expect(reader.variant.hasSuffix("current size"), "\(reader.variant)")
        } else {
            #expect(reader.virtualSize > oddSize, "CHS rounds the size up")
            #expect(reader.variant.contains("CHS size"), "\(reader.variant)")
        }
        #expect(reader.variant.hasPrefix(options.last?.contains("fixed") == true ? "VHD fixed" : "VHD dynamic, 2 MiB blocks"))
        let raw = try readerRaw(reader, in: directory)
        #expect(try sameBytes(raw, qemuRaw(image, format: "vpc", in: directory)))
        if exact { #expect(try sameBytes(raw, disk.path)) }
    }

    /// Rehost's own VHDWriter, both variants (creator "qem2", the exact size).
    @Test(arguments: WriterOptions.VHDVariant.allCases)
    func readsRehostImages(variant: WriterOptions.VHDVariant) throws {
        let directory = try TemporaryDirectory()
        let size = variant == .fixed ? 13 * MiB : oddSize
        let disk = try syntheticDisk(in: directory, size: size)
        let image = directory.file("rehost.vhd")
        try writerVHD(disk.path, image, variant)

        let reader = try VHDReader(path: image)
        #expect(reader.virtualSize == size)
        #expect(reader.virtualSize == (try Qemu.info(image, format: "vpc")).virtualSize)
        #expect(try sameBytes(readerRaw(reader, in: directory), disk.path))
        if variant == .fixed {
            // About 4 MiB of data (3 MiB random, 1 MiB text, a few sectors) in 13 MiB.
            #expect(try checkPieces(reader) < 6 * MiB, "the fixed image's holes are skipped")
        }
    }

    /// More than 4 GiB, sparse: qemu's dynamic (CHS) and Rehost's fixed.
    @Test func readsDisksLargerThan4GiB() throws {
        let directory = try TemporaryDirectory()
        let size: UInt64 = 5 * 1024 * MiB + 7 * 512
        let disk = try syntheticDisk(in: directory, size: size)
        let dynamic = directory.file("big-dynamic.vhd")
        try qemuConvert(disk.path, to: dynamic, format: "vpc")
        let reader = try VHDReader(path: dynamic)
        #expect(reader.virtualSize == (try Qemu.info(dynamic, format: "vpc")).virtualSize)
        #expect(try sameBytes(readerRaw(reader, in: directory), qemuRaw(dynamic, format: "vpc", in: directory)))

        let wholeMiB: UInt64 = 5 * 1024 * MiB + 3 * MiB
        let fixedDisk = try syntheticDisk(in: directory, size: wholeMiB, seed: 2)
        let fixed = directory.file("big-fixed.vhd")
        try writerVHD(fixedDisk.path, fixed, .fixed)
        let fixedReader = try VHDReader(path: fixed)
        #expect(fixedReader.virtualSize == wholeMiB)
        #expect(try sameBytes(readerRaw(fixedReader, in: directory), fixedDisk.path))
    }

    /// The size rule, creator by creator, against what qemu-img 7.2 itself reports for the same
    /// file: "vpc " and "qemu" (and anything unknown) take CHS unless it is the maximum
    /// geometry; "win ", "qem2", "d2v ", "CTXS" and "tap\0" take the current size.
    @Test func virtualSizeFollowsQemusCreatorRule() throws {
        let directory = try TemporaryDirectory()
        let disk = try syntheticDisk(in: directory, size: oddSize)
        let base = directory.file("base.vhd")
        try writerVHD(disk.path, base, .dynamic)
        let chs = VHDFooter.Geometry(forDiskSize: oddSize).sectors * 512
        #expect(chs < oddSize)
        let cases: [([UInt8], (UInt16, UInt8, UInt8)?, UInt64)] = [
            (Array("vpc ".utf8), nil, chs), (Array("qemu".utf8), nil, chs), (Array("vs  ".utf8), nil, chs),
            ([0x77, 0x61, 0, 0], nil, chs),  // Azure's "wa": only later qemu releases believe it
            (Array("tap ".utf8), nil, chs), (Array("win ".utf8), nil, oddSize), (Array("qem2".utf8), nil, oddSize),
            (Array("d2v ".utf8), nil, oddSize), (Array("CTXS".utf8), nil, oddSize), ([0x74, 0x61, 0x70, 0], nil, oddSize),
            (Array("vpc ".utf8), (65535, 16, 255), oddSize),
        ]
        for (index, (creator, geometry, expected)) in cases.enumerated() {
            let image = try copy(base, to: "creator-\(index).vhd", in: directory)
            for offset in [0, try fileSize(image) - 512] {
                try rewrite(image, footerAt: offset) { bytes in
                    bytes.replaceSubrange(28..<32, with: creator)
                    if let (c, h, s) = geometry {
                        bytes.replaceSubrange(56..<58, with: [UInt8(c >> 8), UInt8(c & 0xFF)])
                        bytes[58] = h
                        bytes[59] = s
                    }
                }
            }
            let reader = try VHDReader(path: image)
            let qemu = try Qemu.info(image, format: "vpc").virtualSize
            #expect(reader.virtualSize == qemu, "creator \(creator) geometry \(String(describing: geometry))")
            #expect(reader.virtualSize == expected, "creator \(creator) geometry \(String(describing: geometry))")
        }
    }

    /// Either copy of a dynamic disk's footer may stand in for the other when it is lost.
    @Test func aDynamicDiskReadsWithEitherFooterCopy() throws {
        let directory = try TemporaryDirectory()
        let small = try smallVHD(in: directory)
        let expected = try qemuRaw(small.path, format: "vpc", in: directory)

        let noCopy = try copy(small.path, to: "no-copy.vhd", in: directory)
        try patch(noCopy, at: 0, [UInt8](repeating: 0, count: 512))
        #expect(try sameBytes(readerRaw(VHDReader(path: noCopy), in: directory), expected))

        let noFooter = try copy(small.path, to: "no-footer.vhd", in: directory)
        try cut(noFooter, to: try fileSize(noFooter) - 512)
        #expect(try sameBytes(readerRaw(VHDReader(path: noFooter), in: directory), expected))
    }

    @Test func truncatedFilesAreCalledTruncated() throws {
        let directory = try TemporaryDirectory()
        let small = try smallVHD(in: directory)
        let size = try fileSize(small.path)
        for (name, length, offset) in [("tiny.vhd", UInt64(300), UInt64(0)), ("header.vhd", 1000, 512), ("bat.vhd", 1538, 1536)] {
            let path = try copy(small.path, to: name, in: directory)
            try cut(path, to: length)
            expectReadError(.truncated, path: path, offset: offset, openVHD)
        }
        let inData = try copy(small.path, to: "data.vhd", in: directory)
        try cut(inData, to: size - 4096)
        expectReadError(.truncated, path: inData, mentioning: "bytes needed", openVHD)

        // A fixed disk whose footer says more than the file holds.
        let disk = try syntheticDisk(in: directory, size: 8 * MiB, seed: 3)
        let fixed = directory.file("fixed.vhd")
        try writerVHD(disk.path, fixed, .fixed)
        try rewrite(fixed, footerAt: 8 * MiB) { $0.replaceSubrange(48..<56, with: [0, 0, 0, 0, 0, 0x90, 0, 0]) }
        expectReadError(.truncated, path: fixed, offset: 0, openVHD)
    }

    @Test func corruptFootersAreCalledCorrupt() throws {
        let directory = try TemporaryDirectory()
        let small = try smallVHD(in: directory)
        let tail = try fileSize(small.path) - 512

        let sum = try copy(small.path, to: "sum.vhd", in: directory)
        try patch(sum, at: tail + 100, [0x5A])
        expectReadError(.corrupt, path: sum, offset: tail + 64, mentioning: "footer checksum is 0x", openVHD)
        let sumCopy = try copy(small.path, to: "sum-copy.vhd", in: directory)
        try patch(sumCopy, at: 100, [0x5A])
        expectReadError(.corrupt, path: sumCopy, offset: 64, mentioning: "expected 0x", openVHD)

        let cookies = try copy(small.path, to: "cookies.vhd", in: directory)
        try patch(cookies, at: 0, Array("conectiX".utf8))
        try patch(cookies, at: tail, [0x0A] + Array("onectix".utf8))
        expectReadError(.corrupt, path: cookies, offset: tail, mentioning: "\\x0aonectix", openVHD)

        let disagree = try copy(small.path, to: "disagree.vhd", in: directory)
        try rewrite(disagree, footerAt: 0) { $0[53] ^= 0x01 }  // current size, in the copy only
        expectReadError(.corrupt, path: disagree, mentioning: "disagree on current size", openVHD)

        // The end footer says fixed, but byte 0 is this disk's dynamic copy: not read as fixed.
        let fixedTail = try copy(small.path, to: "fixed-tail.vhd", in: directory)
        try rewrite(fixedTail, footerAt: tail) { $0[63] = 2 }
        expectReadError(.corrupt, path: fixedTail, offset: tail + 60, mentioning: "dynamic footer copy", openVHD)

        let type = try copy(small.path, to: "type.vhd", in: directory)
        for offset in [0, tail] { try rewrite(type, footerAt: offset) { $0[63] = 7 } }
        expectReadError(.corrupt, path: type, offset: tail + 60, openVHD)

        // A fixed disk keeps its footer at the end only.
        let disk = try syntheticDisk(in: directory, size: 8 * MiB, seed: 4)
        let fixed = directory.file("fixed.vhd")
        try writerVHD(disk.path, fixed, .fixed)
        try patch(fixed, at: 8 * MiB + 100, [0x5A])
        expectReadError(.corrupt, path: fixed, offset: 8 * MiB + 64, openVHD)
    }

    @Test func corruptDynamicHeadersAndTablesAreCalledCorrupt() throws {
        let directory = try TemporaryDirectory()
        let small = try smallVHD(in: directory)
        func variant(_ name: String, _ edit: (String) throws -> Void) throws -> String {
            let path = try copy(small.path, to: name, in: directory)
            try edit(path)
            return path
        }
        expectReadError(.corrupt, path: try variant("cookie.vhd") { try patch($0, at: 512, Array("cxspArse".utf8)) },
                        offset: 512, mentioning: "cxspArse", openVHD)
        expectReadError(.corrupt, path: try variant("hsum.vhd") { try patch($0, at: 512 + 700, [1]) },
                        offset: 512 + 36, mentioning: "checksum", openVHD)
        expectReadError(.corrupt, path: try variant("bsize.vhd") { try rewrite($0, dynamicHeaderAt: 512) { $0.replaceSubrange(32..<36, with: be32(3 << 20)) } },
                        offset: 512 + 32, mentioning: "power of two", openVHD)
        expectReadError(.corrupt, path: try variant("entries.vhd") { try rewrite($0, dynamicHeaderAt: 512) { $0.replaceSubrange(28..<32, with: be32(1)) } },
                        offset: 512 + 28, openVHD)
        expectReadError(.corrupt, path: try variant("table.vhd") { try rewrite($0, dynamicHeaderAt: 512) { $0[19] = 0x01 } },
                        offset: 512 + 16, mentioning: "past the end", openVHD)
        expectReadError(.corrupt, path: try variant("offset.vhd") { for offset in [0, try fileSize($0) - 512] { try rewrite($0, footerAt: offset) { $0[19] = 0x40 } } },
                        offset: 16, mentioning: "past the end", openVHD)
        expectReadError(.corrupt, path: try variant("far.vhd") { try patch($0, at: 1536, be32(0x7FFF_FFFF)) },
                        offset: 1536, mentioning: "BAT entry 0", openVHD)
        expectReadError(.corrupt, path: try variant("overlap-bat.vhd") { try patch($0, at: 1536, be32(3)) },
                        offset: 1536, mentioning: "overlaps the BAT", openVHD)
        expectReadError(.corrupt, path: try variant("overlap-block.vhd") { path in
            let first = try RawFile(path: path, mode: .readOnly).read(count: 4, at: 1536)
            try patch(path, at: 1540, first)
        }, offset: 1540, mentioning: "inside the block of entry 0", openVHD)
    }

    @Test func differencingDisksAreUnsupported() throws {
        let directory = try TemporaryDirectory()
        let small = try smallVHD(in: directory)
        let tail = try fileSize(small.path) - 512
        for offset in [0, tail] { try rewrite(small.path, footerAt: offset) { $0[63] = 4 } }
        expectReadError(.unsupported, path: small.path, mentioning: "differencing", openVHD)
    }

    @Test func fuzzedMetadataNeverCrashes() throws {
        let directory = try TemporaryDirectory()
        let small = try smallVHD(in: directory)
        let tail = try fileSize(small.path) - 512
        // Footer copy, dynamic header, BAT, and the footer at the end.
        let regions: [Range<UInt64>] = [0..<96, 512..<560, 1536..<1552, tail..<(tail + 96)]
        let failures = try fuzz(small.path, regions: regions, iterations: 400, seed: 0x5EED_0002, openVHD)
        #expect(failures > 50)
        #expect(try sameBytes(readerRaw(VHDReader(path: small.path), in: directory), qemuRaw(small.path, format: "vpc", in: directory)))
    }
}
