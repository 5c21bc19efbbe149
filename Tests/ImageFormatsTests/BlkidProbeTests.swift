import Foundation
import Blkid
import ImageCore
import Testing

@Suite struct BlkidProbeTests {
    let uuid = "0b7e2b2c-4a51-4f0e-9d55-3c2b1f8e6a10"

    @Test func probesBareExt3() throws {
        let dir = try TestDirectory()
        try makeExt3(dir.file("fs.img"), sizeKiB: 8192, label: "rootfs", uuid: uuid)
        let probe = try #require(try BlkidProbe.probeFilesystem(path: dir.file("fs.img"), offset: 0, size: nil))
        #expect(probe.type == "ext3")
        #expect(probe.label == "rootfs")
        #expect(probe.uuid == uuid)
        #expect(probe.usage == "filesystem")
        #expect(probe.version == "1.0")
        #expect(probe.isExt)
    }

    @Test func probesPartitionTableAndFilesystemAtOffset() throws {
        let dir = try TestDirectory()
        let disk = dir.file("disk.img")
        try makeMBRDisk(disk, sizeMiB: 20, partitions: ["start=2048, size=8192, type=0c", "start=10240, size=20480, type=83, bootable"])
        try makeExt3(disk, sizeKiB: 10240, label: "inside", uuid: uuid, offset: 10240 * 512)
        let table = try #require(try BlkidProbe.probePartitions(path: disk))
        #expect(table.type == "dos")
        #expect(table.partitions.count == 2)
        let first = table.partitions[0], second = table.partitions[1]
        #expect(first.number == 1 && first.startBytes == 1 * ByteCount.MiB && first.sizeBytes == 4 * ByteCount.MiB)
        #expect(first.typeCode == 0x0c && first.bootable == false)
        #expect(second.number == 2 && second.startBytes == 5 * ByteCount.MiB && second.sizeBytes == 10 * ByteCount.MiB)
        #expect(second.typeCode == 0x83 && second.bootable == true && !second.isExtended)

        #expect(try BlkidProbe.probeFilesystem(path: disk, offset: first.startBytes, size: first.sizeBytes) == nil)
        let probe = try #require(try BlkidProbe.probeFilesystem(path: disk, offset: second.startBytes, size: second.sizeBytes))
        #expect(probe.type == "ext3" && probe.label == "inside" && probe.uuid == uuid)
        // The whole disk is not itself a filesystem.
        #expect(try BlkidProbe.probeFilesystem(path: disk, offset: 0, size: nil)?.isExt != true)
    }

    @Test func probesOtherFilesystemTypes() throws {
        let dir = try TestDirectory()
        try makeSparseFile(dir.file("vfat.img"), size: 8 * ByteCount.MiB)
        try run("mkfs.vfat", ["-n", "DOSDISK", dir.file("vfat.img")])
        let vfat = try #require(try BlkidProbe.probeFilesystem(path: dir.file("vfat.img")))
        #expect(vfat.type == "vfat" && vfat.label == "DOSDISK" && !vfat.isExt)

        try makeSparseFile(dir.file("swap.img"), size: 8 * ByteCount.MiB)
        try run("mkswap", ["-L", "swappy", dir.file("swap.img")])
        let swap = try #require(try BlkidProbe.probeFilesystem(path: dir.file("swap.img")))
        #expect(swap.type == "swap" && swap.label == "swappy" && swap.usage == "other")
    }

    @Test func nothingRecognisedIsNil() throws {
        let dir = try TestDirectory()
        try makeSparseFile(dir.file("zero.img"), size: 4 * ByteCount.MiB)
        #expect(try BlkidProbe.probeFilesystem(path: dir.file("zero.img")) == nil)
        #expect(try BlkidProbe.probePartitions(path: dir.file("zero.img")) == nil)
        try makeExt3(dir.file("fs.img"), sizeKiB: 4096, label: "x", uuid: uuid)
        #expect(try BlkidProbe.probePartitions(path: dir.file("fs.img")) == nil)
    }

    @Test func missingFileIsAnError() {
        #expect(throws: BlkidError.open(path: "/nonexistent/x.img", errno: ENOENT)) {
            _ = try BlkidProbe.probeFilesystem(path: "/nonexistent/x.img")
        }
    }
}
