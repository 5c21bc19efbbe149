import Foundation
import ImageCore
import ImageFormats
import Testing
import TestSupport

/// Dynamic: 40 MiB and three sectors, not a multiple of the 2 MiB block. Fixed: 41 MiB, whole
/// MiB as Azure requires but not a multiple of 2 MiB (or of any CHS geometry's cylinder).
private func size(of variant: WriterOptions.VHDVariant) -> UInt64 {
    variant == .fixed ? 41 * MiB : 40 * MiB + 3 * 512
}

private func options(_ variant: WriterOptions.VHDVariant, uuid: [UInt8]? = nil) -> WriterOptions {
    var options = WriterOptions()
    options.vhdVariant = variant
    options.uuid = uuid
    return options
}

@discardableResult
private func makeVHD(_ raw: String, _ output: String, _ variant: WriterOptions.VHDVariant, uuid: [UInt8]? = nil) throws -> WriterSummary {
    try convert(raw, to: output) { try VHDWriter(sink: $0, virtualSize: $1, options: options(variant, uuid: uuid)) }
}

/// The specification's checksum, summed here independently of the library.
private func specChecksum(_ bytes: ArraySlice<UInt8>, field: Int) -> UInt32 {
    var sum: UInt32 = 0
    for (i, byte) in zip(bytes.indices, bytes) where !(field..<(field + 4)).contains(i - bytes.startIndex) { sum &+= UInt32(byte) }
    return ~sum
}

private func loadBE32(_ bytes: [UInt8], _ offset: Int) -> UInt32 { bytes.loadBE(UInt32.self, at: offset) }

@Suite struct VHDWriterTests {
    @Test(arguments: WriterOptions.VHDVariant.allCases)
    func qemuReadsTheSameDisk(variant: WriterOptions.VHDVariant) throws {
        let directory = try TemporaryDirectory()
        let diskSize = size(of: variant)
        let disk = try syntheticDisk(in: directory, size: diskSize)
        let output = directory.file("out.vhd")
        let summary = try makeVHD(disk.path, output, variant)
        // qemu 7.2 has no check for vpc; compare reads every sector through its vpc driver.
        let compare = try Qemu.compare(raw: disk.path, image: output, format: "vpc")
        #expect(compare.status == 0, "qemu-img compare: \(compare.stdout) \(compare.stderr)")
        let info = try Qemu.info(output, format: "vpc")
        #expect(info.format == "vpc")
        #expect(info.virtualSize == diskSize)
        #expect(summary.fileSize == (try RawFile(path: output, mode: .readOnly).size))
    }

    @Test(arguments: WriterOptions.VHDVariant.allCases)
    func footerFollowsTheSpecification(variant: WriterOptions.VHDVariant) throws {
        let directory = try TemporaryDirectory()
        let diskSize = size(of: variant)
        let disk = try syntheticDisk(in: directory, size: diskSize)
        let output = directory.file("out.vhd")
        let before = Int64(Date().timeIntervalSince1970)
        try makeVHD(disk.path, output, variant)
        let after = Int64(Date().timeIntervalSince1970)

        let image = try VHDImage(path: output)
        let raw = try readBytes(output, at: image.fileSize - 512, count: 512)
        #expect(Array(raw[0..<8]) == Array("conectix".utf8))
        #expect(loadBE32(raw, 8) == 2)
        #expect(loadBE32(raw, 12) == 0x0001_0000)
        #expect(loadBE32(raw, 64) == specChecksum(raw[0..<512], field: 64))
        #expect(raw[85..<512].allSatisfy { $0 == 0 })

        let footer = image.footer
        #expect(footer.dataOffset == (variant == .fixed ? UInt64.max : 512))
        let seconds = Int64(footer.timestamp) + 946_684_800
        #expect(seconds >= before - 1 && seconds <= after + 1)
        #expect(footer.creatorApplication == "qem2" && footer.creatorHostOS == "Wi2k")
        #expect(footer.originalSize == diskSize && footer.currentSize == diskSize)
        #expect(footer.diskType == (variant == .fixed ? .fixed : .dynamic))
        #expect(footer.geometry == VHDFooter.Geometry(forDiskSize: diskSize))
        #expect(footer.geometry.sectors <= diskSize / 512)
        #expect(isVersion4(footer.uuid))
        #expect(footer.savedState == 0)

        if variant == .fixed {
            #expect(image.fileSize == diskSize + 512)
            #expect(try readBytes(output, at: 0, count: Int(8 * MiB)) == (try readBytes(disk.path, at: 0, count: Int(8 * MiB))))
            #expect(try allocatedBytes(output) < 24 * MiB, "a fixed VHD keeps the disk's holes")
            return
        }
        #expect(try readBytes(output, at: 0, count: 512) == raw, "footer copy at 0")
        let headerBytes = try readBytes(output, at: 512, count: 1024)
        #expect(Array(headerBytes[0..<8]) == Array("cxsparse".utf8))
        #expect(loadBE32(headerBytes, 36) == specChecksum(headerBytes[0..<1024], field: 36))
        let header = try #require(image.dynamicHeader)
        let blockSize = 2 * MiB, entries = (diskSize + blockSize - 1) / blockSize
        #expect(header.dataOffset == .max)
        #expect(header.tableOffset == 1536)
        #expect(header.headerVersion == 0x0001_0000)
        #expect(UInt64(header.maxTableEntries) == entries)
        #expect(UInt64(header.blockSize) == blockSize)
        #expect(headerBytes[40..<1024].allSatisfy { $0 == 0 }, "no parent")

        let firstBlock = 1536 + (entries * 4 + 511) / 512 * 512
        let expected = blocksWithData(disk.ranges, blockSize: blockSize)
        for (block, entry) in image.blockAllocationTable.enumerated() {
            if let position = expected.firstIndex(of: UInt64(block)) {
                #expect(UInt64(entry) * 512 == firstBlock + UInt64(position) * (blockSize + 512), "block \(block)")
            } else {
                #expect(entry == 0xFFFF_FFFF, "block \(block) holds no data")
            }
        }
        let paddedTable = try readBytes(output, at: 1536, count: Int(firstBlock - 1536))
        #expect(paddedTable[Int(entries * 4)...].allSatisfy { $0 == 0xFF }, "BAT padding is unused entries")
        #expect(image.fileSize == firstBlock + UInt64(expected.count) * (blockSize + 512) + 512)
        for block in expected {
            let start = UInt64(image.blockAllocationTable[Int(block)]) * 512
            #expect(try readBytes(output, at: start, count: 512).allSatisfy { $0 == 0xFF }, "bitmap of block \(block)")
            let length = Int(min(blockSize, diskSize - block * blockSize))
            #expect(try readBytes(output, at: start + 512, count: length) == (try readBytes(disk.path, at: block * blockSize, count: length)))
        }
    }

    @Test func geometryMatchesQemuAndDecoderReadsQemuImages() throws {
        let directory = try TemporaryDirectory()
        // Without force_size, qemu-img picks the specification's CHS for the size, trying one
        // more sector at a time until the geometry covers the disk. Do the same with ours.
        // Sizes on both sides of each branch of the algorithm (17, 31, 63 and 255 sectors).
        let sizes: [UInt64] = [41 * MiB, 40 * MiB + 1536, 255 * MiB, 1024 * MiB, 4095 * MiB, 31 * 1024 * MiB + 512,
                               127 * 1024 * MiB]
        for (index, diskSize) in sizes.enumerated() {
            let path = directory.file("chs\(index).vhd")
            try Qemu.create(path, format: "vpc", size: diskSize, options: "subformat=fixed")
            let image = try VHDImage(path: path)
            let sectors = diskSize / 512
            var extra: UInt64 = 0
            var ours = VHDFooter.Geometry(forDiskSize: diskSize)
            while ours.sectors < sectors, extra < 100_000 {
                extra += 1
                ours = VHDFooter.Geometry(forDiskSize: (sectors + extra) * 512)
            }
            #expect(image.footer.geometry == ours, "size \(diskSize)")
            #expect(image.footer.creatorApplication == "qemu")
        }
        // With force_size (what Azure's documentation uses), qemu marks the image "qem2": the
        // creator we write, which tells qemu to use the current size.
        let forced = directory.file("forced.vhd")
        try Qemu.create(forced, format: "vpc", size: 41 * MiB, options: "subformat=fixed,force_size=on")
        let forcedImage = try VHDImage(path: forced)
        #expect(forcedImage.footer.creatorApplication == VHDFooter.creatorApplication)
        #expect(forcedImage.footer.currentSize == 41 * MiB)

        let dynamic = directory.file("dynamic.vhd")
        try Qemu.create(dynamic, format: "vpc", size: 40 * MiB + 1536, options: "subformat=dynamic,force_size=on")
        let image = try VHDImage(path: dynamic)
        #expect(image.dynamicHeader?.maxTableEntries == 21)
        #expect(image.blockAllocationTable.allSatisfy { $0 == VHDDynamicHeader.unusedBlock })
    }

    @Test(arguments: WriterOptions.VHDVariant.allCases)
    func everyImageGetsItsOwnUUIDUnlessOneIsGiven(variant: WriterOptions.VHDVariant) throws {
        let directory = try TemporaryDirectory()
        let disk = try syntheticDisk(in: directory, size: 8 * MiB)
        try makeVHD(disk.path, directory.file("a.vhd"), variant)
        try makeVHD(disk.path, directory.file("b.vhd"), variant)
        #expect(try VHDImage(path: directory.file("a.vhd")).footer.uuid != VHDImage(path: directory.file("b.vhd")).footer.uuid)
        let given: [UInt8] = [0x12, 0x34, 0x56, 0x78, 0x9A, 0xBC, 0x4D, 0xEF, 0x81, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF]
        try makeVHD(disk.path, directory.file("c.vhd"), variant, uuid: given)
        let image = try VHDImage(path: directory.file("c.vhd"))
        #expect(image.footer.uuid == given)
        #expect(try readBytes(directory.file("c.vhd"), at: image.fileSize - 512 + 68, count: 16) == given)
    }

    @Test(arguments: WriterOptions.VHDVariant.allCases)
    func fiveGiBSparseDisk(variant: WriterOptions.VHDVariant) throws {
        let directory = try TemporaryDirectory()
        let diskSize = 5 * 1024 * MiB
        let disk = try syntheticDisk(in: directory, size: diskSize, seed: 5)
        let output = directory.file("big.vhd")
        try makeVHD(disk.path, output, variant)
        #expect(try Qemu.compare(raw: disk.path, image: output, format: "vpc").status == 0)
        #expect(try Qemu.info(output, format: "vpc").virtualSize == diskSize)
        let image = try VHDImage(path: output)
        #expect(image.footer.currentSize == diskSize)
        if variant == .fixed {
            #expect(image.fileSize == diskSize + 512)
        } else {
            #expect(image.blockAllocationTable.count == 2560)
            #expect(image.fileSize < 64 * MiB)
        }
        #expect(try allocatedBytes(output) < 64 * MiB)
    }

    @Test func refusesWhatVHDCannotHold() throws {
        let directory = try TemporaryDirectory()
        let sink = OutputSink(file: try RawFile(path: directory.file("x.vhd"), mode: .createExclusive))
        let notWholeMiB = 40 * MiB + 1536
        #expect(throws: VHDError.fixedSizeNotWholeMiB(size: notWholeMiB)) {
            _ = try VHDWriter(sink: sink, virtualSize: notWholeMiB, options: options(.fixed))
        }
        #expect(VHDError.fixedSizeNotWholeMiB(size: notWholeMiB).description.contains("--size 41M"))
        // The same size is fine for a dynamic VHD, which Azure does not take anyway.
        _ = try VHDWriter(sink: sink, virtualSize: notWholeMiB, options: options(.dynamic))
        #expect(throws: VHDError.sizeNotWholeSectors(size: 8 * MiB + 1)) {
            _ = try VHDWriter(sink: sink, virtualSize: 8 * MiB + 1, options: options(.dynamic))
        }
        let tooBig = 2041 * 1024 * MiB
        #expect(throws: VHDError.tooLarge(size: tooBig, maximum: 2040 * 1024 * MiB)) {
            _ = try VHDWriter(sink: sink, virtualSize: tooBig, options: options(.fixed))
        }
        let writer = try VHDWriter(sink: sink, virtualSize: 8 * MiB, options: options(.dynamic))
        let piece = [UInt8](repeating: 7, count: 512)
        try piece.withUnsafeBytes { try writer.write($0, at: 4096) }
        #expect(throws: WriterError.self) { try piece.withUnsafeBytes { try writer.write($0, at: 512) } }
    }

    @Test func decoderRejectsDamage() throws {
        let directory = try TemporaryDirectory()
        let disk = try syntheticDisk(in: directory, size: 8 * MiB)
        let output = directory.file("out.vhd")
        try makeVHD(disk.path, output, .dynamic)
        var footer = try readBytes(output, at: 0, count: 512)
        footer[48] ^= 1 // current size, checksum not updated
        #expect(throws: VHDError.self) { _ = try VHDFooter.decode(footer, path: output, offset: 0) }
        // A copy at 0 that no longer matches the footer at the end.
        let file = try RawFile(path: output, mode: .readWrite)
        try file.write([UInt8(ascii: "x")], at: 29) // the creator application
        #expect(throws: VHDError.footerCopyDiffers(path: output)) { _ = try VHDImage(path: output) }
    }
}
