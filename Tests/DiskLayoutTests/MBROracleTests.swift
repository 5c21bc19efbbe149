import Foundation
import ImageCore
import Testing
@testable import DiskLayout

/// util-linux reads back what we write, and we read back what it writes.
@Suite struct MBROracleTests {
    @Test(arguments: [UInt64(300) << 20, UInt64(20) << 30, (UInt64(2) << 40) - (1 << 20)])
    func ourMBRReadsBackInUtilLinux(diskSize: UInt64) throws {
        let scratch = try ScratchDirectory()
        let plan = try DiskPlan(diskSize: diskSize, diskSignature: 0x5EED_0042)
        let disk = scratch.file("disk.raw")
        try makeDisk(at: disk, size: plan.diskSize, sector0: plan.mbr())

        let table = try sfdiskTable(disk)
        #expect(table.label == "dos")
        #expect(table.id == "0x5eed0042")
        #expect(table.partitions.count == 1)
        let partition = try #require(table.partitions.first)
        #expect(partition.start == 2048)
        #expect(partition.size == plan.partitionSectorCount)
        #expect(partition.start * 512 + partition.size * 512 == plan.diskSize)
        #expect(partition.type == "83")
        #expect(partition.bootable == true)

        let blkid = try runTool("blkid", ["-p", "-o", "export", disk])
        #expect(blkid.contains("PTTYPE=dos"))
        #expect(blkid.contains("PTUUID=5eed0042"))

        let fdisk = try runTool("fdisk", ["-l", disk])
        #expect(fdisk.contains("Disklabel type: dos"))
        #expect(fdisk.contains("Disk identifier: 0x5eed0042"))
        let row = try #require(fdisk.split(separator: "\n").first { $0.hasPrefix("\(disk)1 ") })
        let columns = row.split(separator: " ")
        // Device Boot Start End Sectors Size Id Type
        #expect(columns.count >= 8)
        #expect(columns.prefix(5).map(String.init) ==
                ["\(disk)1", "*", "2048", "\(plan.diskSectors - 1)", "\(plan.partitionSectorCount)"])
        #expect(columns.count > 6 && columns[6] == "83")
    }

    @Test func sfdiskTablesDecodeAndMatchOurEncodingByteForByte() throws {
        let scratch = try ScratchDirectory()
        let disk = scratch.file("sfdisk.raw")
        // 20 GiB: the second and third partitions lie beyond CHS range.
        try makeDisk(at: disk, size: 20 << 30, sector0: [])
        let script = """
        label: dos
        label-id: 0x0badcafe
        start=2048, size=204800, type=83, bootable
        start=206848, size=16000000, type=7
        start=16206848, size=1000000, type=82
        """
        guard let sfdisk = Tool.find("sfdisk") else { throw ToolFailure(description: "sfdisk is not installed") }
        let scriptPath = scratch.file("layout.sfdisk")
        try script.write(toFile: scriptPath, atomically: true, encoding: .utf8)
        let result = try Tool.run("/bin/sh", ["-c", "\"$0\" -q \"$1\" < \"$2\"", sfdisk, disk, scriptPath])
        #expect(result.status == 0, "sfdisk: \(result.stderr)")

        let sector = try RawFile(path: disk, mode: .readOnly).read(count: 512, at: 0)
        let decoded = try MBR.decode(sector, diskSectors: (20 << 30) / 512, source: disk)
        let expected = MBR(diskSignature: 0x0BAD_CAFE, partitions: [
            try MBRPartition(bootable: true, type: 0x83, firstLBA: 2048, sectorCount: 204_800),
            try MBRPartition(bootable: false, type: 0x07, firstLBA: 206_848, sectorCount: 16_000_000),
            try MBRPartition(bootable: false, type: 0x82, firstLBA: 16_206_848, sectorCount: 1_000_000),
        ])
        #expect(decoded.partitions == expected.partitions)
        #expect(decoded.diskSignature == 0x0BAD_CAFE)
        // The table area, CHS included, is what sfdisk wrote.
        #expect(Array(expected.encode()[0x1B8..<512]) == Array(sector[0x1B8..<512]))
    }
}
