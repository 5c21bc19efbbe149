import Foundation
import ImageCore
import Testing
@testable import DiskLayout

/// Plans with one partition per filesystem (`--keep-layout`) and a swap partition: sizes as the
/// documented rules give them, the layout invariants, and the MBR read back by util-linux.
@Suite struct DiskPlanLayoutTests {
    let MiB = ByteCount.MiB
    let GiB = ByteCount.GiB

    /// The LVM fixture's filesystems: /boot 30 MiB used of 64, / 41 of 192, /var 9 of 96.
    var fixtureNeeds: [DiskPlan.FilesystemNeed] {
        [DiskPlan.FilesystemNeed(mountPoint: "/boot", usedBytes: 30 * MiB, sourceFilesystemSize: 64 * MiB),
         DiskPlan.FilesystemNeed(mountPoint: "/", usedBytes: 41 * MiB, sourceFilesystemSize: 192 * MiB),
         DiskPlan.FilesystemNeed(mountPoint: "/var", usedBytes: 9 * MiB, sourceFilesystemSize: 96 * MiB)]
    }

    func summary(_ plan: DiskPlan) -> [String] {
        plan.partitions.map { "\($0.number) \($0.use) \($0.offset / MiB)+\($0.size / MiB) \(hex($0.type))\($0.bootable ? " *" : "")" }
    }

    @Test func eachFilesystemGetsTheRootsDefaultSizeAndSwapComesLast() throws {
        // Each: roundUp(used * 1.25 + 256 MiB, 64 MiB) = 320 MiB; swap 16 MiB; 1 MiB gap.
        let plan = try DiskPlan.make(requestedSize: nil, filesystems: fixtureNeeds, swapBytes: 16 * MiB, diskSignature: 5)
        #expect(summary(plan) == ["1 /boot 1+320 0x83 *", "2 / 321+320 0x83", "3 /var 641+320 0x83", "4 swap 961+16 0x82"])
        #expect(plan.diskSize == 977 * MiB)
        #expect(plan.partitionOffset == MiB && plan.partitionStartSector == 2048)
        #expect(plan.partition(for: "/")?.number == 2 && plan.partition(for: "/home") == nil)
    }

    @Test func withoutBootTheRootIsBootableAndTheSourceSizeIsKept() throws {
        let needs = [DiskPlan.FilesystemNeed(mountPoint: "/", usedBytes: 41 * MiB, sourceFilesystemSize: 192 * MiB),
                     DiskPlan.FilesystemNeed(mountPoint: "/home", usedBytes: MiB, sourceFilesystemSize: 2 * GiB + 5)]
        let plan = try DiskPlan.make(requestedSize: nil, filesystems: needs, swapBytes: 10 * MiB + 4096, diskSignature: 5)
        // /home keeps its 2 GiB (+5 bytes, rounded up to a MiB); the swap is rounded up to a MiB.
        #expect(summary(plan) == ["1 / 1+320 0x83 *", "2 /home 321+2049 0x83", "3 swap 2370+11 0x82"])
    }

    @Test func requestedSizeGivesTheRestToTheRoot() throws {
        let plan = try DiskPlan.make(requestedSize: 4 * GiB, filesystems: fixtureNeeds, swapBytes: 16 * MiB, diskSignature: 5)
        #expect(summary(plan) == ["1 /boot 1+320 0x83 *", "2 / 321+3439 0x83", "3 /var 3760+320 0x83", "4 swap 4080+16 0x82"])
        #expect(plan.diskSize == 4 * GiB)
    }

    /// When the others' default sizes leave the root too little, they shrink to their minimum,
    /// even below their source filesystem's size: --size forces it.
    @Test func requestedSizeShrinksTheOthersToTheirMinimum() throws {
        var needs = fixtureNeeds
        needs[2].sourceFilesystemSize = 2 * GiB
        let plan = try DiskPlan.make(requestedSize: GiB, filesystems: needs, swapBytes: 16 * MiB, diskSignature: 5)
        let boot = DiskPlan.minimumFilesystemBytes(usedBytes: 30 * MiB), variable = DiskPlan.minimumFilesystemBytes(usedBytes: 9 * MiB)
        #expect(plan.partition(for: "/boot")?.size == boot)
        #expect(plan.partition(for: "/var")?.size == variable)
        #expect(variable < 2 * GiB)
        #expect(plan.partition(for: "/")?.size == GiB - MiB - 16 * MiB - boot - variable)
        #expect(plan.partitions.last?.end == GiB)
    }

    @Test func tooSmallADiskIsRefusedNamingWhatItNeeds() throws {
        let minimums = fixtureNeeds.reduce(0) { $0 + DiskPlan.minimumFilesystemBytes(usedBytes: $1.usedBytes) }
        let exact = MiB + minimums + 16 * MiB
        let tight = try DiskPlan.make(requestedSize: exact, filesystems: fixtureNeeds, swapBytes: 16 * MiB)
        #expect(tight.partition(for: "/")?.size == DiskPlan.minimumFilesystemBytes(usedBytes: 41 * MiB))
        #expect(throws: DiskLayoutError.diskTooSmallForPartitions(diskSize: exact - MiB, needs: exact, partitions: 4, data: 80 * MiB)) {
            try DiskPlan.make(requestedSize: exact - MiB, filesystems: fixtureNeeds, swapBytes: 16 * MiB)
        }
        let message = DiskLayoutError.diskTooSmallForPartitions(diskSize: exact - MiB, needs: exact, partitions: 4, data: 80 * MiB).description
        #expect(message.contains("too small for 4 partitions") && message.contains(ByteCount.format(exact)), "\(message)")
    }

    @Test func moreThanFourPartitionsAreRefused() throws {
        let needs = fixtureNeeds + [DiskPlan.FilesystemNeed(mountPoint: "/home", usedBytes: MiB, sourceFilesystemSize: 8 * MiB)]
        _ = try DiskPlan.make(requestedSize: nil, filesystems: needs)
        let error = DiskLayoutError.tooManyPartitions(count: 5, uses: ["/boot", "/", "/var", "/home", "swap"])
        #expect(throws: error) { try DiskPlan.make(requestedSize: nil, filesystems: needs, swapBytes: 16 * MiB) }
        #expect(error.description.hasPrefix("the disk would need 5 partitions (/boot, /, /var, /home, swap) but an MBR holds 4"))
        #expect(throws: DiskLayoutError.self) {
            try DiskPlan.make(requestedSize: nil, filesystems: [fixtureNeeds[0]])   // no root
        }
    }

    /// Whatever the needs, the partitions are whole MiB, back to back from 1 MiB, inside the disk,
    /// at least what their data needs, one bootable; our own MBR decoder (which refuses overlaps)
    /// reads the table back.
    @Test func layoutInvariantsHoldAcrossSizes() throws {
        let mountPoints = ["/boot", "/", "/var", "/home"]
        var checked = 0
        for count in 1...4 {
            for used in [0, 100 * MiB, 3 * GiB + 12345] {
                for source in [0, GiB + 1] {
                    for swap in [nil, 17 * MiB + 1] as [UInt64?] where count + (swap == nil ? 0 : 1) <= 4 {
                        for requested in [nil, 40 * GiB + 3] as [UInt64?] {
                            let needs = mountPoints.prefix(count == 1 ? 2 : count).suffix(count).enumerated().map { index, mountPoint in
                                DiskPlan.FilesystemNeed(mountPoint: mountPoint, usedBytes: used / UInt64(index + 1), sourceFilesystemSize: source)
                            }
                            let plan = try DiskPlan.make(requestedSize: requested, filesystems: needs, swapBytes: swap)
                            let context = "count \(count) used \(used) source \(source) swap \(swap ?? 0) size \(requested ?? 0)"
                            #expect(plan.partitions.count == count + (swap == nil ? 0 : 1), "\(context)")
                            #expect(plan.partitions.first?.offset == MiB, "\(context)")
                            for (index, partition) in plan.partitions.enumerated() {
                                #expect(partition.number == index + 1)
                                #expect(partition.offset % MiB == 0 && partition.size % MiB == 0 && partition.size > 0, "\(context)")
                                if index > 0 { #expect(partition.offset == plan.partitions[index - 1].end, "\(context)") }
                                guard let need = needs.first(where: { $0.mountPoint == partition.use }) else { continue }
                                #expect(partition.size >= DiskPlan.minimumFilesystemBytes(usedBytes: need.usedBytes), "\(context)")
                                if requested == nil { #expect(partition.size >= need.sourceFilesystemSize, "\(context)") }
                            }
                            #expect(plan.partitions.last!.end <= plan.diskSize, "\(context)")
                            if let requested { #expect(plan.diskSize == (requested + MiB - 1) / MiB * MiB, "\(context)") }
                            let bootable = plan.partitions.filter(\.bootable).map(\.use)
                            #expect(bootable == [needs.contains { $0.mountPoint == "/boot" } ? "/boot" : "/"], "\(context)")
                            let decoded = try MBR.decode(plan.mbr(), diskSectors: plan.diskSectors)
                            #expect(decoded.partitions.compactMap { $0 }.map { UInt64($0.firstLBA) * 512 } == plan.partitions.map(\.offset))
                            checked += 1
                        }
                    }
                }
            }
        }
        #expect(checked > 50)
    }

    @Test func multiPartitionMBRReadsBackInUtilLinux() throws {
        let scratch = try ScratchDirectory()
        let plan = try DiskPlan.make(requestedSize: nil, filesystems: fixtureNeeds, swapBytes: 16 * MiB, diskSignature: 0x5EED_0043)
        let disk = scratch.file("disk.raw")
        try makeDisk(at: disk, size: plan.diskSize, sector0: plan.mbr())
        let table = try sfdiskTable(disk)
        #expect(table.label == "dos" && table.id == "0x5eed0043")
        #expect(table.partitions.map(\.start) == [2048, 657408, 1312768, 1968128])
        #expect(table.partitions.map(\.size) == [655360, 655360, 655360, 32768])
        #expect(table.partitions.map(\.type) == ["83", "83", "83", "82"])
        #expect(table.partitions.map { $0.bootable == true } == [true, false, false, false])
        let fdisk = try runTool("fdisk", ["-l", disk])
        let rows = fdisk.split(separator: "\n").filter { $0.hasPrefix(disk) }.map { $0.split(separator: " ").map(String.init) }
        // Device Boot Start End Sectors Size Id Type
        #expect(rows.map { $0.count > 2 ? $0[1] : "" } == ["*", "657408", "1312768", "1968128"])
        // The swap row has no boot column: Device Start End Sectors Size Id Type ("Linux swap / Solaris").
        #expect(rows.last.map { $0.count > 6 && $0[5] == "82" && $0[6...].contains("swap") } == true, "\(fdisk)")
    }

    @Test func multiPartitionPlansRoundTripAndBadOnesAreRefused() throws {
        let made = try DiskPlan.make(requestedSize: nil, filesystems: fixtureNeeds, swapBytes: 16 * MiB, diskSignature: 9)
        let json = try JSONEncoder().encode(made)
        #expect(try JSONDecoder().decode(DiskPlan.self, from: json) == made)
        // A one-partition plan as reports wrote it before `partitions` existed.
        let old = #"{"diskSize":1073741824,"partitionOffset":1048576,"partitionSize":1072693248,"diskSignature":1}"#
        #expect(try JSONDecoder().decode(DiskPlan.self, from: Data(old.utf8)).partitions.map(\.use) == ["/"])
        func partition(_ number: Int, _ offsetMiB: UInt64, _ sizeMiB: UInt64, bootable: Bool = false) -> String {
            #"{"number":\#(number),"use":"/","type":131,"bootable":\#(bootable),"offset":\#(offsetMiB * MiB),"size":\#(sizeMiB * MiB)}"#
        }
        func plan(_ partitions: [String]) -> Data {
            Data(#"{"diskSize":\#(64 * MiB),"diskSignature":1,"partitions":[\#(partitions.joined(separator: ","))]}"#.utf8)
        }
        _ = try JSONDecoder().decode(DiskPlan.self, from: plan([partition(1, 1, 8), partition(2, 9, 8)]))
        let bad: [(String, [String])] = [
            ("overlap", [partition(1, 1, 8), partition(2, 8, 8)]),
            ("misaligned", [partition(1, 1, 8), partition(2, 9, 8) .replacingOccurrences(of: "\(9 * MiB)", with: "\(9 * MiB + 512)")]),
            ("beyond the disk", [partition(1, 1, 8), partition(2, 60, 8)]),
            ("numbering", [partition(1, 1, 8), partition(3, 9, 8)]),
            ("two bootable", [partition(1, 1, 8, bootable: true), partition(2, 9, 8, bootable: true)]),
            ("five", (1...5).map { partition($0, UInt64(1 + 8 * ($0 - 1)), 8) }),
            ("none", []),
        ]
        for (what, partitions) in bad {
            #expect(throws: DiskLayoutError.self, "\(what)") { try JSONDecoder().decode(DiskPlan.self, from: plan(partitions)) }
        }
    }
}
