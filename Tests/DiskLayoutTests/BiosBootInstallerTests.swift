import Foundation
import ImageCore
import Testing
@testable import DiskLayout

@Suite struct BiosBootInstallerTests {
    /// The plan's MBR with a recognisable pattern in the BPB area, as an old boot sector might have.
    func diskMBR(_ plan: DiskPlan) -> [UInt8] {
        var sector = plan.mbr()
        for i in BiosBootInstaller.bpbRange { sector[i] = UInt8(truncatingIfNeeded: 0xA0 &+ i) }
        return sector
    }

    @Test func embeddingPatchesBootImageAndKeepsTheTable() throws {
        let boot = try GrubBootImage.load()
        let core = try GrubCoreImage.build()
        let plan = try DiskPlan(diskSize: 64 << 20, diskSignature: 0xC0FF_EE00)
        let old = diskMBR(plan)
        let (mbr, gap) = try BiosBootInstaller.embed(bootImage: boot, coreImage: core, mbr: old,
                                                     partitionStartSector: plan.partitionStartSector)
        #expect(mbr.count == 512)
        #expect(mbr[0..<3] == boot[0..<3])                               // the jump over the BPB
        #expect(mbr[0x03..<0x5A] == old[0x03..<0x5A])                    // BPB kept from the disk
        #expect(mbr[0x5A..<0x5C] == boot[0x5A..<0x5C])
        #expect(mbr.loadLE(UInt64.self, at: 0x5C) == 1)                  // kernel_sector
        #expect(mbr[0x64] == 0xFF)                                       // boot_drive: use DL
        #expect(boot[0x66] == 0xEB)                                      // the drive check was a jmp ...
        #expect(mbr[0x66] == 0x90 && mbr[0x67] == 0x90)                  // ... and is now two NOPs
        #expect(mbr[0x68..<440] == boot[0x68..<440])                     // the rest of the code
        #expect(mbr[440..<512] == old[440..<512])                        // signature, table, 55 AA
        let decoded = try MBR.decode(mbr, diskSectors: plan.diskSectors)
        #expect(decoded.partitions == plan.mbrTable.partitions)
        #expect(decoded.diskSignature == 0xC0FF_EE00)

        let sectors = (core.count + 511) / 512
        #expect(gap.count == sectors * 512)
        #expect(gap[0..<500] == core[0..<500])
        #expect(gap[512..<core.count] == core[512...])
        #expect(gap[core.count...].allSatisfy { $0 == 0 })
        #expect(gap.loadLE(UInt64.self, at: 500) == 2)
        #expect(Int(gap.loadLE(UInt16.self, at: 508)) == sectors - 1)
        #expect(gap.loadLE(UInt16.self, at: 510) == 0x820)
        // grub-mkimage already writes the same blocklist for sector 1: embedding changes nothing there.
        #expect(gap[0..<512] == core[0..<512])
    }

    @Test func coreImageLandsAtSectorOne() throws {
        let scratch = try ScratchDirectory()
        let plan = try DiskPlan(diskSize: 8 << 20, diskSignature: 3)
        let core = try GrubCoreImage.build()
        let (mbr, gap) = try BiosBootInstaller.embed(bootImage: try GrubBootImage.load(), coreImage: core,
                                                     mbr: plan.mbr(), partitionStartSector: plan.partitionStartSector)
        let path = scratch.file("disk.raw")
        try makeDisk(at: path, size: plan.diskSize, sector0: [])
        try BiosBootInstaller.write(mbr: mbr, gap: gap, to: try RawFile(path: path, mode: .readWrite))
        let disk = try RawFile(path: path, mode: .readOnly)
        #expect(try disk.read(count: 512, at: 0) == mbr)
        #expect(try disk.read(count: core.count, at: 512) == core)
        #expect(try disk.size == plan.diskSize)
        // Nothing reaches the partition.
        let partitionStart = try disk.read(count: 4096, at: plan.partitionOffset)
        #expect(partitionStart.allSatisfy { $0 == 0 })
    }

    @Test func refusesACoreImageThatDoesNotFit() throws {
        let boot = try GrubBootImage.load()
        let core = try GrubCoreImage.build()
        let sectors = UInt64(core.count + 511) / 512
        let mbr = try DiskPlan(diskSize: 64 << 20, diskSignature: 1).mbr()
        // Exactly enough room: sectors 1...sectors, partition right after.
        _ = try BiosBootInstaller.embed(bootImage: boot, coreImage: core, mbr: mbr, partitionStartSector: sectors + 1)
        let error = DiskLayoutError.coreImageDoesNotFit(coreSize: core.count, gapSize: (sectors - 1) * 512,
                                                        partitionStartSector: sectors)
        #expect(throws: error) {
            try BiosBootInstaller.embed(bootImage: boot, coreImage: core, mbr: mbr, partitionStartSector: sectors)
        }
        #expect(throws: DiskLayoutError.coreImageDoesNotFit(coreSize: core.count, gapSize: 62 * 512,
                                                            partitionStartSector: 63)) {
            try BiosBootInstaller.embed(bootImage: boot, coreImage: core, mbr: mbr, partitionStartSector: 63)
        }
        let message = String(describing: error)
        #expect(message.contains("\(core.count) bytes") && message.contains("\((sectors - 1) * 512) bytes"))
    }

    @Test func blocklistIsRewrittenAndChecked() throws {
        let boot = try GrubBootImage.load()
        let mbr = try DiskPlan(diskSize: 64 << 20, diskSignature: 1).mbr()
        // A synthetic diskboot-shaped image of 10 sectors whose blocklist points elsewhere.
        var core = [UInt8](repeating: 0x11, count: 10 * 512 - 100)
        for i in 488..<500 { core[i] = 0 }
        core.storeLE(UInt64(777), at: 500)
        core.storeLE(UInt16(3), at: 508)
        core.storeLE(UInt16(0x820), at: 510)
        let (_, gap) = try BiosBootInstaller.embed(bootImage: boot, coreImage: core, mbr: mbr, partitionStartSector: 2048)
        #expect(gap.count == 10 * 512)
        #expect(gap.loadLE(UInt64.self, at: 500) == 2)
        #expect(gap.loadLE(UInt16.self, at: 508) == 9)

        var wrongSegment = core
        wrongSegment.storeLE(UInt16(0x1000), at: 510)
        #expect(throws: DiskLayoutError.coreImageNotDiskboot(offset: 510, segment: 0x1000)) {
            try BiosBootInstaller.embed(bootImage: boot, coreImage: wrongSegment, mbr: mbr, partitionStartSector: 2048)
        }
        var unterminated = core
        unterminated.storeLE(UInt16(4), at: 496)
        #expect(throws: DiskLayoutError.coreImageBlocklistNotTerminated(offset: 488, length: 4)) {
            try BiosBootInstaller.embed(bootImage: boot, coreImage: unterminated, mbr: mbr, partitionStartSector: 2048)
        }
        #expect(throws: DiskLayoutError.coreImageTooSmall(size: 100)) {
            try BiosBootInstaller.embed(bootImage: boot, coreImage: Array(core[0..<100]), mbr: mbr,
                                        partitionStartSector: 2048)
        }
    }

    @Test func refusesInputsThatAreNotSectors() throws {
        let boot = try GrubBootImage.load()
        let core = [UInt8](repeating: 0, count: 512)
        let mbr = try DiskPlan(diskSize: 64 << 20, diskSignature: 1).mbr()
        #expect(throws: DiskLayoutError.bootImageSize(path: "boot.img", expected: 512, got: 511)) {
            try BiosBootInstaller.embed(bootImage: Array(boot[0..<511]), coreImage: core, mbr: mbr,
                                        partitionStartSector: 2048)
        }
        var unsigned = mbr
        unsigned[510] = 0
        #expect(throws: DiskLayoutError.badBootSignature(source: "MBR", offset: 510, found: 0xAA00)) {
            try BiosBootInstaller.embed(bootImage: boot, coreImage: core, mbr: unsigned, partitionStartSector: 2048)
        }
        var strangeBoot = boot
        strangeBoot[0x66] = 0x31
        #expect(throws: DiskLayoutError.unexpectedBootCode(offset: 0x66, expected: "0xEB (jmp) or 0x90 (nop)",
                                                           found: 0x31)) {
            try BiosBootInstaller.embed(bootImage: strangeBoot, coreImage: core, mbr: mbr, partitionStartSector: 2048)
        }
    }
}

@Suite struct GrubImageTests {
    @Test func coreImageIsADiskbootImageWithTheRequestedPrefix() throws {
        let core = try GrubCoreImage.build(prefix: "(hd0,msdos1)/boot/grub")
        #expect(core.count > 512 && core.count < 1000 * 512)
        #expect(core.loadLE(UInt16.self, at: 510) == 0x820)
        #expect(core.loadLE(UInt64.self, at: 500) == 2)
        #expect(Int(core.loadLE(UInt16.self, at: 508)) == (core.count + 511) / 512 - 1)
        // The prefix sits in the LZMA-compressed part, so it can only be seen to make a difference.
        #expect(try GrubCoreImage.build(prefix: "(hd0,msdos2)/grub") != core)
        let bigger = try GrubCoreImage.build(extraModules: ["part_gpt", "xfs"])
        #expect(bigger.count > core.count)
    }

    @Test func missingDirectoryAndModulesAreNamed() throws {
        let scratch = try ScratchDirectory()
        #expect(throws: DiskLayoutError.grubDirectoryMissing(path: scratch.path, missing: "kernel.img")) {
            try GrubCoreImage.build(grubDirectory: scratch.path)
        }
        #expect(throws: DiskLayoutError.grubDirectoryMissing(path: scratch.path, missing: "boot.img")) {
            try GrubBootImage.load(grubDirectory: scratch.path)
        }
        #expect(throws: DiskLayoutError.grubModuleMissing(directory: GrubDirectory.default, module: "no_such_module")) {
            try GrubCoreImage.build(extraModules: ["no_such_module"])
        }
        let message = String(describing: DiskLayoutError.grubDirectoryMissing(path: scratch.path, missing: "kernel.img"))
        #expect(message.contains(scratch.path) && message.contains("grub-pc-bin") && message.contains("REHOST_GRUB_DIR"))
    }

    @Test func bootImageMustBeOneSignedSector() throws {
        let scratch = try ScratchDirectory()
        try Data(repeating: 0, count: 511).write(to: URL(fileURLWithPath: scratch.file("boot.img")))
        #expect(throws: DiskLayoutError.bootImageSize(path: scratch.file("boot.img"), expected: 512, got: 511)) {
            try GrubBootImage.load(grubDirectory: scratch.path)
        }
        try Data(repeating: 0, count: 512).write(to: URL(fileURLWithPath: scratch.file("boot.img")))
        #expect(throws: DiskLayoutError.bootImageSignature(path: scratch.file("boot.img"), offset: 510, found: 0)) {
            try GrubBootImage.load(grubDirectory: scratch.path)
        }
        let real = try GrubBootImage.load()
        #expect(real.count == 512 && real[510] == 0x55 && real[511] == 0xAA)
    }

    @Test func environmentOverridesTheDirectory() {
        #expect(GrubDirectory.resolve(environment: ["REHOST_GRUB_DIR": "/opt/grub/i386-pc"]) == "/opt/grub/i386-pc")
        #expect(GrubDirectory.resolve(environment: ["REHOST_GRUB_DIR": ""]) == "/usr/lib/grub/i386-pc")
        #expect(GrubDirectory.resolve(environment: [:]) == "/usr/lib/grub/i386-pc")
    }
}
