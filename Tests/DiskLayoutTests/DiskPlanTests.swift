import Foundation
import ImageCore
import Testing
@testable import DiskLayout

@Suite struct DiskPlanTests {
    let MiB = ByteCount.MiB
    let GiB = ByteCount.GiB

    @Test func defaultSizeFollowsTheDocumentedFormula() throws {
        // partition = roundUp(used * 1.25 + 256 MiB, 64 MiB), at least 256 MiB; disk = partition + 1 MiB
        let cases: [(used: UInt64, partition: UInt64)] = [
            (0, 256 * MiB),
            (100 * MiB, 384 * MiB),          // 125 + 256 = 381 -> 384
            (1 * GiB, 1536 * MiB),           // 1280 + 256 = 1536, already a multiple of 64
            (10 * GiB, 13056 * MiB),         // 12800 + 256
            (3 * MiB, 320 * MiB),            // 3.75 + 256 -> 320
        ]
        for (used, partition) in cases {
            let plan = try DiskPlan.make(requestedSize: nil, usedBytes: used, sourceFilesystemSize: 0)
            #expect(plan.partitionSize == partition, "used \(used)")
            #expect(plan.diskSize == partition + MiB, "used \(used)")
            #expect(plan.partitionSize >= DiskPlan.minimumFilesystemBytes(usedBytes: used))
        }
    }

    @Test func defaultSizeKeepsTheSourceFilesystemsCapacity() throws {
        let plan = try DiskPlan.make(requestedSize: nil, usedBytes: 1 * GiB, sourceFilesystemSize: 20 * GiB + 5)
        #expect(plan.partitionSize == 20 * GiB + MiB)
        #expect(plan.diskSize == 20 * GiB + 2 * MiB)
    }

    @Test func requestedSizesAreRoundedUpToAWholeMiB() throws {
        let tenG = try DiskPlan.make(requestedSize: ByteCount.parse("10G"), usedBytes: 2 * GiB,
                                     sourceFilesystemSize: 4 * GiB)
        #expect(tenG.diskSize == 10 * GiB)
        #expect(tenG.partitionSize == 10 * GiB - MiB)
        let odd = try DiskPlan.make(requestedSize: 1_000_000_001, usedBytes: 10 * MiB, sourceFilesystemSize: 0)
        #expect(odd.diskSize == 954 * MiB)        // 953.67 MiB rounded up
        #expect(odd.partitionSize == 953 * MiB)
        // A requested size wins over the source filesystem's size, even when smaller.
        let shrink = try DiskPlan.make(requestedSize: 2 * GiB, usedBytes: 500 * MiB, sourceFilesystemSize: 8 * GiB)
        #expect(shrink.diskSize == 2 * GiB)
    }

    @Test func tooSmallRequestIsRefusedNamingBothSizes() throws {
        let used = 170 * MiB
        let needs = DiskPlan.minimumFilesystemBytes(usedBytes: used)
        #expect(throws: DiskLayoutError.diskTooSmall(diskSize: 64 * MiB, filesystemNeeds: needs, data: used)) {
            try DiskPlan.make(requestedSize: 64 * MiB, usedBytes: used, sourceFilesystemSize: 300 * MiB)
        }
        let message = String(describing: DiskLayoutError.diskTooSmall(diskSize: 64 * MiB, filesystemNeeds: needs, data: used))
        #expect(message.hasPrefix("disk size 64 MiB is too small: the filesystem needs at least \(ByteCount.format(needs))"))
        #expect(message.contains("170 MiB of data"))
        // Exactly the minimum plus the gap is accepted; one MiB less is not.
        _ = try DiskPlan.make(requestedSize: needs + MiB, usedBytes: used, sourceFilesystemSize: 0)
        #expect(throws: DiskLayoutError.self) {
            try DiskPlan.make(requestedSize: needs, usedBytes: used, sourceFilesystemSize: 0)
        }
    }

    @Test func disksBeyondTwoTiBAreRefused() throws {
        #expect(throws: DiskLayoutError.diskTooLargeForMBR(diskSize: 3 * ByteCount.TiB)) {
            try DiskPlan.make(requestedSize: 3 * ByteCount.TiB, usedBytes: GiB, sourceFilesystemSize: 0)
        }
        #expect(throws: DiskLayoutError.self) {
            try DiskPlan.make(requestedSize: nil, usedBytes: GiB, sourceFilesystemSize: 3 * ByteCount.TiB)
        }
        let largest = try DiskPlan(diskSize: 2 * ByteCount.TiB, diskSignature: 7)
        #expect(largest.partitionSectorCount <= UInt64(UInt32.max))
        #expect(try MBR.decode(largest.mbr()).partitions[0]?.endLBA == largest.diskSectors)
    }

    @Test(arguments: [UInt64(0), 1, 4095, 170 << 20, 1 << 30, 123_456_789_012, 900 << 30])
    func partitionIsAlignedAndInsideTheDisk(used: UInt64) throws {
        for requested in [nil, used * 2 + (300 << 20) + 12345] as [UInt64?] {
            let plan = try DiskPlan.make(requestedSize: requested, usedBytes: used, sourceFilesystemSize: used / 2)
            #expect(plan.partitionOffset == 1 << 20)
            #expect(plan.partitionStartSector == 2048)
            #expect(plan.partitionSize % MiB == 0 && plan.partitionSize > 0)
            #expect(plan.diskSize % MiB == 0)
            #expect(plan.partitionOffset + plan.partitionSize <= plan.diskSize)
            #expect(plan.partitionSize >= DiskPlan.minimumFilesystemBytes(usedBytes: used))
            let mbr = try MBR.decode(plan.mbr(), diskSectors: plan.diskSectors)
            let partition = try #require(mbr.partitions[0])
            #expect(partition.bootable && partition.type == 0x83)
            #expect(UInt64(partition.firstLBA) * 512 == plan.partitionOffset)
            #expect(UInt64(partition.sectorCount) * 512 == plan.partitionSize)
            #expect(mbr.partitions[1...].allSatisfy { $0 == nil })
            #expect(mbr.bootCode.allSatisfy { $0 == 0 })
        }
    }

    @Test func minimumGrowsWithDataAndCoversTheJournal() {
        var previous: UInt64 = 0
        for used in stride(from: UInt64(0), through: 64 * GiB, by: Int(GiB / 2)) {
            let minimum = DiskPlan.minimumFilesystemBytes(usedBytes: used)
            #expect(minimum >= previous)
            #expect(minimum % MiB == 0)
            #expect(minimum >= used + used / 100 + DiskPlan.defaultJournalBytes(filesystemBytes: minimum))
            previous = minimum
        }
        #expect(DiskPlan.minimumFilesystemBytes(usedBytes: UInt64.max) >= UInt64.max - MiB)
    }

    @Test func signaturesAreRandomUnlessGiven() throws {
        let signatures = try (0..<8).map { _ in try DiskPlan(diskSize: GiB).diskSignature }
        #expect(Set(signatures).count > 1)
        #expect(!signatures.contains(0))
        #expect(try DiskPlan(diskSize: GiB, diskSignature: 0x1234).diskSignature == 0x1234)
    }

    @Test func codableRoundTripAndValidation() throws {
        let plan = try DiskPlan.make(requestedSize: 5 * GiB, usedBytes: GiB, sourceFilesystemSize: 0, diskSignature: 99)
        let json = try JSONEncoder().encode(plan)
        #expect(try JSONDecoder().decode(DiskPlan.self, from: json) == plan)
        let misaligned = #"{"diskSize":1073741824,"partitionOffset":1048576,"partitionSize":1000,"diskSignature":1}"#
        #expect(throws: DiskLayoutError.self) {
            try JSONDecoder().decode(DiskPlan.self, from: Data(misaligned.utf8))
        }
        let overhanging = #"{"diskSize":1073741824,"partitionOffset":1048576,"partitionSize":1073741824,"diskSignature":1}"#
        #expect(throws: DiskLayoutError.self) {
            try JSONDecoder().decode(DiskPlan.self, from: Data(overhanging.utf8))
        }
    }

    /// The estimate is checked against mke2fs: an ext3 of exactly the minimum size (4 KiB blocks,
    /// 128-byte inodes, one inode per 16 KiB, as the estimate assumes) takes that much data.
    @Test func minimumIsEnoughForMke2fs() throws {
        let scratch = try ScratchDirectory()
        let staging = scratch.file("staging")
        try FileManager.default.createDirectory(atPath: "\(staging)/many", withIntermediateDirectories: true)
        var block = [UInt8](repeating: 0, count: Int(MiB))
        for i in block.indices { block[i] = UInt8(truncatingIfNeeded: i &* 2_654_435_761 >> 13) | 1 }
        let big = try RawFile(path: "\(staging)/big.bin", mode: .createExclusive)
        let bigMiB: UInt64 = 96
        for i in 0..<bigMiB { try big.write(block, at: i * MiB) }
        let smallFiles: UInt64 = 2000
        for i in 0..<smallFiles {
            try Data("file \(i)\n".utf8).write(to: URL(fileURLWithPath: "\(staging)/many/f\(i)"))
        }
        // What a source filesystem with 4 KiB blocks reports as used.
        let used = bigMiB * MiB + smallFiles * 4096
        let size = DiskPlan.minimumFilesystemBytes(usedBytes: used)
        let image = scratch.file("fs.img")
        try runTool("mke2fs", ["-q", "-F", "-t", "ext3", "-b", "4096", "-I", "128", "-i", "16384",
                               "-d", staging, image, "\(size / 1024)"])
        try runTool("e2fsck", ["-fn", image])
    }
}
