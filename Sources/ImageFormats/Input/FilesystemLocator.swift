import Blkid
import ImageCore

/// Finds the root filesystem in an input's bytes: the whole file, or one partition of an MBR or
/// GPT disk, and checks its superblock against the bytes actually present.
struct FilesystemLocator {
    /// The path named in messages (the original input, even when reading a decompressed copy).
    let displayPath: String
    /// The disk's bytes, and how libblkid sees them.
    let disk: any RandomAccessDisk
    let prober: any DiskProber
    let partition: Int?
    var size: UInt64 { disk.size }

    static let minimumSize = ExtSuperblockGeometry.superblockOffset + UInt64(ExtSuperblockGeometry.superblockSize)
    static let linuxMBRType = 0x83
    static let linuxGPTType = "0fc63daf-8483-4772-8e79-3d69d8477de4"

    func locate() throws -> LocatedFilesystem {
        guard size >= Self.minimumSize else {
            throw InputError.tooSmall(path: displayPath, size: size, needed: Self.minimumSize)
        }
        if let table = try prober.probePartitions() {
            return try locateInPartition(table)
        }
        if let partition { throw InputError.partitionWithoutTable(path: displayPath, number: partition) }
        let probe = try prober.probeFilesystem(offset: 0, size: nil)
        if let probe, probe.type == "LVM2_member" {
            // A whole-disk LVM2 PV: its logical volumes are found above this layer (Volumes).
            return LocatedFilesystem(kind: .bareFilesystem, offset: 0, size: size, probe: probe, choice: nil)
        }
        let (fsProbe, fsSize) = try checkFilesystem(probe: probe, offset: 0, available: size,
                                                    location: nil, container: "the file")
        return LocatedFilesystem(kind: .bareFilesystem, offset: 0, size: fsSize, probe: fsProbe, choice: nil)
    }

    private func locateInPartition(_ table: PartitionTableProbe) throws -> LocatedFilesystem {
        let kind = InputKind.partitionedDisk(table: table.type, partitions: table.partitions)
        let usable = table.partitions.filter { !$0.isExtended && $0.sizeBytes > 0 }
        // Partitions that share bytes would be one filesystem seen twice, or a trap for whatever
        // writes one of them: refused, as fdisk and parted refuse to make them.
        let ordered = usable.sorted { $0.startBytes < $1.startBytes }
        for (previous, next) in zip(ordered, ordered.dropFirst()) where previous.endBytes > next.startBytes {
            throw InputError.overlappingPartitions(path: displayPath, first: previous.number, second: next.number, at: next.startBytes)
        }
        if let number = partition {
            guard let chosen = usable.first(where: { $0.number == number }) else {
                throw InputError.noSuchPartition(path: displayPath, number: number, available: usable.map(\.number))
            }
            try checkInsideFile(chosen)
            let probe = try prober.probeFilesystem(offset: chosen.startBytes, size: chosen.sizeBytes)
            let (fsProbe, fsSize) = try checkFilesystem(probe: probe, offset: chosen.startBytes, available: chosen.sizeBytes,
                                                        location: "partition \(number)", container: "partition \(number)")
            return LocatedFilesystem(kind: kind, offset: chosen.startBytes, size: fsSize, probe: fsProbe,
                                     choice: RootPartitionChoice(number: number, reason: "partition \(number) as requested"))
        }

        var candidates: [(PartitionProbe, FilesystemProbe)] = []
        var physicalVolumes: [(PartitionProbe, FilesystemProbe)] = []
        var seen: [String] = []
        for entry in usable {
            let linux = isLinux(entry, table: table.type)
            if linux { try checkInsideFile(entry) }
            var found = "beyond the end of the file"
            if entry.endBytes <= size {
                let probe = try prober.probeFilesystem(offset: entry.startBytes, size: entry.sizeBytes)
                if linux, let probe, probe.isExt { candidates.append((entry, probe)) }
                if let probe, probe.type == "LVM2_member" { physicalVolumes.append((entry, probe)) }
                found = probe?.type ?? "nothing recognised"
            }
            seen.append("\(entry.number) \(typeName(entry)) \(found)")
        }
        if candidates.isEmpty, let (pv, probe) = physicalVolumes.first {
            // No ext partition, but LVM2: the root is in a logical volume, which the caller
            // (Volumes, above this layer) finds. The PV stands for the root until then.
            return LocatedFilesystem(kind: kind, offset: pv.startBytes, size: pv.sizeBytes, probe: probe,
                                     choice: RootPartitionChoice(number: pv.number, reason: "an LVM2 physical volume: no partition holds ext2/3/4 itself"))
        }
        guard !candidates.isEmpty else {
            throw InputError.noLinuxPartition(path: displayPath, table: table.type,
                                              found: seen.isEmpty ? "none" : seen.joined(separator: ", "))
        }
        let (chosen, reason) = pick(candidates.map(\.0))
        let probe = candidates.first { $0.0.number == chosen.number }?.1
        let (fsProbe, fsSize) = try checkFilesystem(probe: probe, offset: chosen.startBytes, available: chosen.sizeBytes,
                                                    location: "partition \(chosen.number)",
                                                    container: "partition \(chosen.number)")
        return LocatedFilesystem(kind: kind, offset: chosen.startBytes, size: fsSize, probe: fsProbe,
                                 choice: RootPartitionChoice(number: chosen.number, reason: reason))
    }

    /// One candidate wins outright; of several, the bootable one, else the largest (first on ties).
    private func pick(_ candidates: [PartitionProbe]) -> (PartitionProbe, String) {
        if candidates.count == 1 {
            return (candidates[0], "the only Linux partition holding an ext2/3/4 filesystem")
        }
        let bootable = candidates.filter { $0.bootable == true }
        let pool = bootable.isEmpty ? candidates : bootable
        var largest = pool[0]
        for entry in pool.dropFirst() where entry.sizeBytes > largest.sizeBytes { largest = entry }
        if bootable.count == 1 {
            return (largest, "the bootable one of \(candidates.count) Linux partitions holding ext2/3/4")
        }
        let among = bootable.isEmpty ? "\(candidates.count) Linux partitions" : "\(bootable.count) bootable Linux partitions"
        return (largest, "the largest of \(among) holding ext2/3/4")
    }

    private func isLinux(_ entry: PartitionProbe, table: String) -> Bool {
        table == "gpt" ? entry.typeGUID == Self.linuxGPTType : entry.typeCode == Self.linuxMBRType
    }

    private func typeName(_ entry: PartitionProbe) -> String {
        if let guid = entry.typeGUID { return "type \(guid)" }
        let hex = String(entry.typeCode, radix: 16)
        return "type 0x\(hex.count < 2 ? "0" + hex : hex)"
    }

    private func checkInsideFile(_ entry: PartitionProbe) throws {
        guard entry.endBytes <= size else {
            throw InputError.truncatedDisk(path: displayPath, partition: entry.number,
                                           partitionEnd: entry.endBytes, fileSize: size)
        }
    }

    /// Refuses anything but a sane ext2/3/4 superblock with all its blocks present.
    private func checkFilesystem(probe: FilesystemProbe?, offset: UInt64, available: UInt64,
                                 location: String?, container: String) throws -> (FilesystemProbe, UInt64) {
        if let probe, !probe.isExt {
            throw InputError.notExt(path: displayPath, found: probe.type, location: location)
        }
        let superblockAt = offset + ExtSuperblockGeometry.superblockOffset
        guard available >= Self.minimumSize else {
            if probe == nil { throw InputError.noFilesystem(path: displayPath, location: location) }
            throw InputError.tooSmall(path: displayPath, size: available, needed: Self.minimumSize)
        }
        let superblock = try disk.read(count: ExtSuperblockGeometry.superblockSize, at: superblockAt)
        guard ExtSuperblockGeometry.hasMagic(superblock) else {
            throw InputError.noFilesystem(path: displayPath, location: location)
        }
        let geometry: ExtSuperblockGeometry
        do {
            geometry = try ExtSuperblockGeometry(superblock: superblock)
        } catch {
            throw InputError.corruptSuperblock(path: displayPath, offset: superblockAt, reason: error.reason)
        }
        guard let probe else {
            throw InputError.corruptSuperblock(path: displayPath, offset: superblockAt,
                                               reason: "the magic is there but libblkid does not accept it as ext2/3/4")
        }
        guard geometry.byteCount <= available else {
            throw InputError.truncatedFilesystem(path: displayPath, type: probe.type, needed: geometry.byteCount,
                                                 available: available, container: container)
        }
        return (probe, geometry.byteCount)
    }
}
