import Foundation
import ImageCore
import ImageFormats
import Testing
import TestSupport

/// VMDKReader against qemu-img's VMDKs in every subformat and against Rehost's own writer, each
/// read into a raw file and compared byte for byte with the source; then damaged, hostile and
/// unsupported files, which must fail with the right `ImageReadError` and never crash or hang.
@Suite struct VMDKReaderTests {
    static let mebibyte: UInt64 = 1 << 20
    /// Not a multiple of a grain (64 KiB) nor of a grain table (32 MiB).
    static let oddSize = 41 * mebibyte + 3 * 512

    // MARK: Reading

    /// Sets of qemu-img options, each set converting one synthetic disk (making it is the slow part).
    enum QemuImages: CaseIterable, Sendable {
        /// Not a whole number of grains or grain tables.
        case oddSize
        /// Past 2 GiB, so the disk is split into two extent files (holes, so it stays cheap).
        case split
        /// Past 4 GiB: grain offsets and LBAs above 2^32 bytes.
        case beyondFourGiB

        var size: UInt64 {
            switch self {
            case .oddSize: VMDKReaderTests.oddSize
            case .split: (2 << 30) + 40 * VMDKReaderTests.mebibyte + 512
            case .beyondFourGiB: (5 << 30) + 512
            }
        }

        var variants: [[String]] {
            switch self {
            case .oddSize:
                [[], ["-o", "subformat=streamOptimized"], ["-o", "subformat=monolithicFlat"], ["-o", "compat6"], ["-o", "adapter_type=ide"]]
            case .split: [["-o", "subformat=twoGbMaxExtentSparse"], ["-o", "subformat=twoGbMaxExtentFlat"]]
            case .beyondFourGiB: [[], ["-o", "subformat=streamOptimized"]]
            }
        }
    }

    @Test(arguments: QemuImages.allCases)
    func readsQemuImages(images: QemuImages) throws {
        let (size, variants) = (images.size, images.variants)
        let directory = try TemporaryDirectory(prefix: "rehost-vmdk-reader")
        let source = directory.file("source.raw")
        try SyntheticDisk.make(at: source, size: size, seed: 7)
        for (index, options) in variants.enumerated() {
            let createType = options.last.flatMap { $0.hasPrefix("subformat=") ? String($0.dropFirst(10)) : nil } ?? "monolithicSparse"
            let image = directory.file("disk\(index).vmdk")
            try Command.run("qemu-img", ["convert", "-q", "-f", "raw", "-O", "vmdk"] + options + [source, image]).requireSuccess()
            let reader = try VMDKReader(path: image)
            #expect(reader.createType == createType, "\(options)")
            #expect(reader.variant.hasPrefix("VMDK \(createType)"))
            #expect(reader.virtualSize == size)
            #expect(reader.virtualSize == (try qemuVirtualSize(image)))
            #expect(reader.extentPaths.count == (createType.hasPrefix("twoGb") ? 2 : 1))
            try expectSameDisk(reader, as: source, in: directory)
        }
    }

    /// Rehost's writer in both subformats (streamOptimized with its grain directory in the
    /// footer), at an odd size and past 4 GiB.
    @Test(arguments: [
        (WriterOptions.VMDKSubformat.streamOptimized, oddSize), (.monolithicSparse, oddSize),
        (.streamOptimized, (5 << 30) + 512), (.monolithicSparse, (5 << 30) + 512),
    ])
    func readsRehostImages(subformat: WriterOptions.VMDKSubformat, size: UInt64) throws {
        let converted = try convert(size: size, options: options(subformat), seed: 9)
        let reader = try VMDKReader(path: converted.vmdkPath)
        #expect(reader.createType == subformat.rawValue)
        #expect(reader.virtualSize == size)
        try expectSameDisk(reader, as: converted.rawPath, in: converted.directory)
    }

    /// 24 MiB of incompressible data: three batches of grains inflated in parallel, handed out in
    /// order as pieces of at most 8 MiB.
    @Test func inflatesManyBatches() throws {
        let directory = try TemporaryDirectory(prefix: "rehost-vmdk-reader")
        let source = directory.file("source.raw")
        try writeRandomRaw(source, size: 24 * Self.mebibyte + 512, seed: 11)
        let image = directory.file("stream.vmdk")
        try Command.run("qemu-img", ["convert", "-q", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", source, image]).requireSuccess()
        let reader = try VMDKReader(path: image)
        var pieces = 0
        try reader.forEachDataPiece { _, _ in pieces += 1 }
        #expect(pieces >= 3)
        try expectSameDisk(reader, as: source, in: directory)
    }

    /// Grain table entry 1 (a zero grain, qemu's zeroed_grain) reads as zeros.
    @Test func zeroGrains() throws {
        let directory = try TemporaryDirectory(prefix: "rehost-vmdk-reader")
        let image = directory.file("zeroed.vmdk")
        try Command.run("qemu-img", ["create", "-q", "-f", "vmdk", "-o", "zeroed_grain=on", image, "10M"]).requireSuccess()
        try Command.run("qemu-io", ["-f", "vmdk", "-c", "write -P 0x55 0 192k", "-c", "write -z 64k 64k", image]).requireSuccess()
        let expected = directory.file("expected.raw")
        try Command.run("qemu-img", ["convert", "-q", "-f", "vmdk", "-O", "raw", image, expected]).requireSuccess()
        let reader = try VMDKReader(path: image)
        var allocated: UInt64 = 0
        try reader.forEachDataPiece { _, data in allocated += UInt64(data.count) }
        #expect(allocated == 128 << 10, "the zero grain is not handed out")
        try expectSameDisk(reader, as: expected, in: directory)
    }

    /// A hand-written descriptor with every extent kind: FLAT at an offset into a file whose name
    /// has a space, ZERO, RDONLY VMFS at an absolute path (followed only when allowed), a SPARSE
    /// extent.
    @Test func descriptorWithEveryExtentKind() throws {
        let directory = try TemporaryDirectory(prefix: "rehost-vmdk-reader")
        let flat = directory.file("data file.bin")
        try writeRandomRaw(flat, size: 2 * Self.mebibyte, seed: 21)
        let other = directory.file("other.bin")
        try writeRandomRaw(other, size: Self.mebibyte, seed: 22)
        let sparseSource = directory.file("sparse.raw")
        try writeRandomRaw(sparseSource, size: Self.mebibyte, seed: 23)
        try Command.run("qemu-img", ["convert", "-q", "-f", "raw", "-O", "vmdk", sparseSource, directory.file("part.vmdk")]).requireSuccess()
        let descriptor = directory.file("disk.vmdk")
        try writeDescriptor(descriptor, createType: "monolithicFlat", extents: [
            "RW 2048 FLAT \"data file.bin\" 1024",
            "RW 1024 ZERO",
            "RDONLY 2048 VMFS \"\(other)\"",
            "RW 2048 SPARSE \"part.vmdk\"",
        ])
        // The same disk built by hand.
        let expected = directory.file("expected.raw")
        let out = try RawFile(path: expected, mode: .createExclusive)
        try out.write(try RawFile(path: flat, mode: .readOnly).read(count: 1 << 20, at: 512 << 10), at: 0)
        try out.write(try RawFile(path: other, mode: .readOnly).read(count: 1 << 20, at: 0), at: 3 << 19)
        try out.write(try RawFile(path: sparseSource, mode: .readOnly).read(count: 1 << 20, at: 0), at: 5 << 19)
        try out.truncate(to: 7 << 19)

        let reader = try VMDKReader(path: descriptor, externalFiles: .allowed)
        #expect(reader.virtualSize == 7 << 19)
        #expect(reader.variant == "VMDK monolithicFlat, 4 extents")
        #expect(reader.extentPaths == [flat, other, directory.file("part.vmdk")])
        try expectSameDisk(reader, as: expected, in: directory)
    }

    /// The reader opens its input read-only and leaves it as it was.
    @Test func neverWritesItsInput() throws {
        let converted = try convert(size: 16 * Self.mebibyte, options: options(.streamOptimized))
        let before = try Data(contentsOf: URL(fileURLWithPath: converted.vmdkPath))
        try FileManager.default.setAttributes([.posixPermissions: 0o444], ofItemAtPath: converted.vmdkPath)
        let reader = try VMDKReader(path: converted.vmdkPath)
        try reader.forEachDataPiece { _, _ in }
        #expect(try Data(contentsOf: URL(fileURLWithPath: converted.vmdkPath)) == before)
    }

    // MARK: Unsupported

    @Test func deltaLinksAreUnsupported() throws {
        let directory = try TemporaryDirectory(prefix: "rehost-vmdk-reader")
        let base = directory.file("base.vmdk")
        let child = directory.file("child.vmdk")
        try Command.run("qemu-img", ["create", "-q", "-f", "vmdk", base, "16M"]).requireSuccess()
        try Command.run("qemu-img", ["create", "-q", "-f", "vmdk", "-b", base, "-F", "vmdk", child]).requireSuccess()
        try expectReadError(child, .unsupported, mentioning: "base.vmdk")

        // A descriptor naming its parent.
        try Command.run("qemu-img", ["create", "-q", "-f", "raw", directory.file("flat.bin"), "1M"]).requireSuccess()
        let descriptor = directory.file("delta.vmdk")
        try writeDescriptor(descriptor, createType: "monolithicFlat", extents: ["RW 2048 FLAT \"flat.bin\" 0"],
                            parent: "parentCID=1a2b3c4d\nparentFileNameHint=\"parent.vmdk\"")
        try expectReadError(descriptor, .unsupported, mentioning: "parent.vmdk")
    }

    @Test(arguments: [
        ("vmfsSparse", "RW 2048 VMFSSPARSE \"flat.bin\""),
        ("seSparse", "RW 2048 SESPARSE \"flat.bin\""),
        ("vmfsRaw", "RW 2048 VMFSRAW \"flat.bin\""),
        ("monolithicFlat", "NOACCESS 2048 FLAT \"flat.bin\" 0"),
        ("fullDevice", "RW 2048 FLAT \"flat.bin\" 0"),
        ("monolithicFlat", "RW 2048 VMFSRDM \"flat.bin\""),
    ])
    func unsupportedExtents(createType: String, line: String) throws {
        let directory = try TemporaryDirectory(prefix: "rehost-vmdk-reader")
        try Command.run("qemu-img", ["create", "-q", "-f", "raw", directory.file("flat.bin"), "1M"]).requireSuccess()
        let descriptor = directory.file("disk.vmdk")
        try writeDescriptor(descriptor, createType: createType, extents: [line])
        try expectReadError(descriptor, .unsupported)
    }

    /// A descriptor naming a FIFO (or a character device) as its extent is refused at once, even
    /// with external files allowed: opening and reading it would wait for a writer for ever.
    @Test(arguments: ["fifo", "/dev/zero"])
    func extentsThatAreNotFilesAreRefusedWithoutBlocking(kind: String) throws {
        let directory = try TemporaryDirectory(prefix: "rehost-vmdk-reader")
        var name = kind
        if kind == "fifo" {
            name = directory.file("flat.fifo")
            guard mkfifo(name, 0o644) == 0 else { Issue.record("mkfifo failed"); return }
        }
        let descriptor = directory.file("disk.vmdk")
        try writeDescriptor(descriptor, createType: "monolithicFlat", extents: ["RW 2048 FLAT \"\(name)\" 0"])
        let started = ContinuousClock.now
        let error = #expect(throws: FileError.self) { _ = try VMDKReader(path: descriptor, externalFiles: .allowed) }
        #expect(ContinuousClock.now - started < .seconds(5))
        #expect(error?.description.contains(kind == "fifo" ? "a FIFO, not a regular file" : "a character device, not a regular file") == true,
                "\(error?.description ?? "")")
    }

    @Test func cowdAndNewerVersionsAreUnsupported() throws {
        let converted = try convert(size: 8 * Self.mebibyte, options: options(.monolithicSparse))
        try expectReadError(try damaged(converted) { $0.replaceSubrange(0..<4, with: Array("COWD".utf8)) }, .unsupported, mentioning: "COWD")
        try expectReadError(try damaged(converted) { $0.storeLE(UInt32(4), at: 4) }, .unsupported, mentioning: "version 4")
        try expectReadError(try damaged(converted) { $0.storeLE(UInt16(2), at: 77) }, .unsupported, mentioning: "compression algorithm 2")
    }

    // MARK: Damage

    @Test(arguments: WriterOptions.VMDKSubformat.allCases)
    func truncatedFiles(subformat: WriterOptions.VMDKSubformat) throws {
        let converted = try convert(size: 16 * Self.mebibyte, options: options(subformat))
        let bytes = try fileBytes(converted.vmdkPath)
        let header = VMDKHeader(fields: bytes)
        // In the header.
        try expectReadError(try damaged(converted) { $0.removeSubrange(300...) }, .truncated, offset: 0)
        switch subformat {
        case .monolithicSparse:
            // In the grain directory, then in the last grain.
            let directoryAt = Int(header.gdOffset) * 512
            try expectReadError(try damaged(converted) { $0.removeSubrange((directoryAt + 2)...) }, .truncated, offset: 0, mentioning: "65536 bytes needed")
            // The same with overHead (everything before the first grain) made small.
            try expectReadError(try damaged(converted) { copy in
                copy.storeLE(UInt64(1), at: 64)
                copy.removeSubrange((directoryAt + 2)...)
            }, .truncated, offset: UInt64(directoryAt))
            try expectReadError(try damaged(converted) { $0.removeSubrange(($0.count - 1000)...) }, .truncated)
        case .streamOptimized:
            // The footer gone with the end of the data.
            try expectReadError(try damaged(converted) { $0.removeSubrange(($0.count - 5000)...) }, .corrupt, mentioning: "footer")
            // The footer kept, the grain directory it names cut away.
            let footer = VMDKHeader(fields: Array(bytes[(bytes.count - 1024)...]))
            let tail = Array(bytes[(bytes.count - 1536)...])
            try expectReadError(try damaged(converted) { copy in
                copy.removeSubrange((Int(footer.gdOffset) * 512 + 2)...)
                copy += tail
            }, .corrupt, mentioning: "grain table 0")
        }
    }

    @Test func corruptSparseHeaders() throws {
        let converted = try convert(size: 40 * Self.mebibyte, options: options(.monolithicSparse))
        let bytes = try fileBytes(converted.vmdkPath)
        let header = VMDKHeader(fields: bytes)
        try expectReadError(try damaged(converted) { $0[0] = 0x4A }, .corrupt, offset: 0, mentioning: "nor a text descriptor")
        try expectReadError(try damaged(converted) { $0.storeLE(UInt32(0), at: 4) }, .corrupt, offset: 4)
        for grainSize: UInt64 in [0, 3, 1 << 19] {
            try expectReadError(try damaged(converted) { $0.storeLE(grainSize, at: 20) }, .corrupt, offset: 20, mentioning: "grainSize")
        }
        for entries: UInt32 in [0, 4096] {
            try expectReadError(try damaged(converted) { $0.storeLE(entries, at: 44) }, .corrupt, offset: 44, mentioning: "numGTEsPerGT")
        }
        // A capacity whose grain directory would exceed 32 Mi entries, then one whose directory
        // runs past the end of the file.
        try expectReadError(try damaged(converted) { $0.storeLE(UInt64(1) << 60, at: 12) }, .corrupt, offset: 12)
        try expectReadError(try damaged(converted) { $0.storeLE(UInt64(1) << 40, at: 12) }, .truncated)
        try expectReadError(try damaged(converted) { $0.storeLE(UInt64(1) << 62, at: 12) }, .corrupt, offset: 12)
        // gdOffset past the end, and 0.
        try expectReadError(try damaged(converted) { $0.storeLE(UInt64(1) << 30, at: 56) }, .corrupt, offset: 56, mentioning: "past the end")
        try expectReadError(try damaged(converted) { $0.storeLE(UInt64(0), at: 56) }, .corrupt, offset: 56)
        try expectReadError(try damaged(converted) { $0.storeLE(UInt64.max / 2, at: 56) }, .corrupt, offset: 56)
        // overHead past the end of the file.
        try expectReadError(try damaged(converted) { $0.storeLE(UInt64(1) << 30, at: 64) }, .truncated)
        // A grain directory entry, then a grain table entry, pointing past the end.
        let directoryAt = Int(header.gdOffset) * 512
        try expectReadError(try damaged(converted) { $0.storeLE(UInt32(0x0FFF_FFFF), at: directoryAt) }, .corrupt,
                            offset: UInt64(directoryAt), mentioning: "grain table 0")
        let tableAt = Int(bytes.loadLE(UInt32.self, at: directoryAt)) * 512
        try expectReadError(try damaged(converted) { $0.storeLE(UInt32(0x0FFF_FFFF), at: tableAt + 8) }, .corrupt,
                            offset: UInt64(tableAt + 8), mentioning: "grain 2")
        // Shared host data: a second directory entry naming table 0, a table entry naming the
        // grain of another (a few hundred KiB would otherwise read as gigabytes).
        let tableCount = Int((header.capacity + header.grainSize * UInt64(header.numGTEsPerGT) - 1) / (header.grainSize * UInt64(header.numGTEsPerGT)))
        #expect(tableCount >= 2)
        try expectReadError(try damaged(converted) { $0.storeLE(bytes.loadLE(UInt32.self, at: directoryAt), at: directoryAt + 4) },
                            .corrupt, offset: UInt64(directoryAt + 4), mentioning: "shared grain tables are refused")
        let allocated = (0..<512).filter { bytes.loadLE(UInt32.self, at: tableAt + 4 * $0) > 1 }
        #expect(allocated.count >= 2, "the synthetic disk should fill the first grains")
        if allocated.count >= 2 {
            let (first, second) = (allocated[0], allocated[1])
            try expectReadError(try damaged(converted) { $0.storeLE(bytes.loadLE(UInt32.self, at: tableAt + 4 * first), at: tableAt + 4 * second) },
                                .corrupt, offset: UInt64(tableAt + 4 * second), mentioning: "shared grains are refused")
        }
        // Compressed-grain flags without the compression algorithm.
        try expectReadError(try damaged(converted) { $0.storeLE(UInt32(0x1_0003), at: 8) }, .corrupt, offset: 8)
    }

    @Test func corruptCompressedGrains() throws {
        let converted = try convert(size: 16 * Self.mebibyte, options: options(.streamOptimized))
        let items = try VMDKFileReader(path: converted.vmdkPath).streamItems()
        let grains = items.compactMap { item -> (offset: Int, lba: UInt64, size: UInt32)? in
            guard case let .grain(lba, size) = item.marker else { return nil }
            return (Int(item.offset), lba, size)
        }
        let first = try #require(grains.first)
        // The metadata passes; streaming meets the damage.
        func streamError(_ path: String, _ kind: ErrorKind, offset: UInt64, mentioning text: String) throws {
            let reader = try VMDKReader(path: path)
            try expectReadError(path, kind, offset: offset, mentioning: text) { try reader.forEachDataPiece { _, _ in } }
        }
        try streamError(try damaged(converted) { bytes in
            for i in 0..<64 { bytes[first.offset + 14 + i] ^= 0x5A }
        }, .corrupt, offset: UInt64(first.offset), mentioning: "does not inflate")
        try streamError(try damaged(converted) { $0.storeLE(first.lba + 128, at: first.offset) }, .corrupt,
                        offset: UInt64(first.offset), mentioning: "LBA")
        try streamError(try damaged(converted) { $0.storeLE(UInt32(0x7FFF_FFFF), at: first.offset + 8) }, .corrupt,
                        offset: UInt64(first.offset), mentioning: "compressed bytes")
        // A grain table entry pointing at the grain directory's marker instead of a grain.
        let directoryMarker = try #require(items.first { if case .metadata(.grainDirectory, _) = $0.marker { true } else { false } })
        let tableEntryAt = try tableEntryOffset(converted.vmdkPath, grain: 0)
        try streamError(try damaged(converted) { $0.storeLE(UInt32(directoryMarker.offset / 512), at: tableEntryAt) }, .corrupt,
                        offset: directoryMarker.offset, mentioning: "metadata marker")
        // A zlib stream of a few bytes: a grain too short.
        let short = try Command.run("python3", ["-c", "import sys, zlib; sys.stdout.buffer.write(zlib.compress(b'x' * 1000))"]).requireSuccess().stdoutBytes
        try streamError(try damaged(converted) { bytes in
            bytes.storeLE(UInt32(short.count), at: first.offset + 8)
            bytes.replaceSubrange((first.offset + 12)..<(first.offset + 12 + short.count), with: short)
        }, .corrupt, offset: UInt64(first.offset), mentioning: "inflates to 1000 bytes")
    }

    @Test func badDescriptors() throws {
        let directory = try TemporaryDirectory(prefix: "rehost-vmdk-reader")
        try Command.run("qemu-img", ["create", "-q", "-f", "raw", directory.file("flat.bin"), "1M"]).requireSuccess()
        let missing = directory.file("missing.vmdk")
        try writeDescriptor(missing, createType: "monolithicFlat", extents: ["RW 2048 FLAT \"gone-flat.vmdk\" 0"])
        try expectReadError(missing, .corrupt, mentioning: "gone-flat.vmdk")
        let short = directory.file("short.vmdk")
        try writeDescriptor(short, createType: "monolithicFlat", extents: ["RW 4096 FLAT \"flat.bin\" 0"])
        try expectReadError(short, .truncated, mentioning: "flat.bin")
        let unquoted = directory.file("unquoted.vmdk")
        try writeDescriptor(unquoted, createType: "monolithicFlat", extents: ["RW 2048 FLAT flat.bin 0"])
        try expectReadError(unquoted, .corrupt, mentioning: "line 7")
        let noExtents = directory.file("none.vmdk")
        try writeDescriptor(noExtents, createType: "monolithicFlat", extents: [])
        try expectReadError(noExtents, .corrupt, mentioning: "no extent")
        let wrongSize = directory.file("wrong.vmdk")
        try Command.run("qemu-img", ["create", "-q", "-f", "vmdk", directory.file("part.vmdk"), "1M"]).requireSuccess()
        try writeDescriptor(wrongSize, createType: "twoGbMaxExtentSparse", extents: ["RW 4096 SPARSE \"part.vmdk\""])
        try expectReadError(wrongSize, .corrupt, mentioning: "2048 sectors")
        let huge = directory.file("huge.vmdk")
        try writeDescriptor(huge, createType: "monolithicFlat", extents: ["RW 2048 FLAT \"flat.bin\" 0"])
        _ = FileHandle(forWritingAtPath: huge).map { handle in
            handle.seekToEndOfFile()
            handle.write(Data(repeating: 0x23, count: 70_000))
            handle.closeFile()
        }
        try expectReadError(huge, .corrupt, offset: 0, mentioning: "at most")
        let garbage = directory.file("garbage.vmdk")
        _ = FileManager.default.createFile(atPath: garbage, contents: Data("not a disk at all".utf8))
        try expectReadError(garbage, .corrupt, offset: 0)
    }

    /// Who made the image a fuzz run damages.
    enum FuzzedImage: CaseIterable, Sendable {
        case qemuMonolithicSparse, qemuStreamOptimized
        /// Rehost's stream: grain directory in the footer, tables after their grains.
        case rehostStreamOptimized
    }

    /// Bytes flipped in the header, descriptor, grain directories and tables (and, for Rehost's
    /// stream, its tail: the last table, the directory, the footer) of small valid images, a few
    /// hundred times: each run either fails with an `ImageReadError` (or a `FileError`) or
    /// streams to the end.
    @Test(arguments: FuzzedImage.allCases)
    func fuzzedMetadata(image kind: FuzzedImage) throws {
        let directory = try TemporaryDirectory(prefix: "rehost-vmdk-fuzz")
        let source = directory.file("source.raw")
        let size = 3 * Self.mebibyte
        try writeRandomRaw(source, size: size, seed: 31, holes: true)
        let image = directory.file("valid.vmdk")
        switch kind {
        case .qemuMonolithicSparse, .qemuStreamOptimized:
            let subformat = kind == .qemuStreamOptimized ? "streamOptimized" : "monolithicSparse"
            try Command.run("qemu-img", ["convert", "-q", "-f", "raw", "-O", "vmdk", "-o", "subformat=\(subformat)", source, image]).requireSuccess()
        case .rehostStreamOptimized:
            let sink = OutputSink(file: try RawFile(path: image, mode: .createExclusive))
            let writer = try VMDKWriter(sink: sink, virtualSize: size, options: options(.streamOptimized))
            _ = try DiskStreamer.stream(try RawDiskReader(path: source), to: [writer])
        }
        let original = try fileBytes(image)
        let metadataEnd = Int(VMDKHeader(fields: original).overHead) * 512
        // Rehost's stream keeps its tables at the end: the last 4 KiB hold a grain table, the
        // directory and the footer.
        let tailStart = kind == .rehostStreamOptimized ? original.count - 4096 : 0
        var generator = SplitMix(seed: 41 + UInt64(FuzzedImage.allCases.firstIndex(of: kind)!))
        var outcomes = [String: Int]()
        let path = directory.file("fuzzed.vmdk")
        for _ in 0..<300 {
            var bytes = original
            for _ in 0..<(1 + Int(generator.next() % 4)) {
                // Half the flips in the header's fields, the rest in the other metadata.
                let offset = switch generator.next() % 4 {
                case 0, 1: Int(generator.next() % 80)
                case 2 where tailStart > 0: tailStart + Int(generator.next() % 4096)
                default: Int(generator.next() % UInt64(metadataEnd))
                }
                bytes[offset] ^= UInt8(truncatingIfNeeded: generator.next() | 1)
            }
            try? FileManager.default.removeItem(atPath: path)
            _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
            do {
                let reader = try VMDKReader(path: path)
                var previousEnd: UInt64 = 0
                try reader.forEachDataPiece { offset, data in
                    #expect(offset >= previousEnd && data.count <= DiskImageReaders.maxPieceSize)
                    previousEnd = offset + UInt64(data.count)
                }
                #expect(previousEnd <= reader.virtualSize)
                outcomes["read", default: 0] += 1
            } catch let error as ImageReadError {
                #expect(error.description.hasPrefix(path))
                outcomes["\(error)".contains("truncated") ? "truncated" : "rejected", default: 0] += 1
            } catch is FileError {
                outcomes["file", default: 0] += 1
            }
        }
        // Both outcomes happen: the fuzzing reaches the checks and gets past them.
        #expect(outcomes["read", default: 0] > 0)
        #expect(outcomes["rejected", default: 0] > 0)
    }
}

// MARK: Helpers

enum ErrorKind { case truncated, corrupt, unsupported }

/// Reads the disk with `reader` into a raw file through `copyToRaw` and compares it with
/// `expected` (cmp); also checks the pieces' order, sizes and alignment.
func expectSameDisk(_ reader: VMDKReader, as expected: String, in directory: TemporaryDirectory) throws {
    var previousEnd: UInt64 = 0
    try reader.forEachDataPiece { offset, data in
        #expect(offset >= previousEnd, "pieces in increasing order")
        #expect(data.count <= DiskImageReaders.maxPieceSize && data.count > 0)
        #expect(offset % 512 == 0 && (data.count % 512 == 0 || offset + UInt64(data.count) == reader.virtualSize))
        previousEnd = offset + UInt64(data.count)
    }
    #expect(previousEnd <= reader.virtualSize)
    let output = directory.file("read-\(UUID().uuidString).raw")
    try DiskImageReaders.copyToRaw(reader, file: try RawFile(path: output, mode: .createExclusive))
    try expectSameBytes(expected, output)
    try? FileManager.default.removeItem(atPath: output)
}

/// `cmp` over the data of two sparse files: the same size, and the same bytes wherever either
/// holds data (elsewhere both read as zeros), without reading gigabytes of holes.
func expectSameBytes(_ expected: String, _ actual: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
    let first = try RawFile(path: expected, mode: .readOnly)
    let second = try RawFile(path: actual, mode: .readOnly)
    #expect(try first.size == second.size, "\(actual): size", sourceLocation: sourceLocation)
    // Merged data ranges of both files.
    var ranges: [Range<UInt64>] = []
    for range in (try first.dataRanges() + second.dataRanges()).sorted(by: { $0.lowerBound < $1.lowerBound }) {
        if let last = ranges.last, range.lowerBound <= last.upperBound {
            ranges[ranges.count - 1] = last.lowerBound..<max(last.upperBound, range.upperBound)
        } else {
            ranges.append(range)
        }
    }
    for range in ranges {
        let skip = "\(range.lowerBound):\(range.lowerBound)"
        let compare = try Command.run("cmp", ["-i", skip, "-n", String(range.count), expected, actual])
        #expect(compare.status == 0, "\(actual) at \(range): \(compare.stdout) \(compare.stderr)", sourceLocation: sourceLocation)
    }
}

/// `body` (by default opening `path`) throws an `ImageReadError` of `kind` whose message names
/// `path`, at `offset` and mentioning `text` when given.
func expectReadError(_ path: String, _ kind: ErrorKind, offset: UInt64? = nil, mentioning text: String? = nil,
                     sourceLocation: SourceLocation = #_sourceLocation,
                     _ body: (() throws -> Void)? = nil) throws {
    do {
        if let body { try body() } else { _ = try VMDKReader(path: path) }
        Issue.record("\(path): expected \(kind), but it was read", sourceLocation: sourceLocation)
    } catch let error as ImageReadError {
        let found: (ErrorKind, UInt64?) = switch error {
        case let .truncated(_, _, offset, _, _): (.truncated, offset)
        case let .corrupt(_, _, offset, _): (.corrupt, offset)
        case .unsupported: (.unsupported, nil)
        }
        #expect(found.0 == kind, "\(error)", sourceLocation: sourceLocation)
        if let offset { #expect(found.1 == offset, "\(error)", sourceLocation: sourceLocation) }
        if let text { #expect(error.description.contains(text), "\(error)", sourceLocation: sourceLocation) }
        #expect(error.description.contains(path) || error.description.contains((path as NSString).deletingLastPathComponent),
                "\(error)", sourceLocation: sourceLocation)
        #expect(!error.description.contains("\n"), sourceLocation: sourceLocation)
    }
}

/// A copy of the converted image with `change` applied, in the same directory.
func damaged(_ converted: Converted, _ change: (inout [UInt8]) -> Void) throws -> String {
    var bytes = try fileBytes(converted.vmdkPath)
    change(&bytes)
    let path = converted.directory.file("damaged-\(UUID().uuidString).vmdk")
    _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
    return path
}

func fileBytes(_ path: String) throws -> [UInt8] {
    Array(try Data(contentsOf: URL(fileURLWithPath: path)))
}

/// The byte offset of grain `grain`'s entry in its grain table (through the footer's directory).
func tableEntryOffset(_ path: String, grain: UInt64) throws -> Int {
    let reader = try VMDKFileReader(path: path)
    let directorySector = try reader.grainDirectorySector()
    let tableSector = try reader.entries(atSector: directorySector, count: 1)[0]
    return Int(tableSector) * 512 + Int(grain % 512) * 4
}

/// A raw file of random bytes (every other MiB left a hole when `holes`).
func writeRandomRaw(_ path: String, size: UInt64, seed: UInt64, holes: Bool = false) throws {
    _ = FileManager.default.createFile(atPath: path, contents: nil)
    let file = try RawFile(path: path, mode: .readWrite)
    var generator = SplitMix(seed: seed)
    var offset: UInt64 = 0
    while offset < size {
        let count = Int(min(1 << 20, size - offset))
        if !holes || (offset >> 20) % 2 == 0 {
            var words = [UInt64](repeating: 0, count: count / 8)
            for i in words.indices { words[i] = generator.next() }
            try words.withUnsafeBytes { try file.write($0, at: offset) }
        }
        offset += UInt64(count)
    }
    try file.truncate(to: size)
}

/// A descriptor file with `extents` as its extent lines (the 7th line onwards).
func writeDescriptor(_ path: String, createType: String, extents: [String], parent: String = "parentCID=ffffffff") throws {
    let lines = ["# Disk DescriptorFile", "version=1", "CID=12345678", parent, "createType=\"\(createType)\"", "# Extent description"]
        + extents + ["", "# The Disk Data Base", "#DDB", "ddb.adapterType = \"lsilogic\""]
    _ = FileManager.default.createFile(atPath: path, contents: Data((lines.joined(separator: "\n") + "\n").utf8))
}

/// qemu-img's virtual size for `path`.
func qemuVirtualSize(_ path: String) throws -> UInt64 {
    let info = try Command.run("qemu-img", ["info", "-f", "vmdk", "--output=json", path]).requireSuccess()
    let json = try JSONSerialization.jsonObject(with: Data(info.stdoutBytes)) as? [String: Any]
    return (json?["virtual-size"] as? NSNumber)?.uint64Value ?? 0
}

