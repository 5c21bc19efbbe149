import Foundation
import ImageCore
import ImageFormats
import Testing
import TestSupport

/// 40 MiB and three sectors: not a multiple of the 1 MiB block, so the last block is partial.
private let oddSize: UInt64 = 40 * MiB + 3 * 512

private func options(_ variant: WriterOptions.VDIVariant, uuid: [UInt8]? = nil) -> WriterOptions {
    var options = WriterOptions()
    options.vdiVariant = variant
    options.uuid = uuid
    return options
}

@discardableResult
private func makeVDI(_ raw: String, _ output: String, _ variant: WriterOptions.VDIVariant, uuid: [UInt8]? = nil) throws -> WriterSummary {
    try convert(raw, to: output) { try VDIWriter(sink: $0, virtualSize: $1, options: options(variant, uuid: uuid)) }
}

@Suite struct VDIWriterTests {
    @Test(arguments: WriterOptions.VDIVariant.allCases)
    func qemuReadsTheSameDisk(variant: WriterOptions.VDIVariant) throws {
        let directory = try TemporaryDirectory()
        let disk = try syntheticDisk(in: directory, size: oddSize)
        let output = directory.file("out.vdi")
        let summary = try makeVDI(disk.path, output, variant)

        let check = try Qemu.check(output, format: "vdi")
        #expect(check.status == 0, "qemu-img check: \(check.stdout) \(check.stderr)")
        #expect(check.stdout.contains("No errors were found"))
        let compare = try Qemu.compare(raw: disk.path, image: output, format: "vdi")
        #expect(compare.status == 0, "qemu-img compare: \(compare.stdout) \(compare.stderr)")
        let info = try Qemu.info(output, format: "vdi")
        #expect(info.format == "vdi")
        #expect(info.virtualSize == oddSize)
        #expect(summary.fileSize == (try RawFile(path: output, mode: .readOnly).size))
    }

    @Test(arguments: WriterOptions.VDIVariant.allCases)
    func headerAndBlockMapFollowTheSpecification(variant: WriterOptions.VDIVariant) throws {
        let directory = try TemporaryDirectory()
        let disk = try syntheticDisk(in: directory, size: oddSize)
        let output = directory.file("out.vdi")
        try makeVDI(disk.path, output, variant)

        // A few fields straight from the bytes, so an encoder and decoder that agree on a
        // wrong layout still fail.
        let first = try readBytes(output, at: 0, count: 512)
        #expect(Array(first[0..<40]) == Array("<<< Oracle VM VirtualBox Disk Image >>>\n".utf8))
        #expect(first[40..<64].allSatisfy { $0 == 0 })
        #expect(Array(first[64..<68]) == [0x7F, 0x10, 0xDA, 0xBE])
        #expect(Array(first[68..<72]) == [0x01, 0x00, 0x01, 0x00])
        #expect(Array(first[72..<76]) == [0x90, 0x01, 0x00, 0x00]) // 400
        #expect(first[472..<512].allSatisfy { $0 == 0 })

        let image = try VDIImage(path: output)
        let header = image.header
        let blocks = (oddSize + MiB - 1) / MiB
        #expect(header.fileInfoText == VDIHeader.fileInfo)
        #expect(header.headerSize == 400)
        #expect(header.imageType == (variant == .fixed ? .fixed : .dynamic))
        #expect(header.flags == 0)
        #expect(header.comment.isEmpty)
        #expect(header.blockMapOffset == 1 << 20)
        #expect(header.blockMapOffset % (1 << 20) == 0 && header.dataOffset % (1 << 20) == 0)
        #expect(UInt64(header.dataOffset) == MiB + (blocks * 4 + MiB - 1) / MiB * MiB)
        #expect(header.legacyGeometry == VDIHeader.Geometry())
        #expect(header.legacyGeometry.sectorSize == 512 && header.lchsGeometry.sectorSize == 512)
        #expect(header.diskSize == oddSize)
        #expect(header.blockSize == 1 << 20 && header.blockExtra == 0)
        #expect(UInt64(header.blockCount) == blocks)
        #expect(isVersion4(header.uuidCreate) && isVersion4(header.uuidModify))
        #expect(header.uuidCreate != header.uuidModify)
        #expect(header.uuidLinkage.allSatisfy { $0 == 0 } && header.uuidParentModify.allSatisfy { $0 == 0 })

        let expected = blocksWithData(disk.ranges, blockSize: MiB)
        if variant == .fixed {
            #expect(header.allocatedBlocks == header.blockCount)
            #expect(image.blockMap == (0..<header.blockCount).map { $0 })
            #expect(image.fileSize == UInt64(header.dataOffset) + blocks * MiB)
            #expect(try allocatedBytes(output) < UInt64(header.dataOffset) + 16 * MiB, "a fixed VDI keeps the disk's holes")
        } else {
            #expect(UInt64(header.allocatedBlocks) == UInt64(expected.count))
            for (block, entry) in image.blockMap.enumerated() {
                if let position = expected.firstIndex(of: UInt64(block)) {
                    #expect(entry == UInt32(position), "block \(block) is the \(position)th with data")
                } else {
                    #expect(entry == VDIHeader.freeBlock, "block \(block) holds no data")
                }
            }
            #expect(image.fileSize == UInt64(header.dataOffset) + UInt64(expected.count) * MiB)
        }
        // Every block with data holds exactly the raw disk's bytes, found through the map.
        for block in expected {
            let entry = UInt64(image.blockMap[Int(block)])
            let length = Int(min(MiB, oddSize - block * MiB))
            let stored = try readBytes(output, at: UInt64(header.dataOffset) + entry * MiB, count: length)
            #expect(stored == (try readBytes(disk.path, at: block * MiB, count: length)), "block \(block)")
        }
    }

    @Test func everyImageGetsItsOwnUUIDUnlessOneIsGiven() throws {
        let directory = try TemporaryDirectory()
        let disk = try syntheticDisk(in: directory, size: 8 * MiB)
        try makeVDI(disk.path, directory.file("a.vdi"), .dynamic)
        try makeVDI(disk.path, directory.file("b.vdi"), .dynamic)
        let a = try VDIImage(path: directory.file("a.vdi")).header, b = try VDIImage(path: directory.file("b.vdi")).header
        #expect(a.uuidCreate != b.uuidCreate)
        #expect(a.uuidModify != b.uuidModify)

        let given: [UInt8] = [0x12, 0x34, 0x56, 0x78, 0x9A, 0xBC, 0x4D, 0xEF, 0x81, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF]
        try makeVDI(disk.path, directory.file("c.vdi"), .fixed, uuid: given)
        let c = try VDIImage(path: directory.file("c.vdi")).header
        #expect(c.uuidCreate == given)
        #expect(c.uuidModify.contains { $0 != 0 })
        // RTUUID order on disk: the first three fields byte-swapped, the rest as given.
        let stored = try readBytes(directory.file("c.vdi"), at: 392, count: 16)
        #expect(stored == [0x78, 0x56, 0x34, 0x12, 0xBC, 0x9A, 0xEF, 0x4D] + given[8..<16])
    }

    @Test(arguments: WriterOptions.VDIVariant.allCases)
    func fiveGiBSparseDisk(variant: WriterOptions.VDIVariant) throws {
        let directory = try TemporaryDirectory()
        let size = 5 * 1024 * MiB
        let disk = try syntheticDisk(in: directory, size: size, seed: 5)
        let output = directory.file("big.vdi")
        let summary = try makeVDI(disk.path, output, variant)
        #expect(try Qemu.compare(raw: disk.path, image: output, format: "vdi").status == 0)
        #expect(try Qemu.info(output, format: "vdi").virtualSize == size)
        #expect(try Qemu.check(output, format: "vdi").status == 0)
        let image = try VDIImage(path: output)
        #expect(UInt64(image.header.blockCount) == size / MiB)
        if variant == .dynamic {
            #expect(summary.allocatedUnits == UInt64(blocksWithData(disk.ranges, blockSize: MiB).count))
            #expect(image.fileSize < 64 * MiB)
        } else {
            #expect(image.fileSize == UInt64(image.header.dataOffset) + size)
            #expect(try allocatedBytes(output) < 64 * MiB)
        }
        // Data near the end of the disk landed where the map says.
        let lastBlock = (size - 512) / MiB
        let entry = UInt64(image.blockMap[Int(lastBlock)])
        #expect(entry < UInt64(image.header.allocatedBlocks))
        #expect(try readBytes(output, at: UInt64(image.header.dataOffset) + entry * MiB + MiB - 512, count: 512)
                == (try readBytes(disk.path, at: size - 512, count: 512)))
    }

    @Test func refusesWhatVDICannotHold() throws {
        let directory = try TemporaryDirectory()
        let sink = OutputSink(file: try RawFile(path: directory.file("x.vdi"), mode: .createExclusive))
        #expect(throws: VDIError.sizeNotWholeSectors(size: 8 * MiB + 100)) {
            _ = try VDIWriter(sink: sink, virtualSize: 8 * MiB + 100, options: WriterOptions())
        }
        let tooBig = UInt64(VDIHeader.maximumBlocks) * MiB + MiB
        #expect(throws: VDIError.tooLarge(size: tooBig, maximum: tooBig - MiB)) {
            _ = try VDIWriter(sink: sink, virtualSize: tooBig, options: WriterOptions())
        }
        #expect(throws: WriterError.self) {
            _ = try VDIWriter(sink: sink, virtualSize: 8 * MiB, options: options(.dynamic, uuid: [1, 2, 3]))
        }
        let writer = try VDIWriter(sink: sink, virtualSize: 8 * MiB, options: WriterOptions())
        let piece = [UInt8](repeating: 7, count: 512)
        try piece.withUnsafeBytes { try writer.write($0, at: 4096) }
        #expect(throws: WriterError.self) { try piece.withUnsafeBytes { try writer.write($0, at: 0) } }
        #expect(throws: WriterError.self) { try piece.withUnsafeBytes { try writer.write($0, at: 8 * MiB) } }
    }

    @Test func decoderAcceptsQemuImagesAndRejectsDamage() throws {
        let directory = try TemporaryDirectory()
        // qemu writes cbHeader 384 and unaligned offsets: a foreign but valid VDI.
        let foreign = directory.file("qemu.vdi")
        try Qemu.create(foreign, format: "vdi", size: oddSize, options: "static=off")
        let image = try VDIImage(path: foreign)
        #expect(image.header.diskSize == oddSize)
        #expect(UInt64(image.header.blockCount) == (oddSize + MiB - 1) / MiB)
        #expect(image.blockMap.allSatisfy { $0 == VDIHeader.freeBlock })

        var bytes = try readBytes(foreign, at: 0, count: 512)
        bytes[64] ^= 0xFF
        #expect(throws: VDIError.self) { _ = try VDIHeader.decode(bytes, path: foreign) }
        bytes = try readBytes(foreign, at: 0, count: 512)
        bytes.storeLE(UInt32(1), at: 384) // one block cannot hold 40 MiB
        #expect(throws: VDIError.self) { _ = try VDIHeader.decode(bytes, path: foreign) }
    }
}
