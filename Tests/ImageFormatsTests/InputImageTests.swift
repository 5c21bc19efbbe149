import Blkid
import Foundation
import ImageCore
import ImageFormats
import Testing
import Zlib

@Suite struct InputImageTests {
    let uuid = "6f1d0b8e-2c47-4c1a-8d0e-5b9a7e3f2a11"
    let fsKiB: UInt64 = 16384

    /// A disk with a vfat partition 1 and an ext3 partition 2 at 5 MiB, 16 MiB long.
    func makeDisk(_ path: String) throws {
        try makeMBRDisk(path, sizeMiB: 24, partitions: ["start=2048, size=8192, type=0c", "start=10240, size=32768, type=83"])
        try run("mkfs.vfat", ["--offset=2048", path, "4096"])
        try makeExt3(path, sizeKiB: fsKiB, label: "root", uuid: uuid, offset: 10240 * 512)
    }

    @Test func bareFilesystem() throws {
        let dir = try TestDirectory()
        let path = dir.file("root.img")
        try makeExt3(path, sizeKiB: fsKiB, label: "root", uuid: uuid)
        let before = try FileFingerprint(path)
        let image = try InputImage.open(path: path, scratchDirectory: dir.path)
        #expect(image.kind == .bareFilesystem)
        #expect(image.filesystemPath == path)
        #expect(image.filesystemOffset == 0)
        #expect(image.filesystemSize == fsKiB * 1024)
        #expect(image.probe.type == "ext3" && image.probe.label == "root" && image.probe.uuid == uuid)
        #expect(image.rootPartition == nil)
        #expect(image.temporaryPath == nil)
        #expect(try FileFingerprint(path) == before)
    }

    @Test func mbrDiskPicksTheLinuxPartition() throws {
        let dir = try TestDirectory()
        let path = dir.file("disk.img")
        try makeDisk(path)
        let before = try FileFingerprint(path)
        let image = try InputImage.open(path: path, scratchDirectory: dir.path)
        guard case let .partitionedDisk(table, partitions) = image.kind else {
            Issue.record("expected a partitioned disk, got \(image.kind)")
            return
        }
        #expect(table == "dos")
        #expect(partitions.map(\.number) == [1, 2])
        #expect(image.filesystemPath == path)
        #expect(image.filesystemOffset == 5 * ByteCount.MiB)
        #expect(image.filesystemSize == fsKiB * 1024)
        #expect(image.probe.label == "root")
        #expect(image.rootPartition?.number == 2)
        #expect(try FileFingerprint(path) == before)
        // The offset really is the filesystem: e2fsprogs agrees.
        let stats = String(decoding: try run("dumpe2fs", ["-h", "\(path)?offset=\(image.filesystemOffset)"]), as: UTF8.self)
        #expect(stats.contains(uuid))
    }

    @Test func severalLinuxPartitionsPreferBootableThenLargest() throws {
        let dir = try TestDirectory()
        let path = dir.file("disk.img")
        let layout = ["start=2048, size=8192, type=83", "start=10240, size=16384, type=83"]
        try makeMBRDisk(path, sizeMiB: 16, partitions: layout)
        try makeExt3(path, sizeKiB: 4096, label: "small", uuid: uuid, offset: 2048 * 512)
        try makeExt3(path, sizeKiB: 8192, label: "large", uuid: uuid, offset: 10240 * 512)
        let largest = try InputImage.open(path: path)
        #expect(largest.probe.label == "large")
        #expect(largest.rootPartition?.number == 2)
        #expect(largest.rootPartition?.reason.contains("largest") == true)

        try run("sfdisk", ["--activate", path, "1"])
        let bootable = try InputImage.open(path: path)
        #expect(bootable.probe.label == "small")
        #expect(bootable.rootPartition?.number == 1)
        #expect(bootable.rootPartition?.reason.contains("bootable") == true)

        let explicit = try InputImage.open(path: path, partition: 2)
        #expect(explicit.probe.label == "large")
        #expect(explicit.filesystemOffset == 10240 * 512)
        #expect(explicit.rootPartition?.number == 2)

        #expect(throws: InputError.noSuchPartition(path: path, number: 5, available: [1, 2])) {
            _ = try InputImage.open(path: path, partition: 5)
        }
    }

    @Test func gptDiskPicksTheLinuxFilesystemPartition() throws {
        let dir = try TestDirectory()
        let path = dir.file("gpt.img")
        try makeSparseFile(path, size: 24 * ByteCount.MiB)
        let script = "label: gpt\nstart=2048, size=4096, type=21686148-6449-6E6F-744E-656564454649\nstart=6144, size=32768, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n"
        try run("sfdisk", ["--no-reread", "--no-tell-kernel", "-q", path], stdin: script)
        try makeExt3(path, sizeKiB: fsKiB, label: "gptroot", uuid: uuid, offset: 6144 * 512)
        let image = try InputImage.open(path: path)
        guard case let .partitionedDisk(table, partitions) = image.kind else {
            Issue.record("expected a partitioned disk, got \(image.kind)")
            return
        }
        #expect(table == "gpt")
        #expect(partitions.map(\.number) == [1, 2])
        #expect(image.rootPartition?.number == 2)
        #expect(image.filesystemOffset == 6144 * 512)
        #expect(image.probe.label == "gptroot")
        // Through a VDI, libblkid sees the same table in the probe window.
        try run("qemu-img", ["convert", "-f", "raw", "-O", "vdi", path, dir.file("gpt.vdi")])
        let vdi = try InputImage.open(path: dir.file("gpt.vdi"), scratchDirectory: dir.path)
        guard case let .diskImage(_, _, inner) = vdi.kind else { Issue.record("\(vdi.kind)"); return }
        #expect(inner == image.kind && vdi.probe == image.probe && vdi.rootPartition == image.rootPartition)
    }

    @Test func explicitPartitionMustHoldExt() throws {
        let dir = try TestDirectory()
        let path = dir.file("disk.img")
        try makeDisk(path)
        let error = #expect(throws: InputError.self) { _ = try InputImage.open(path: path, partition: 1) }
        #expect(error == .notExt(path: path, found: "vfat", location: "partition 1"))
        #expect(throws: InputError.partitionWithoutTable(path: dir.file("fs.img"), number: 1)) {
            try makeExt3(dir.file("fs.img"), sizeKiB: 4096, label: "x", uuid: uuid)
            _ = try InputImage.open(path: dir.file("fs.img"), partition: 1)
        }
    }

    @Test func diskWithoutLinuxPartition() throws {
        let dir = try TestDirectory()
        let path = dir.file("disk.img")
        try makeMBRDisk(path, sizeMiB: 16, partitions: ["start=2048, size=8192, type=0c", "start=10240, size=8192, type=82"])
        try run("mkfs.vfat", ["--offset=2048", path, "4096"])
        let error = #expect(throws: InputError.self) { _ = try InputImage.open(path: path) }
        guard case let .noLinuxPartition(_, table, found)? = error else {
            Issue.record("expected noLinuxPartition, got \(String(describing: error))")
            return
        }
        #expect(table == "dos")
        #expect(found == "1 type 0x0c vfat, 2 type 0x82 nothing recognised")
        #expect(error?.description.hasPrefix("\(path): the dos partition table has no Linux (0x83) partition") == true)
    }

    @Test func gzipOfBareFilesystem() throws {
        let dir = try TestDirectory()
        let scratch = dir.file("scratch")
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: false)
        let raw = dir.file("root.img")
        try makeExt3(raw, sizeKiB: fsKiB, label: "root", uuid: uuid)
        let path = dir.file("root.img.gz")
        try writeAll(path, try gzipBytes(raw))
        let before = try FileFingerprint(path)
        var temporary = ""
        do {
            let image = try InputImage.open(path: path, scratchDirectory: scratch)
            #expect(image.kind == .gzip(inner: .bareFilesystem))
            temporary = try #require(image.temporaryPath)
            #expect(image.filesystemPath == temporary)
            #expect(temporary.hasPrefix(scratch + "/"))
            #expect(image.filesystemOffset == 0 && image.filesystemSize == fsKiB * 1024)
            #expect(image.probe.uuid == uuid)
            #expect(try readAll(temporary) == readAll(raw))
            // Zero chunks were left as holes: a fresh 16 MiB ext3 is mostly empty.
            #expect(try allocatedBytes(temporary) < fsKiB * 1024 / 2)
            #expect(try dir.contents().count == 3)
        }
        #expect(!FileManager.default.fileExists(atPath: temporary))
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch).isEmpty)
        #expect(try FileFingerprint(path) == before)
    }

    /// `rehost convert vm.ova`: the OVA's disk (a streamOptimized VMDK of a bare ext3) is
    /// copied out of the archive as it is stored, and read in place there: one scratch file, of
    /// the member's size, gone when the image is released.
    @Test func ovaOfBareFilesystem() throws {
        let dir = try TestDirectory()
        let scratch = dir.file("scratch")
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: false)
        let raw = dir.file("root.img")
        try makeExt3(raw, sizeKiB: fsKiB, label: "root", uuid: uuid)
        _ = try run("qemu-img", ["convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", raw, dir.file("root-disk1.vmdk")])
        try writeAll(dir.file("vm.ovf"), Array("""
            <Envelope xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"><References><File ovf:href="root-disk1.vmdk" ovf:id="f1"/></References>
            <DiskSection><Disk ovf:diskId="d1" ovf:fileRef="f1"/></DiskSection></Envelope>

            """.utf8))
        let path = dir.file("vm.ova")
        _ = try run("tar", ["--format=ustar", "-C", dir.path, "-cf", path, "vm.ovf", "root-disk1.vmdk"])
        let before = try FileFingerprint(path)
        var temporary = ""
        do {
            let image = try InputImage.open(path: path, scratchDirectory: scratch)
            #expect(image.kind == .diskImage(format: .ova, variant: "OVA member root-disk1.vmdk, VMDK streamOptimized", inner: .bareFilesystem))
            temporary = try #require(image.temporaryPath)
            #expect(temporary.hasPrefix(scratch + "/"))
            #expect(image.probe.uuid == uuid && image.filesystemSize == fsKiB * 1024)
            #expect(try readAll(temporary) == readAll(dir.file("root-disk1.vmdk")))
            #expect(image.filesystemPath == nil)
            #expect(try image.filesystem.read(count: Int(fsKiB * 1024), at: 0) == readAll(raw))
            #expect(try FileManager.default.contentsOfDirectory(atPath: scratch).count == 1)
        }
        #expect(!FileManager.default.fileExists(atPath: temporary))
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch).isEmpty)
        #expect(try FileFingerprint(path) == before)
    }

    @Test func gzipOfDisk() throws {
        let dir = try TestDirectory()
        let raw = dir.file("disk.img")
        try makeDisk(raw)
        let path = dir.file("disk.img.gz")
        try writeAll(path, try gzipBytes(raw))
        let image = try InputImage.open(path: path, scratchDirectory: dir.path)
        guard case let .gzip(inner) = image.kind, case let .partitionedDisk(table, _) = inner else {
            Issue.record("expected gzip of a partitioned disk, got \(image.kind)")
            return
        }
        #expect(table == "dos")
        #expect(image.filesystemOffset == 5 * ByteCount.MiB)
        #expect(image.rootPartition?.number == 2)
        #expect(try FileFingerprint(#require(image.filesystemPath)).bytes == FileFingerprint(raw).bytes)
    }

    @Test func brokenGzipLeavesNoScratchFile() throws {
        let dir = try TestDirectory()
        let scratch = dir.file("scratch")
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: false)
        try makeExt3(dir.file("root.img"), sizeKiB: fsKiB, label: "root", uuid: uuid)
        let compressed = try gzipBytes(dir.file("root.img"))
        let path = dir.file("cut.img.gz")
        try writeAll(path, Array(compressed[0..<compressed.count / 2]))
        #expect(throws: ZlibError.truncated(name: path, compressedOffset: UInt64(compressed.count / 2))) {
            _ = try InputImage.open(path: path, scratchDirectory: scratch)
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch).isEmpty)
    }

    @Test func gzipOfQcow2IsRefused() throws {
        let dir = try TestDirectory()
        try run("qemu-img", ["create", "-q", "-f", "qcow2", dir.file("disk.qcow2"), "64M"])
        try writeAll(dir.file("disk.qcow2.gz"), try gzipBytes(dir.file("disk.qcow2")))
        let error = #expect(throws: InputError.nested(path: dir.file("disk.qcow2.gz"), container: "gzip data", found: "qcow2")) {
            _ = try InputImage.open(path: dir.file("disk.qcow2.gz"), scratchDirectory: dir.path)
        }
        #expect(error?.description.contains("qcow2 data inside gzip data") == true)
        #expect(try dir.contents() == ["disk.qcow2", "disk.qcow2.gz"])
    }

    // MARK: errors

    @Test func missingAndNonFiles() throws {
        let dir = try TestDirectory()
        let missing = dir.file("nope.img")
        let error = #expect(throws: InputError.missing(path: missing)) { _ = try InputImage.open(path: missing) }
        #expect(error?.description == "\(missing): no such file")
        #expect(throws: InputError.notAFile(path: dir.path, found: "a directory")) { _ = try InputImage.open(path: dir.path) }
        #expect(throws: InputError.notAFile(path: "/dev/null", found: "a character device")) {
            _ = try InputImage.open(path: "/dev/null")
        }
    }

    @Test func emptyAndTooSmall() throws {
        let dir = try TestDirectory()
        try writeAll(dir.file("empty.img"), [])
        #expect(throws: InputError.empty(path: dir.file("empty.img"))) { _ = try InputImage.open(path: dir.file("empty.img")) }
        try writeAll(dir.file("small.img"), [UInt8](repeating: 7, count: 1500))
        let error = #expect(throws: InputError.tooSmall(path: dir.file("small.img"), size: 1500, needed: 2048)) {
            _ = try InputImage.open(path: dir.file("small.img"))
        }
        #expect(error?.description == "\(dir.file("small.img")): too small to hold a filesystem superblock: 1500 bytes, need at least 2048")
    }

    @Test func truncatedFilesystem() throws {
        let dir = try TestDirectory()
        let path = dir.file("input.img")
        try makeExt3(path, sizeKiB: 262144, label: "big", uuid: uuid)
        try FileHandle(forWritingAtPath: path).map { try $0.truncate(atOffset: 10 * ByteCount.MiB); try $0.close() }
        let error = #expect(throws: InputError.self) { _ = try InputImage.open(path: path) }
        #expect(error == .truncatedFilesystem(path: path, type: "ext3", needed: 268_435_456, available: 10_485_760,
                                              container: "the file"))
        #expect(error?.description == "\(path): truncated: the ext3 filesystem needs 268435456 bytes but the file holds 10485760")
    }

    @Test func truncatedDisk() throws {
        let dir = try TestDirectory()
        let path = dir.file("disk.img")
        try makeDisk(path)
        try FileHandle(forWritingAtPath: path).map { try $0.truncate(atOffset: 12 * ByteCount.MiB); try $0.close() }
        let end = (10240 + 32768) * UInt64(512)
        let error = #expect(throws: InputError.truncatedDisk(path: path, partition: 2, partitionEnd: end,
                                                             fileSize: 12 * ByteCount.MiB)) {
            _ = try InputImage.open(path: path)
        }
        #expect(error?.description == "\(path): truncated disk: partition 2 ends at byte \(end) but the file holds \(12 * ByteCount.MiB) bytes")
    }

    @Test func corruptSuperblock() throws {
        let dir = try TestDirectory()
        let path = dir.file("input.img")
        try makeExt3(path, sizeKiB: 8192, label: "x", uuid: uuid)
        let file = try RawFile(path: path, mode: .readWrite)
        var field: [UInt8] = [0, 0, 0, 0]
        field.storeLE(UInt32(30), at: 0)
        try file.write(field, at: 1024 + 0x18)  // s_log_block_size
        let error = #expect(throws: InputError.self) { _ = try InputImage.open(path: path) }
        guard case let .corruptSuperblock(_, offset, reason)? = error else {
            Issue.record("expected corruptSuperblock, got \(String(describing: error))")
            return
        }
        #expect(offset == 1024)
        #expect(reason.contains("s_log_block_size is 30"))

        field.storeLE(UInt32(0), at: 0)
        try file.write(field, at: 1024 + 0x18)
        try file.write(field, at: 1024 + 0x20)  // s_blocks_per_group
        let second = #expect(throws: InputError.self) { _ = try InputImage.open(path: path) }
        #expect(second?.description.contains("s_blocks_per_group is 0") == true)
    }

    @Test func otherFilesystemsAreNamed() throws {
        let dir = try TestDirectory()
        let path = dir.file("input.img")
        try makeSparseFile(path, size: 8 * ByteCount.MiB)
        try run("mkfs.vfat", [path])
        let error = #expect(throws: InputError.notExt(path: path, found: "vfat", location: nil)) {
            _ = try InputImage.open(path: path)
        }
        #expect(error?.description == "\(path): found a vfat filesystem; Rehost converts ext2/ext3/ext4 root filesystems")

        try makeSparseFile(dir.file("swap.img"), size: 8 * ByteCount.MiB)
        try run("mkswap", [dir.file("swap.img")])
        #expect(throws: InputError.notExt(path: dir.file("swap.img"), found: "swap", location: nil)) {
            _ = try InputImage.open(path: dir.file("swap.img"))
        }
        try makeSparseFile(dir.file("zero.img"), size: 8 * ByteCount.MiB)
        #expect(throws: InputError.noFilesystem(path: dir.file("zero.img"), location: nil)) {
            _ = try InputImage.open(path: dir.file("zero.img"))
        }
    }

    /// An ext3 root, bare and inside a partitioned disk, in every image format qemu-img writes:
    /// found through a sparse scratch copy, which is removed with the image object; the input is
    /// never written.
    @Test(arguments: [
        (["-O", "qcow2", "-c"], ImageFormat.qcow2), (["-O", "qcow2", "-o", "compat=0.10"], .qcow2),
        (["-O", "vmdk", "-o", "subformat=streamOptimized"], .vmdk), (["-O", "vmdk"], .vmdk),
        (["-O", "vdi"], .vdi), (["-O", "vpc"], .vhd), (["-O", "vpc", "-o", "subformat=fixed,force_size=on"], .vhd),
    ])
    func diskImagesAreReadInPlace(convert: [String], format: ImageFormat) throws {
        let dir = try TestDirectory()
        let scratch = dir.file("scratch")
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: false)
        let bare = dir.file("root.img")
        try makeExt3(bare, sizeKiB: fsKiB, label: "root", uuid: uuid)
        let disk = dir.file("disk.raw")
        try makeDisk(disk)
        for (source, expectedKind) in [(bare, InputKind.bareFilesystem), (disk, nil)] {
            let path = dir.file("input.\(format.rawValue)")
            try? FileManager.default.removeItem(atPath: path)
            try run("qemu-img", ["convert", "-f", "raw"] + convert + [source, path])
            let before = try FileFingerprint(path)
            do {
                let image = try InputImage.open(path: path, scratchDirectory: scratch)
                guard case let .diskImage(found, variant, inner) = image.kind else {
                    Issue.record("kind \(image.kind)")
                    return
                }
                #expect(found == format && !variant.isEmpty)
                if let expectedKind { #expect(inner == expectedKind) } else { #expect(image.rootPartition?.number == 2) }
                #expect(image.probe.type == "ext3" && image.probe.label == "root" && image.probe.uuid == uuid)
                #expect(image.filesystemSize == fsKiB * 1024)
                #expect(image.temporaryPath == nil && image.filesystemPath == nil)
                #expect(try FileManager.default.contentsOfDirectory(atPath: scratch).isEmpty, "a scratch copy was made")
                // The filesystem read through the format holds the very bytes of the raw source.
                let raw = try RawFile(path: source, mode: .readOnly)
                #expect(try image.filesystem.read(count: Int(fsKiB * 1024), at: 0)
                    == raw.read(count: Int(fsKiB * 1024), at: image.filesystemOffset))
            }
            #expect(try FileManager.default.contentsOfDirectory(atPath: scratch).isEmpty)
            #expect(try FileFingerprint(path) == before)
        }
    }

    /// Logical partitions behind a chain of EBRs, read through qcow2 and VHD: libblkid sees them
    /// through the probe window exactly as it sees them in the raw disk.
    @Test(arguments: [["-O", "qcow2", "-c"], ["-O", "vpc"]])
    func logicalPartitionsAreFoundInsideImages(convert: [String]) throws {
        let dir = try TestDirectory()
        let raw = dir.file("disk.raw")
        try makeMBRDisk(raw, sizeMiB: 64, partitions: [
            "\(raw)1 : start=2048, size=8192, type=83", "\(raw)2 : start=12288, type=5",
            "\(raw)5 : size=8192, type=c", "\(raw)6 : size=49152, type=83", "\(raw)7 : size=16384, type=83",
        ])
        // sfdisk -d: "disk.raw5 : start=        14336, size=         8192, type=c"
        let dump = String(decoding: try run("sfdisk", ["-d", raw]), as: UTF8.self)
        var starts: [Int: UInt64] = [:]
        for line in dump.split(separator: "\n") where line.hasPrefix(raw) {
            let number = Int(line.dropFirst(raw.count).prefix { $0.isNumber }) ?? 0
            let start = line.split(separator: "start=").last?.prefix { $0 != "," }.trimmingCharacters(in: .whitespaces)
            starts[number] = UInt64(start ?? "").map { $0 * 512 }
        }
        try makeExt3(raw, sizeKiB: 4096, label: "boot", uuid: "11111111-2c47-4c1a-8d0e-5b9a7e3f2a11", offset: #require(starts[1]))
        try run("mkfs.vfat", ["--offset=\(try #require(starts[5]) / 512)", raw, "4096"])
        try makeExt3(raw, sizeKiB: 24576, label: "root", uuid: uuid, offset: #require(starts[6]))
        try makeExt3(raw, sizeKiB: 8192, label: "var", uuid: "22222222-2c47-4c1a-8d0e-5b9a7e3f2a11", offset: #require(starts[7]))
        let expected = try InputImage.open(path: raw)
        #expect(expected.rootPartition?.number == 6)
        guard case let .partitionedDisk(_, partitions) = expected.kind else { Issue.record("\(expected.kind)"); return }
        #expect(partitions.map(\.number) == [1, 2, 5, 6, 7])
        let image = dir.file("disk.img")
        try run("qemu-img", ["convert", "-f", "raw"] + convert + [raw, image])
        let got = try InputImage.open(path: image, scratchDirectory: dir.path)
        guard case let .diskImage(_, _, inner) = got.kind else { Issue.record("\(got.kind)"); return }
        #expect(inner == expected.kind)
        #expect(got.rootPartition == expected.rootPartition && got.probe == expected.probe)
        #expect(got.filesystemOffset == expected.filesystemOffset && got.filesystemSize == expected.filesystemSize)
        #expect(got.temporaryPath == nil)
        for number in [1, 7] {
            let other = try InputImage.open(path: image, partition: number)
            #expect(other.probe == (try InputImage.open(path: raw, partition: number)).probe)
        }
    }

    @Test(arguments: [("qcow2", ImageFormat.qcow2), ("vmdk", .vmdk), ("vdi", .vdi), ("vpc", .vhd)])
    func emptyImagesHoldNoFilesystem(qemuFormat: String, expected: ImageFormat) throws {
        let dir = try TestDirectory()
        let path = dir.file("input.\(qemuFormat)")
        try run("qemu-img", ["create", "-q", "-f", qemuFormat, path, "64M"])
        #expect(throws: InputError.noFilesystem(path: path, location: nil)) { _ = try InputImage.open(path: path, scratchDirectory: dir.path) }
    }

    @Test func corruptImagesAreRefusedBeforeAnyCopy() throws {
        let dir = try TestDirectory()
        let path = dir.file("input.qcow2")
        try run("qemu-img", ["create", "-q", "-f", "qcow2", path, "64M"])
        try RawFile(path: path, mode: .readWrite).write([0, 0, 0, 9], at: 4)  // version 9
        let error = #expect(throws: ImageReadError.self) { _ = try InputImage.open(path: path, scratchDirectory: dir.path) }
        #expect(error?.description.hasPrefix("\(path): ") == true && error?.description.contains("version") == true, "\(String(describing: error))")
        #expect(try dir.contents() == ["input.qcow2"])
    }

    @Test(arguments: [
        (Array("BZh9".utf8), ForeignFormat.bzip2),
    ])
    func compressedAndDescriptorMagicsAreRefused(magic: [UInt8], expected: ForeignFormat) throws {
        let dir = try TestDirectory()
        let path = dir.file("input")
        try writeAll(path, magic + [UInt8](repeating: 0x41, count: 4096))
        #expect(throws: InputError.unsupportedFormat(path: path, format: expected)) { _ = try InputImage.open(path: path) }
    }

    /// xz and zstd are read (expanded as gzip is): garbage after their magic is corrupt data.
    @Test(arguments: [[UInt8]([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]), [0x28, 0xb5, 0x2f, 0xfd]])
    func xzAndZstdMagicsBeforeGarbageAreCorrupt(magic: [UInt8]) throws {
        let dir = try TestDirectory()
        let path = dir.file("input")
        try writeAll(path, magic + [UInt8](repeating: 0x41, count: 4096))
        do {
            _ = try InputImage.open(path: path, scratchDirectory: dir.path)
            Issue.record("garbage after a compression magic was accepted")
        } catch {
            #expect("\(error)".hasPrefix("\(path): corrupt"), "\(error)")
        }
        #expect(try dir.contents() == ["input"])
    }
}
