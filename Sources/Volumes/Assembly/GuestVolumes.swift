import Blkid
import ImageCore
import ImageFormats

/// A block device of the guest as its fstab may name it: a partition of the input disk or an
/// LVM2 logical volume, with what libblkid finds on it.
public struct GuestVolume {
    public enum Kind: Equatable, Sendable {
        case wholeDisk
        /// A partition of the input disk (`disk` 0) or of a further disk given for its PVs.
        case partition(disk: Int, number: Int)
        case logicalVolume(group: String, volume: String)
    }

    public var kind: Kind
    public var disk: any RandomAccessDisk
    /// What is on it (nil when nothing is recognised, or when it cannot be probed yet: an LV that
    /// is not one contiguous run of a file).
    public var probe: FilesystemProbe?
    /// Where its bytes lie in a plain file, for readers that need a path and an offset
    /// (libext2fs's unix_io); nil for an LV in several pieces.
    public var location: (path: String, offset: UInt64)?

    /// "partition 2", "VolGroup00/LogVol00".
    public var name: String {
        switch kind {
        case .wholeDisk: return "the whole disk"
        case let .partition(0, number): return "partition \(number)"
        case let .partition(disk, number): return "disk \(disk + 1) partition \(number)"
        case let .logicalVolume(group, volume): return "\(group)/\(volume)"
        }
    }

    public var isExt: Bool { probe?.isExt == true }
}

/// Every partition and logical volume of an input disk.
public struct GuestVolumes {
    public var volumes: [GuestVolume]
    public var groups: [LVM2.AssembledGroup]
    /// LVs that exist in the metadata but cannot be read, and why.
    public var unreadable: [(name: String, reason: String)]
    /// How many disks were scanned: the input and the further disks given for their PVs.
    public var diskCount = 1

    /// One disk to scan: the virtual disk of an input (a raw file, or a qcow2, VMDK, VDI or VHD
    /// read in place) and its partitions (none for a disk without a partition table, scanned whole).
    public struct Disk {
        public var disk: any RandomAccessDisk
        public var partitions: [PartitionProbe]
        /// What messages call it: the input's path.
        public var displayName: String
        public init(disk: any RandomAccessDisk, partitions: [PartitionProbe], displayName: String? = nil) {
            self.disk = disk
            self.partitions = partitions
            self.displayName = displayName ?? disk.name
        }
    }

    /// Scans the raw disk at `path` and its `partitions` for LVM2 PVs, assembles their volume
    /// groups and probes every partition and LV.
    public static func scan(path: String, partitions: [PartitionProbe]) throws -> GuestVolumes {
        try scan([Disk(disk: try FileDisk(path: path), partitions: partitions)])
    }

    /// Scans several disks of one guest: the first is the input, the others hold more PVs of its
    /// volume groups (and may hold filesystems the fstab mounts: /dev/sdb1 is partition 1 of the
    /// second).
    public static func scan(_ disks: [Disk]) throws -> GuestVolumes {
        var volumes: [GuestVolume] = []
        var pvs: [LVM2.FoundPhysicalVolume] = []
        var unreadable: [(String, String)] = []
        for (index, input) in disks.enumerated() {
            let file = input.disk
            let usable = input.partitions.filter { !$0.isExtended && $0.sizeBytes > 0 && $0.endBytes <= file.size }
            let pieces: [(GuestVolume.Kind, any RandomAccessDisk)] = usable.isEmpty
                ? [(.wholeDisk, try DiskSlice(file, offset: 0, size: file.size, name: input.displayName))]
                : try usable.map { (.partition(disk: index, number: $0.number),
                                    try DiskSlice(file, offset: $0.startBytes, size: $0.sizeBytes, name: "\(input.displayName), partition \($0.number)")) }
            for (kind, disk) in pieces {
                // A damaged PV is reported, not fatal: the root may well be elsewhere.
                do {
                    if let pv = try LVM2.examine(disk) {
                        pvs.append(pv)
                        continue
                    }
                } catch let error as LVMError {
                    unreadable.append((disk.name, error.description))
                    continue
                }
                let location = fileLocation(of: disk)
                volumes.append(GuestVolume(kind: kind, disk: disk, probe: try probe(disk, at: location), location: location))
            }
        }
        let groups = LVM2.assemble(pvs)
        for group in groups { unreadable += group.problems.map { (group.group.name, $0.description) } }
        for group in groups {
            for lv in group.group.logicalVolumes where lv.isVisible {
                let name = "\(group.group.name)/\(lv.name)"
                do {
                    let disk = try group.open(lv)
                    let location = fileLocation(of: disk)
                    volumes.append(GuestVolume(kind: .logicalVolume(group: group.group.name, volume: lv.name), disk: disk,
                                               probe: try probe(disk, at: location), location: location))
                } catch let error as RehostError {
                    let text = error.description
                    unreadable.append((name, text.hasPrefix(name + ": ") ? String(text.dropFirst(name.count + 2)) : text))
                }
            }
        }
        return GuestVolumes(volumes: volumes, groups: groups, unreadable: unreadable, diskCount: max(1, disks.count))
    }

    /// libblkid reads a file at an offset; a volume that is not one run of a plain file (an LV in
    /// several pieces, a partition of a qcow2 read in place) has its ext superblock read directly.
    private static func probe(_ disk: any RandomAccessDisk, at location: (path: String, offset: UInt64)?) throws -> FilesystemProbe? {
        if let location { return try BlkidProbe.probeFilesystem(path: location.path, offset: location.offset, size: disk.size) }
        return try ExtSuperblockProbe.probe(disk)
    }
}
