import ImageCore

/// Reading a GPT back and checking it the way `sgdisk -v` does for the parts Rehost writes: both
/// headers (signature, revision, size, header CRC, where each says it is and where its twin is,
/// the usable range, the entry geometry, the entry-array CRC), the two copies agreeing, and the
/// entries (inside the usable range, no overlap).
///
/// Input disks are not read with this: libblkid (`Blkid.BlkidProbe`) already lists a guest's GPT
/// or MBR partitions for `ImageFormats.FilesystemLocator`. This is the oracle for what Rehost
/// writes, and a way to read its own output in `inspect`-like checks.
extension GPT {
    /// Reads and checks the primary and the backup table of a disk file. `source` names the disk
    /// in error messages.
    public static func read(from file: RawFile, source: String? = nil) throws -> GPT {
        let source = source ?? file.path
        let sectorSize = UInt64(GPT.sectorSize)
        let diskSectors = try file.size / sectorSize
        guard diskSectors >= 2 * firstUsableLBA + 1 else { throw DiskLayoutError.gptDiskTooSmall(diskSectors: diskSectors) }
        let mbr = try file.read(count: GPT.sectorSize, at: 0)
        guard mbr.loadLE(UInt16.self, at: MBR.bootSignatureOffset) == 0xAA55,
              mbr[MBR.partitionTableOffset + 4] == protectiveMBRType else {
            throw DiskLayoutError.gptBadHeader(source: source, lba: 0, field: "protective MBR partition type",
                                               offset: MBR.partitionTableOffset + 4, expected: "0xEE with 55 AA",
                                               found: hex(mbr[MBR.partitionTableOffset + 4]))
        }
        let primary = try readHeader(file, lba: 1, diskSectors: diskSectors, source: source)
        guard primary.alternateLBA == diskSectors - 1 else {
            throw DiskLayoutError.gptBadHeader(source: source, lba: 1, field: "alternate LBA", offset: 32,
                                               expected: "\(diskSectors - 1) (the last sector)", found: "\(primary.alternateLBA)")
        }
        let backup = try readHeader(file, lba: diskSectors - 1, diskSectors: diskSectors, source: source)
        for (field, offset, a, b) in [("alternate LBA", 32, backup.alternateLBA, 1),
                                      ("first usable LBA", 40, backup.firstUsable, primary.firstUsable),
                                      ("last usable LBA", 48, backup.lastUsable, primary.lastUsable)] where a != b {
            throw DiskLayoutError.gptBadHeader(source: source, lba: diskSectors - 1, field: field, offset: offset,
                                               expected: "\(b) (as the primary says)", found: "\(a)")
        }
        guard backup.diskGUID == primary.diskGUID, backup.entries == primary.entries else {
            throw DiskLayoutError.gptBadHeader(source: source, lba: diskSectors - 1, field: "disk GUID or entries",
                                               offset: 56, expected: "the primary's", found: "a different table")
        }
        var partitions: [GPTPartition] = []
        for index in 0..<entryCount {
            let entry = Array(primary.entries[index * entrySize..<(index + 1) * entrySize])
            let type = decodeGUID(entry[0..<16])
            guard type.contains(where: { $0 != 0 }) else { continue }
            guard partitions.count == index else {
                throw DiskLayoutError.gptBadEntry(source: source, lba: primary.entryLBA, entry: index + 1,
                                                  what: "follows an unused entry; Rehost reads packed tables only")
            }
            var units: [UInt16] = []
            for unit in 0..<nameUnits {
                let value = entry.loadLE(UInt16.self, at: 56 + 2 * unit)
                if value == 0 { break }
                units.append(value)
            }
            partitions.append(GPTPartition(type: type, firstLBA: entry.loadLE(UInt64.self, at: 32),
                                           lastLBA: entry.loadLE(UInt64.self, at: 40),
                                           name: String(decoding: units, as: UTF16.self),
                                           attributes: entry.loadLE(UInt64.self, at: 48),
                                           uniqueGUID: decodeGUID(entry[16..<32])))
        }
        let gpt = try GPT(diskSectors: diskSectors, diskGUID: primary.diskGUID, partitions: partitions,
                          bootCode: Array(mbr[0..<MBR.bootCodeSize]))
        guard primary.firstUsable == firstUsableLBA, primary.lastUsable == gpt.lastUsableLBA else {
            throw DiskLayoutError.gptBadHeader(source: source, lba: 1, field: "usable range", offset: 40,
                                               expected: "\(firstUsableLBA)-\(gpt.lastUsableLBA)",
                                               found: "\(primary.firstUsable)-\(primary.lastUsable)")
        }
        return gpt
    }

    struct HeaderFields {
        var alternateLBA: UInt64
        var firstUsable: UInt64
        var lastUsable: UInt64
        var diskGUID: [UInt8]
        var entryLBA: UInt64
        var entries: [UInt8]
    }

    static func readHeader(_ file: RawFile, lba: UInt64, diskSectors: UInt64, source: String) throws -> HeaderFields {
        let sector = try file.read(count: GPT.sectorSize, at: lba * UInt64(GPT.sectorSize))
        func bad(_ field: String, _ offset: Int, _ expected: String, _ found: String) -> DiskLayoutError {
            .gptBadHeader(source: source, lba: lba, field: field, offset: offset, expected: expected, found: found)
        }
        guard Array(sector[0..<8]) == signature else {
            throw bad("signature", 0, "\"EFI PART\"", sector[0..<8].map { hex($0) }.joined(separator: " "))
        }
        let revision = sector.loadLE(UInt32.self, at: 8)
        guard revision == GPT.revision else { throw bad("revision", 8, "0x10000", hex(revision)) }
        let size = sector.loadLE(UInt32.self, at: 12)
        guard size == UInt32(headerSize) else { throw bad("header size", 12, "\(headerSize)", "\(size)") }
        var zeroed = Array(sector[0..<headerSize])
        zeroed.storeLE(UInt32(0), at: 16)
        let storedCRC = sector.loadLE(UInt32.self, at: 16), computedCRC = CRC32.checksum(zeroed)
        guard storedCRC == computedCRC else { throw bad("header CRC32", 16, hex(computedCRC), hex(storedCRC)) }
        let myLBA = sector.loadLE(UInt64.self, at: 24)
        guard myLBA == lba else { throw bad("my LBA", 24, "\(lba)", "\(myLBA)") }
        let count = sector.loadLE(UInt32.self, at: 80), entrySize = sector.loadLE(UInt32.self, at: 84)
        guard count == UInt32(GPT.entryCount), entrySize == UInt32(GPT.entrySize) else {
            throw bad("entry count and size", 80, "\(GPT.entryCount) × \(GPT.entrySize)", "\(count) × \(entrySize)")
        }
        let entryLBA = sector.loadLE(UInt64.self, at: 72)
        let expectedEntryLBA = lba == 1 ? 2 : diskSectors - 1 - entryArraySectors
        guard entryLBA == expectedEntryLBA else { throw bad("entry array LBA", 72, "\(expectedEntryLBA)", "\(entryLBA)") }
        let entries = try file.read(count: GPT.entryCount * GPT.entrySize, at: entryLBA * UInt64(GPT.sectorSize))
        let storedEntriesCRC = sector.loadLE(UInt32.self, at: 88), computedEntriesCRC = CRC32.checksum(entries)
        guard storedEntriesCRC == computedEntriesCRC else {
            throw bad("entry array CRC32", 88, hex(computedEntriesCRC), hex(storedEntriesCRC))
        }
        return HeaderFields(alternateLBA: sector.loadLE(UInt64.self, at: 32), firstUsable: sector.loadLE(UInt64.self, at: 40),
                            lastUsable: sector.loadLE(UInt64.self, at: 48), diskGUID: decodeGUID(sector[56..<72]),
                            entryLBA: entryLBA, entries: entries)
    }
}
