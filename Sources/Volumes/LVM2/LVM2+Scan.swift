import ImageCore
import ImageFormats

extension LVM2 {
    /// A PV found on one of the inputs' disks or partitions.
    public struct FoundPhysicalVolume {
        public var disk: any RandomAccessDisk
        public var label: PhysicalVolumeLabel
        /// The newest metadata among its areas, nil when it has none (an orphan PV, or
        /// `--metadatacopies 0`).
        public var group: VolumeGroup?
    }

    /// A volume group assembled from the PVs found, with the disks its LVs can be read from.
    public struct AssembledGroup {
        public var group: VolumeGroup
        /// PV name in the metadata -> the disk that carries its UUID.
        public var disks: [String: any RandomAccessDisk]
        /// PVs whose disk was found but cannot hold their extents (a truncated copy): left unmatched.
        public var problems: [LVMError] = []

        /// PVs of the group that were not found.
        public var missing: [PhysicalVolume] { group.physicalVolumes.filter { disks[$0.name] == nil } }

        public func open(_ volume: LogicalVolume) throws -> LogicalVolumeDisk {
            try LogicalVolumeDisk(group: group, volume: volume, disks: disks)
        }
    }

    /// Reads the label and metadata of one disk: nil when it is no PV.
    public static func examine(_ disk: any RandomAccessDisk) throws -> FoundPhysicalVolume? {
        guard let label = try PhysicalVolumeLabel.read(from: disk) else { return nil }
        var best: VolumeGroup?
        var firstError: Error?
        for area in label.metadataAreas {
            do {
                let header = try MetadataArea.read(area, from: disk)
                guard header.hasMetadata else { continue }
                let text = try header.text(from: disk)
                let group = try VolumeGroup(parsing: try TextParser.parse(text, source: "\(disk.name) metadata at byte \(area.offset)"))
                if best == nil || group.seqno > best!.seqno { best = group }
            } catch {
                firstError = firstError ?? error
            }
        }
        // One good copy is enough; damage in every copy is an error.
        if best == nil, let firstError { throw firstError }
        return FoundPhysicalVolume(disk: disk, label: label, group: best)
    }

    /// Groups the PVs by VG id (the newest metadata of each wins) and matches every PV of the
    /// metadata to a disk by its UUID; a disk too small for the PV's extents is left unmatched
    /// and listed in `problems`, so the LVs elsewhere stay readable.
    public static func assemble(_ found: [FoundPhysicalVolume]) -> [AssembledGroup] {
        var groups: [AssembledGroup] = []
        for pv in found {
            guard let group = pv.group else { continue }
            if let i = groups.firstIndex(where: { $0.group.id == group.id }) {
                if group.seqno > groups[i].group.seqno { groups[i].group = group }
            } else {
                groups.append(AssembledGroup(group: group, disks: [:]))
            }
        }
        for i in groups.indices {
            for pv in groups[i].group.physicalVolumes {
                guard let match = found.first(where: { $0.label.uuid == undashed(pv.id) }) else { continue }
                let needed = pv.peStart * sectorSize + pv.peCount * groups[i].group.extentBytes
                guard needed <= match.disk.size else {
                    groups[i].problems.append(.physicalVolumeTooSmall(physicalVolume: "\(groups[i].group.name)/\(pv.name)",
                                                                      disk: match.disk.name, needed: needed, size: match.disk.size))
                    continue
                }
                groups[i].disks[pv.name] = match.disk
            }
        }
        return groups
    }
}
