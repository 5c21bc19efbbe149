import ImageCore

/// Installs GRUB 2 for BIOS into a disk image the way `grub-bios-setup` does for an embedded
/// core.img, but as pure byte edits (grub-bios-setup refuses image files).
///
/// boot.img fields (GRUB 2.06 `include/grub/i386/pc/boot.h`):
///
/// ```
///   0x000  jmp over the BPB
///   0x003  BPB area (0x03..<0x5A): kept from the disk's old sector 0, as grub-bios-setup does,
///          so a FAT-style BPB a BIOS may look at survives
///   0x05C  kernel_sector (u64 LE): LBA of core.img's first sector; 1 when embedded after the MBR
///   0x064  boot_drive (u8): 0xFF = use the drive the BIOS booted from (DL)
///   0x066  drive check: a 2-byte `jmp` that skips forcing DL to 0x80; grub-bios-setup turns it
///          into two NOPs on hard disks, for BIOSes that pass a bogus DL
///   0x1B8  disk signature, partition table, 55 AA: kept from the disk
/// ```
public enum BiosBootInstaller {
    public static let bpbRange = 0x03..<0x5A
    public static let kernelSectorOffset = 0x5C
    public static let bootDriveOffset = 0x64
    public static let driveCheckOffset = 0x66
    /// The first byte of the MBR that belongs to the disk, not the boot code.
    public static let keptFromOffset = MBR.diskSignatureOffset
    /// core.img goes right after the MBR.
    public static let coreImageSector: UInt64 = 1

    /// core.img's first sector (diskboot.img) ends with a list of extents to load the rest of
    /// core.img from, read backwards from the end of the sector until an entry of length 0:
    ///
    /// ```
    ///   500  start   (u64 LE)  absolute LBA of core.img's second sector
    ///   508  length  (u16 LE)  sectors in this extent
    ///   510  segment (u16 LE)  real-mode segment to load them at: 0x820 (0x8000 + 512)
    ///   488..<500              the next entry; its length (496) must be 0 to end the list
    /// ```
    /// core.img is contiguous from sector 1, so one entry does it: start = 2,
    /// length = core.img's sectors - 1. grub-mkimage already writes this for sector 1; we write
    /// it anyway so the embedding is correct by construction, and check the rest is a diskboot list.
    static let blocklistStartOffset = 500
    static let blocklistLengthOffset = 508
    static let blocklistSegmentOffset = 510
    static let blocklistTerminatorLengthOffset = 496
    static let diskbootSegment: UInt16 = 0x820

    /// Returns the new sector 0 and the bytes to write from sector 1 (core.img padded to whole
    /// sectors). `mbr` is the disk's current sector 0 with its partition table.
    public static func embed(bootImage: [UInt8], coreImage: [UInt8], mbr: [UInt8],
                             partitionStartSector: UInt64) throws -> (mbr: [UInt8], gap: [UInt8]) {
        try embed(bootImage: bootImage, coreImage: coreImage, mbr: mbr, coreSector: coreImageSector,
                  endSector: partitionStartSector)
    }

    /// The GPT variant (`--firmware both`): core.img goes into the BIOS boot partition
    /// (`GPT.PartitionType.biosBoot`, 1 MiB is plenty) instead of the gap after the MBR, which
    /// on a GPT disk holds the primary table. `protectiveMBR` is `GPT.protectiveMBR()`; write the
    /// returned sector at 0 and `core` at `biosBootPartition.offset`. core.img must be built with
    /// `part_gpt` and a `(hd0,gptN)` prefix.
    public static func embed(bootImage: [UInt8], coreImage: [UInt8], protectiveMBR: [UInt8],
                             biosBootPartition: GPTPartition) throws -> (mbr: [UInt8], core: [UInt8]) {
        let result = try embed(bootImage: bootImage, coreImage: coreImage, mbr: protectiveMBR,
                               coreSector: biosBootPartition.firstLBA, endSector: biosBootPartition.lastLBA + 1)
        return (result.mbr, result.gap)
    }

    /// boot.img into sector 0 pointing at core.img in sectors `coreSector..<endSector`.
    static func embed(bootImage: [UInt8], coreImage: [UInt8], mbr: [UInt8],
                      coreSector: UInt64, endSector: UInt64) throws -> (mbr: [UInt8], gap: [UInt8]) {
        let partitionStartSector = endSector
        guard bootImage.count == MBR.sectorSize else {
            throw DiskLayoutError.bootImageSize(path: "boot.img", expected: MBR.sectorSize, got: bootImage.count)
        }
        guard mbr.count == MBR.sectorSize else {
            throw DiskLayoutError.wrongSectorSize(source: "MBR", expected: MBR.sectorSize, got: mbr.count)
        }
        let signature = mbr.loadLE(UInt16.self, at: MBR.bootSignatureOffset)
        guard signature == 0xAA55 else {
            throw DiskLayoutError.badBootSignature(source: "MBR", offset: MBR.bootSignatureOffset, found: signature)
        }
        // A short jmp or two NOPs is what any GRUB 2 boot.img has at the drive check.
        let driveCheck = bootImage[driveCheckOffset]
        guard driveCheck == 0xEB || (driveCheck == 0x90 && bootImage[driveCheckOffset + 1] == 0x90) else {
            throw DiskLayoutError.unexpectedBootCode(offset: driveCheckOffset, expected: "0xEB (jmp) or 0x90 (nop)",
                                                     found: driveCheck)
        }
        guard coreImage.count >= MBR.sectorSize else { throw DiskLayoutError.coreImageTooSmall(size: coreImage.count) }

        let coreSectors = (UInt64(coreImage.count) + 511) / 512
        let gapBytes = endSector > coreSector ? (endSector - coreSector) * 512 : 0
        guard coreSectors * 512 <= gapBytes else {
            throw DiskLayoutError.coreImageDoesNotFit(coreSize: coreImage.count, gapSize: gapBytes,
                                                      partitionStartSector: partitionStartSector)
        }

        var sector = bootImage
        sector.replaceSubrange(bpbRange, with: mbr[bpbRange])
        sector.replaceSubrange(keptFromOffset..<MBR.sectorSize, with: mbr[keptFromOffset..<MBR.sectorSize])
        sector.storeLE(coreSector, at: kernelSectorOffset)
        sector[bootDriveOffset] = 0xFF
        sector[driveCheckOffset] = 0x90
        sector[driveCheckOffset + 1] = 0x90

        var gap = coreImage + [UInt8](repeating: 0, count: Int(coreSectors * 512) - coreImage.count)
        let segment = gap.loadLE(UInt16.self, at: blocklistSegmentOffset)
        guard segment == diskbootSegment else {
            throw DiskLayoutError.coreImageNotDiskboot(offset: blocklistSegmentOffset, segment: segment)
        }
        let terminator = gap.loadLE(UInt16.self, at: blocklistTerminatorLengthOffset)
        guard terminator == 0 else {
            throw DiskLayoutError.coreImageBlocklistNotTerminated(offset: blocklistTerminatorLengthOffset - 8,
                                                                  length: terminator)
        }
        // The length field is 16 bits: one extent covers at most 65535 sectors after the first.
        guard let length = UInt16(exactly: coreSectors - 1) else {
            throw DiskLayoutError.coreImageDoesNotFit(coreSize: coreImage.count, gapSize: 65536 * 512,
                                                      partitionStartSector: partitionStartSector)
        }
        gap.storeLE(coreSector + 1, at: blocklistStartOffset)
        gap.storeLE(length, at: blocklistLengthOffset)
        return (sector, gap)
    }

    /// Writes an embedding's sector 0 and gap into a disk file.
    public static func write(mbr: [UInt8], gap: [UInt8], to disk: RawFile) throws {
        try disk.write(mbr, at: 0)
        try disk.write(gap, at: coreImageSector * 512)
    }
}
