import ImageCore

/// Everything that can go wrong while laying out a disk or embedding its boot loader. Each
/// description is one line naming the source, the byte offset where it matters, and what was expected.
public enum DiskLayoutError: RehostError, Equatable {
    // MBR decoding
    case wrongSectorSize(source: String, expected: Int, got: Int)
    case badBootSignature(source: String, offset: Int, found: UInt16)
    case badPartitionStatus(source: String, offset: Int, found: UInt8)
    case partitionStartsInMBR(source: String, offset: Int, firstLBA: UInt64)
    case partitionBeyondDisk(source: String, offset: Int, lastLBA: UInt64, diskSectors: UInt64)
    case overlappingPartitions(source: String, firstOffset: Int, secondOffset: Int)
    // Limits of the DOS table
    case beyondMBRLimit(firstLBA: UInt64, sectorCount: UInt64)
    case emptyPartition(firstLBA: UInt64)
    // Disk plan
    case diskTooSmall(diskSize: UInt64, filesystemNeeds: UInt64, data: UInt64)
    case diskTooLargeForMBR(diskSize: UInt64)
    case diskTooSmallForPartitions(diskSize: UInt64, needs: UInt64, partitions: Int, data: UInt64)
    case tooManyPartitions(count: Int, uses: [String])
    case inconsistentPlan(String)
    // GRUB
    case grubDirectoryMissing(path: String, missing: String)
    case grubModuleMissing(directory: String, module: String)
    case bootImageSize(path: String, expected: Int, got: Int)
    case bootImageSignature(path: String, offset: Int, found: UInt16)
    case unexpectedBootCode(offset: Int, expected: String, found: UInt8)
    case coreImageTooSmall(size: Int)
    case coreImageNotDiskboot(offset: Int, segment: UInt16)
    case coreImageBlocklistNotTerminated(offset: Int, length: UInt16)
    case coreImageDoesNotFit(coreSize: Int, gapSize: UInt64, partitionStartSector: UInt64)
    // GPT
    case gptDiskTooSmall(diskSectors: UInt64)
    case gptTooManyPartitions(count: Int)
    case gptPartitionOutOfRange(number: Int, firstLBA: UInt64, lastLBA: UInt64, firstUsable: UInt64, lastUsable: UInt64)
    case gptOverlappingPartitions(first: Int, second: Int)
    case gptNameTooLong(name: String, units: Int)
    case gptPartitionsDoNotFit(diskSize: UInt64, neededSectors: UInt64, availableSectors: UInt64)
    case gptBadHeader(source: String, lba: UInt64, field: String, offset: Int, expected: String, found: String)
    case gptBadEntry(source: String, lba: UInt64, entry: Int, what: String)

    public var description: String {
        switch self {
        case let .wrongSectorSize(source, expected, got):
            return "\(source): expected a \(expected)-byte sector, got \(got) bytes"
        case let .badBootSignature(source, offset, found):
            return "\(source): no boot signature at byte \(offset): expected 55 AA, found \(hexBytes16(found))"
        case let .badPartitionStatus(source, offset, found):
            return "\(source): partition entry at byte \(offset) has status \(hex(found)): expected 0x00 or 0x80"
        case let .partitionStartsInMBR(source, offset, firstLBA):
            return "\(source): partition entry at byte \(offset) starts at sector \(firstLBA): expected sector 1 or later"
        case let .partitionBeyondDisk(source, offset, lastLBA, diskSectors):
            return "\(source): partition entry at byte \(offset) ends at sector \(lastLBA), "
                + "but the disk has only \(diskSectors) sectors"
        case let .overlappingPartitions(source, first, second):
            return "\(source): partition entries at bytes \(first) and \(second) overlap"
        case let .beyondMBRLimit(firstLBA, count):
            return "a partition of \(count) sectors at sector \(firstLBA) is beyond what an MBR can describe "
                + "(start and length must each stay below 2^32 sectors, 2 TiB)"
        case let .emptyPartition(firstLBA):
            return "a partition at sector \(firstLBA) has no sectors: expected at least one"
        case let .diskTooSmall(diskSize, needs, data):
            return "disk size \(ByteCount.format(diskSize)) is too small: the filesystem needs at least "
                + "\(ByteCount.format(needs)) (\(ByteCount.format(data)) of data plus ext3 metadata and journal) "
                + "and the disk 1 MiB more for the boot loader"
        case let .diskTooLargeForMBR(diskSize):
            return "disk size \(ByteCount.format(diskSize)) is beyond what an MBR partition table can describe: "
                + "expected at most 2 TiB"
        case let .diskTooSmallForPartitions(diskSize, needs, partitions, data):
            return "disk size \(ByteCount.format(diskSize)) is too small for \(partitions) partitions: they need at least "
                + "\(ByteCount.format(needs)) (\(ByteCount.format(data)) of data plus each filesystem's ext3 metadata and "
                + "journal, the swap, and 1 MiB for the boot loader)"
        case let .tooManyPartitions(count, uses):
            return "the disk would need \(count) partitions (\(uses.joined(separator: ", "))) but an MBR holds 4 primary "
                + "partitions and Rehost makes no extended ones: drop --keep-layout, or the swap partition"
        case let .inconsistentPlan(what):
            return "disk plan: \(what)"
        case let .grubDirectoryMissing(path, missing):
            return "GRUB directory \(path) lacks \(missing): install grub-pc-bin or set REHOST_GRUB_DIR"
        case let .grubModuleMissing(directory, module):
            return "GRUB module \(module) not found in \(directory): expected \(directory)/\(module).mod"
        case let .bootImageSize(path, expected, got):
            return "\(path): expected exactly \(expected) bytes, got \(got)"
        case let .bootImageSignature(path, offset, found):
            return "\(path): no boot signature at byte \(offset): expected 55 AA, found \(hexBytes16(found))"
        case let .unexpectedBootCode(offset, expected, found):
            return "boot.img: byte \(offset) (\(hex(UInt16(offset)))) is \(hex(found)): expected \(expected)"
        case let .coreImageTooSmall(size):
            return "core.img: \(size) bytes: expected at least one 512-byte sector"
        case let .coreImageNotDiskboot(offset, segment):
            return "core.img: blocklist segment at byte \(offset) is \(hex(segment)): expected 0x820 "
                + "(a core image built with grub-mkimage -O i386-pc)"
        case let .coreImageBlocklistNotTerminated(offset, length):
            return "core.img: blocklist entry at byte \(offset) has length \(length): expected 0 to end the list"
        case let .coreImageDoesNotFit(coreSize, gapSize, start):
            return "core.img is \(ByteCount.format(UInt64(coreSize))) (\(coreSize) bytes) but the gap between "
                + "the MBR and the partition at sector \(start) holds only \(gapSize) bytes"
        case let .gptDiskTooSmall(diskSectors):
            return "a disk of \(diskSectors) sectors is too small for a GPT: expected at least 4096 (2 MiB)"
        case let .gptTooManyPartitions(count):
            return "\(count) partitions: a GPT of 128 entries holds at most 128"
        case let .gptPartitionOutOfRange(number, first, last, firstUsable, lastUsable):
            return "GPT partition \(number) spans sectors \(first)-\(last): expected a non-empty range within "
                + "the usable sectors \(firstUsable)-\(lastUsable)"
        case let .gptOverlappingPartitions(first, second):
            return "GPT partitions \(first) and \(second) overlap"
        case let .gptNameTooLong(name, units):
            return "GPT partition name \"\(name)\" is \(units) UTF-16 code units: expected at most 36"
        case let .gptPartitionsDoNotFit(diskSize, needed, available):
            return "disk size \(ByteCount.format(diskSize)): the GPT partitions need \(needed) sectors "
                + "but only \(available) lie between the first MiB and the backup table"
        case let .gptBadHeader(source, lba, field, offset, expected, found):
            return "\(source): GPT header at LBA \(lba): \(field) at byte \(offset) is \(found): expected \(expected)"
        case let .gptBadEntry(source, lba, entry, what):
            return "\(source): GPT entry \(entry) of the array at LBA \(lba): \(what)"
        }
    }
}

func hex<T: FixedWidthInteger>(_ value: T) -> String {
    "0x" + String(value, radix: 16, uppercase: true)
}

/// A boot signature as it appears on disk (low byte first), e.g. `55 AA`.
func hexBytes16(_ value: UInt16) -> String {
    let low = UInt8(value & 0xFF), high = UInt8(value >> 8)
    let pad = { (b: UInt8) in b < 16 ? "0" + String(b, radix: 16, uppercase: true) : String(b, radix: 16, uppercase: true) }
    return "\(pad(low)) \(pad(high))"
}
