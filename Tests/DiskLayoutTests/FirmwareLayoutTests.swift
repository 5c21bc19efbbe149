import Foundation
import ImageCore
import Testing
@testable import DiskLayout

/// The GPT disk of `--firmware uefi|both`, made from the MBR plan: the boot partitions first, the
/// plan's partitions after them with their sizes, numbers shifted, the backup table in the last MiB.
@Suite struct FirmwareLayoutTests {
    let MiB = ByteCount.MiB
    let GiB = ByteCount.GiB

    func plan() throws -> DiskPlan {
        try DiskPlan.make(requestedSize: nil, filesystems: [
            DiskPlan.FilesystemNeed(mountPoint: "/boot", usedBytes: 10 * MiB, sourceFilesystemSize: 0),
            DiskPlan.FilesystemNeed(mountPoint: "/", usedBytes: 100 * MiB, sourceFilesystemSize: 0),
        ], swapBytes: 64 * MiB)
    }

    @Test(arguments: [Firmware.uefi, .both])
    func bootPartitionsComeFirstAndThePlanKeepsItsSizes(firmware: Firmware) throws {
        let plan = try plan()
        var count = 0
        let layout = try GPTDiskLayout.make(plan: plan, firmware: firmware, espSize: 64 * MiB) {
            count += 1
            return UUIDBytes.random(for: "test \(count)")
        }
        let shift = firmware == .both ? 2 : 1
        #expect(layout.numberShift == shift)
        #expect(layout.gpt.partitions.count == plan.partitions.count + shift)
        #expect(layout.esp.type == GPT.PartitionType.efiSystem)
        #expect(layout.esp.size == 64 * MiB)
        #expect(layout.esp.offset == (firmware == .both ? 2 : 1) * MiB)
        if firmware == .both {
            #expect(layout.biosBoot?.type == GPT.PartitionType.biosBoot)
            #expect(layout.biosBoot?.offset == MiB && layout.biosBoot?.size == MiB)
        } else {
            #expect(layout.biosBoot == nil)
        }
        for partition in plan.partitions {
            let moved = layout.partition(planNumber: partition.number)
            #expect(moved.size == partition.size)
            #expect(moved.type == (partition.isSwap ? GPT.PartitionType.linuxSwap : GPT.PartitionType.linuxFilesystem))
            #expect(layout.number(planNumber: partition.number) == partition.number + shift)
        }
        // The plan's disk, the boot partitions, and one MiB at the end for the backup table.
        #expect(layout.diskSize == plan.diskSize + GPTDiskLayout.extraBytes(firmware: firmware, espSize: 64 * MiB))
        #expect(layout.gpt.partitions.last!.lastLBA < layout.gpt.backupEntryArrayLBA)
        // One GUID for the disk and one per partition, each asked for separately.
        #expect(count == 1 + layout.gpt.partitions.count)
        #expect(Set(layout.gpt.partitions.map(\.uniqueGUID) + [layout.gpt.diskGUID]).count == count)
    }

    @Test func espIs260MiBExceptOnSmallDisks() {
        #expect(GPTDiskLayout.espSize(planDiskSize: 450 * MiB) == 64 * MiB)
        #expect(GPTDiskLayout.espSize(planDiskSize: 2 * GiB) == 260 * MiB)
        #expect(GPTDiskLayout.espSize(planDiskSize: 40 * GiB) == 260 * MiB)
    }

    @Test func earlyConfigFindsBootGrubByUUID() {
        let config = GrubEFIImage.earlyConfig(bootFilesystemUUID: "3d1b7c9e-5f2a-4e8b-9c61-0a7d2e4f8b13", grubDirectory: "/grub")
        #expect(config == """
            search --no-floppy --fs-uuid --set=root 3d1b7c9e-5f2a-4e8b-9c61-0a7d2e4f8b13
            set prefix=($root)/grub
            configfile ($root)/grub/grub.cfg

            """)
    }
}
