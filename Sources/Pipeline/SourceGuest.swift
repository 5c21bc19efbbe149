import Blkid
import Ext2
import GuestFixups
import ImageCore
import ImageFormats
import Volumes

public enum SourceError: RehostError {
    case noRootFilesystem(path: String, found: String, unreadable: [String])

    public var description: String {
        switch self {
        case let .noRootFilesystem(path, found, unreadable):
            return "\(path): no partition or LVM2 logical volume holds an ext2/ext3/ext4 filesystem (found: \(found))"
                + (unreadable.isEmpty ? "" : "; cannot be read: " + unreadable.joined(separator: "; "))
        }
    }
}

/// The input opened for reading: where its filesystems are, the root filesystem and those its
/// fstab mounts (read-only), and what is inside the guest.
final class SourceGuest {
    let input: InputImage
    /// The root filesystem: the one holding /etc/fstab.
    let filesystem: Ext2Filesystem
    /// Where `filesystem` lies as a run of a plain file (the input itself, its gzip expansion, or
    /// the file under a partition or LV); nil when it is read through an image's tables.
    let rootLocation: (path: String, offset: UInt64)?
    /// The bytes of `filesystem`: a slice of the input's disk, or a logical volume.
    let rootDisk: any RandomAccessDisk
    /// The other ext filesystems the root's fstab mounts, found among the input's partitions and
    /// logical volumes, shallowest mount point first: merged into the new root by `convert`.
    let mounts: [SourceMount]
    let volumes: GuestVolumes?
    /// fstab devices (as written) that are on the input but not in the new root: a swap partition,
    /// an XFS /data, a filesystem Rehost cannot read. The new disk has none of them.
    let droppedDevices: Set<String>
    /// The swap devices of the fstab found on the input (as written, and their size), in fstab
    /// order: `--keep-layout` recreates the first as a swap partition.
    let swapDevices: [(device: String, sizeBytes: UInt64)]
    /// Further disks of the guest (holding more of its LVM2 PVs), opened like the input.
    let moreDisks: [InputImage]
    let report: InputReport

    struct SourceMount {
        var mountPoint: String
        var volume: GuestVolume
        var filesystem: Ext2Filesystem
    }

    init(path: String, moreDisks: [String] = [], partition: Int?, scratchDirectory: String?,
         externalFiles: ExternalFiles = .contained, maxOutputSize: UInt64? = nil,
         progress: ProgressSink = SilentProgress()) throws {
        input = try InputImage.open(path: path, scratchDirectory: scratchDirectory, partition: partition,
                                    externalFiles: externalFiles, maxOutputSize: maxOutputSize, progress: progress)
        self.moreDisks = try moreDisks.map {
            try InputImage.open(path: $0, scratchDirectory: scratchDirectory, externalFiles: externalFiles,
                                maxOutputSize: maxOutputSize, progress: progress)
        }
        // On a disk whose only Linux partitions are LVM2 PVs, the locator's choice is a PV.
        var located = input.probe.isExt ? try Self.open(input) : nil
        var location = input.filesystemPath.map { [offset = input.filesystemOffset] in (path: $0, offset: offset) }
        var locatedDisk: any RandomAccessDisk = input.filesystem
        var notes: [String] = []
        var rootName = input.rootPartition.map { "partition \($0.number)" }
        var rootPartition = input.rootPartition.map { (number: $0.number, reason: $0.reason) }
        var rootOffset = input.filesystemOffset
        var volumes: GuestVolumes?
        // A bare ext filesystem alone has nothing to assemble; a partitioned disk, a whole-disk PV
        // or several disks are scanned.
        if Self.partitions(of: input.kind) != nil || !input.probe.isExt || !moreDisks.isEmpty {
            volumes = try GuestVolumes.scan(([input] + self.moreDisks).map {
                GuestVolumes.Disk(disk: $0.disk, partitions: Self.partitions(of: $0.kind) ?? [], displayName: $0.path)
            })
            for (name, reason) in volumes!.unreadable { notes.append("\(name) cannot be read: \(reason)") }
            // The partition the locator chose may be a separate /boot: the root is the ext
            // filesystem that holds /etc/fstab (a partition or a logical volume).
            if partition == nil, try located?.lookup("/etc/fstab") == nil {
                // Volumes in one run of a plain file first: unix_io opens them at once.
                let candidates = volumes!.volumes.filter(\.isExt).sorted { ($0.location != nil ? 0 : 1) < ($1.location != nil ? 0 : 1) }
                for volume in candidates {
                    guard located == nil || !Self.isLocatorChoice(volume, input), let candidate = try Self.open(volume) else { continue }
                    guard try candidate.lookup("/etc/fstab") != nil else { continue }
                    let reason = located == nil ? "the ext filesystem holding /etc/fstab"
                        : "the ext filesystem holding /etc/fstab (\(rootName ?? "the first choice") has none)"
                    if case let .partition(0, number) = volume.kind {
                        rootPartition = (number, reason)
                    } else {
                        rootPartition = nil
                        notes.append("the root filesystem is \(volume.name), \(reason)")
                    }
                    located = candidate
                    location = volume.location
                    locatedDisk = volume.disk
                    rootName = volume.name
                    rootOffset = volume.location?.offset ?? 0
                    break
                }
                // No fstab anywhere: the first ext filesystem, as the locator would have chosen.
                if located == nil, let volume = volumes!.volumes.first(where: { $0.isExt }),
                   let opened = try Self.open(volume) {
                    located = opened
                    location = volume.location
                    locatedDisk = volume.disk
                    notes.append("the root filesystem is \(volume.name), the first ext filesystem (none holds /etc/fstab)")
                    rootName = volume.name
                    rootOffset = volume.location?.offset ?? 0
                    if case let .partition(0, number) = volume.kind { rootPartition = (number, "the first ext filesystem") } else { rootPartition = nil }
                }
            }
        }
        guard let located else {
            let seen = (volumes?.volumes ?? []).map { "\($0.name) \($0.probe?.type ?? "nothing recognised")" }
            throw SourceError.noRootFilesystem(path: path, found: seen.isEmpty ? "none" : seen.joined(separator: ", "),
                                               unreadable: (volumes?.unreadable ?? []).map { "\($0.name): \($0.reason)" })
        }
        try located.checkRootDirectory()
        filesystem = located
        rootLocation = location
        rootDisk = locatedDisk
        self.volumes = volumes

        var mounts: [SourceMount] = []
        var mountReports: [MountReport] = []
        var dropped: Set<String> = []
        var swaps: [(device: String, sizeBytes: UInt64)] = []
        if let volumes, let ino = try filesystem.lookup("/etc/fstab"), try filesystem.readInode(ino).kind == .regular {
            let fstab = String(decoding: try filesystem.readWholeFile(ino), as: UTF8.self)
            let entries = FstabEntry.parse(fstab).sorted { $0.mountPoint.count < $1.mountPoint.count }
            for entry in entries where entry.mountPoint != "/" {
                guard entry.mountPoint.hasPrefix("/"), entry.mayBeExt else {
                    // Swap and other filesystems on the input's volumes do not come along.
                    if let volume = volumes.volume(named: entry.device), volume.name != rootName {
                        dropped.insert(entry.device)
                        if entry.type == "swap" { swaps.append((entry.device, volume.disk.size)) }
                    }
                    continue
                }
                guard !mounts.contains(where: { $0.mountPoint == entry.mountPoint }) else {
                    notes.append("fstab line \(entry.line): \(entry.mountPoint) is mounted by an earlier line already; this one is ignored")
                    continue
                }
                guard let volume = volumes.volume(named: entry.device) else {
                    if let lv = volumes.unreadableVolume(named: entry.device) {
                        notes.append("fstab line \(entry.line): \(entry.mountPoint) is on \(lv.name), which cannot be read; its files are not copied")
                        continue
                    }
                    notes.append("fstab line \(entry.line): \(entry.device) on \(entry.mountPoint) is none of the input's partitions or logical volumes; its files are not copied")
                    continue
                }
                guard volume.isExt, let fs = try Self.open(volume) else {
                    dropped.insert(entry.device)
                    notes.append("fstab line \(entry.line): \(entry.mountPoint) is on \(volume.name), which holds \(volume.probe?.type ?? "nothing Rehost can read"); its files are not copied")
                    continue
                }
                guard volume.name != rootName else { continue }
                mounts.append(SourceMount(mountPoint: entry.mountPoint, volume: volume, filesystem: fs))
                mountReports.append(MountReport(mountPoint: entry.mountPoint, device: entry.device, volume: volume.name,
                                                type: fs.typeName, label: fs.label, uuid: UUIDBytes.format(fs.uuid),
                                                sizeBytes: fs.sizeInBytes, usedBytes: fs.usedBytes))
            }
        }
        self.mounts = mounts
        droppedDevices = dropped
        swapDevices = swaps

        report = InputReport(
            path: path, kind: Self.describe(input.kind), files: ([input] + self.moreDisks).flatMap(\.inputFiles),
            partition: rootPartition?.number,
            partitionReason: rootPartition?.reason, filesystemOffset: rootOffset,
            filesystem: FilesystemReport(
                type: filesystem.typeName, label: filesystem.label, uuid: UUIDBytes.format(filesystem.uuid),
                sizeBytes: filesystem.sizeInBytes, usedBytes: filesystem.usedBytes, blockSize: filesystem.blockSize,
                inodeSize: filesystem.inodeSize, inodesUsed: filesystem.usedInodes, inodesTotal: filesystem.inodesCount,
                features: filesystem.featureNames),
            moreDisks: moreDisks,
            rootVolume: rootName,
            volumeGroups: (volumes?.groups ?? []).map(VolumeGroupReport.init),
            mounts: mountReports, notes: notes)
    }

    /// The input's root filesystem as the locator found it: unix_io on the file at an offset
    /// where there is a plain file, else through the io_manager over the image's reader.
    static func open(_ input: InputImage) throws -> Ext2Filesystem {
        if let file = input.filesystemPath { return try Ext2Filesystem(path: file, offset: input.filesystemOffset) }
        return try Ext2Filesystem(source: DiskBlockSource(input.filesystem), name: input.filesystem.name)
    }

    /// The one place a partition or LV becomes a filesystem: a volume that is one run of a plain
    /// file opens there with unix_io; any other (an LV in several pieces, striped, or on a qcow2,
    /// VMDK, VDI or VHD read in place) through the io_manager over its `RandomAccessDisk`.
    static func open(_ volume: GuestVolume) throws -> Ext2Filesystem? {
        guard volume.isExt else { return nil }
        if let at = volume.location { return try Ext2Filesystem(path: at.path, offset: at.offset) }
        return try Ext2Filesystem(source: DiskBlockSource(volume.disk), name: volume.name)
    }

    /// Whether `volume` is the filesystem the locator chose (already open as `located`).
    private static func isLocatorChoice(_ volume: GuestVolume, _ input: InputImage) -> Bool {
        switch volume.kind {
        case .wholeDisk: return input.filesystemOffset == 0
        case .partition(disk: 0, _): return (volume.disk as? DiskSlice)?.offset == input.filesystemOffset
        default: return false
        }
    }

    /// The used bytes and size of every filesystem the new root receives.
    var usedBytes: UInt64 { mounts.reduce(filesystem.usedBytes) { $0 + $1.filesystem.usedBytes } }
    var sizeBytes: UInt64 { mounts.reduce(filesystem.sizeInBytes) { $0 + $1.filesystem.sizeInBytes } }
    var volumeGroupNames: Set<String> { Set((volumes?.groups ?? []).map(\.group.name)) }

    /// The guest seen through an overlay, with its mounted filesystems at their mount points:
    /// repairs planned on it never reach the input.
    func overlay() -> OverlayGuestFilesystem {
        let root = Ext2GuestFilesystem(filesystem)
        guard !mounts.isEmpty else { return OverlayGuestFilesystem(base: root) }
        return OverlayGuestFilesystem(base: MountedGuestFilesystem(
            root: root, mounts: mounts.map { ($0.mountPoint, Ext2GuestFilesystem($0.filesystem) as any GuestFilesystem) }))
    }

    static func partitions(of kind: InputKind) -> [PartitionProbe]? {
        switch kind {
        case .bareFilesystem: return nil
        case let .partitionedDisk(_, partitions): return partitions
        case let .gzip(inner): return partitions(of: inner)
        case let .compressed(_, inner): return partitions(of: inner)
        case let .diskImage(_, _, inner): return partitions(of: inner)
        }
    }

    static func describe(_ kind: InputKind) -> String {
        switch kind {
        case .bareFilesystem: return "bare filesystem image"
        case let .partitionedDisk(table, _): return "partitioned disk (\(table))"
        case let .gzip(inner): return "gzip-compressed \(describe(inner))"
        case let .compressed(format, inner): return "\(format.rawValue)-compressed \(describe(inner))"
        case let .diskImage(_, variant, inner): return "\(describe(inner)) inside \(variant)"
        }
    }
}
