import DiskLayout
import Ext2

/// Which filesystems the new disk has and what goes into each.
///
/// By default one: the root, with every filesystem the guest's fstab mounts (a separate /boot,
/// /var, ...) merged into it at its mount point. With `--keep-layout`, one per filesystem, each
/// copied into a partition of its own, in the order `partitionOrder` gives: /boot first (so it is
/// partition 1, where GRUB's prefix `(hd0,msdos1)` looks), then /, then the others by mount point.
/// A swap partition, when there is one, comes last.
struct GuestLayout {
    struct Filesystem {
        var mountPoint: String
        /// Copied into the new filesystem's root.
        var source: Ext2Filesystem
        /// Copied into the new filesystem at their mount points, shallowest first (the merge).
        var merged: [SourceGuest.SourceMount]
        /// Bytes the new filesystem receives beyond the copies: installed kernels, a swap file.
        var extraBytes: UInt64

        var usedBytes: UInt64 { merged.reduce(source.usedBytes + extraBytes) { $0 + $1.filesystem.usedBytes } }
        var sourceSize: UInt64 { merged.reduce(source.sizeInBytes) { $0 + $1.filesystem.sizeInBytes } }
        var mergedUsedInodes: UInt64 { merged.reduce(0) { $0 + UInt64($1.filesystem.usedInodes) } }
        var need: DiskPlan.FilesystemNeed {
            DiskPlan.FilesystemNeed(mountPoint: mountPoint, usedBytes: usedBytes, sourceFilesystemSize: sourceSize)
        }
    }

    /// In partition order; the root is among them.
    let filesystems: [Filesystem]
    /// The size of the swap partition to make, if any.
    let swapBytes: UInt64?

    /// `swapPartition` is `--swap-partition`; without it, `--keep-layout` recreates the guest's
    /// first swap device at its size unless `noSwap`. `kernelBytes` (kernels being installed) is
    /// counted in the root and in a separate /boot, which share it; `rootAddedBytes` (a swap file,
    /// the files the customize options add) in the root.
    init(source: SourceGuest, keepLayout: Bool, swapPartition: UInt64?, noSwap: Bool,
         kernelBytes: UInt64, rootAddedBytes: UInt64) {
        if keepLayout {
            let root = Filesystem(mountPoint: "/", source: source.filesystem, merged: [],
                                  extraBytes: kernelBytes + rootAddedBytes)
            let others = source.mounts.map {
                Filesystem(mountPoint: $0.mountPoint, source: $0.filesystem, merged: [],
                           extraBytes: $0.mountPoint == "/boot" ? kernelBytes : 0)
            }
            let order = Self.partitionOrder(["/"] + others.map(\.mountPoint))
            filesystems = ([root] + others).sorted { order.firstIndex(of: $0.mountPoint)! < order.firstIndex(of: $1.mountPoint)! }
            swapBytes = swapPartition ?? (noSwap ? nil : source.swapDevices.first?.sizeBytes)
        } else {
            filesystems = [Filesystem(mountPoint: "/", source: source.filesystem, merged: source.mounts,
                                      extraBytes: kernelBytes + rootAddedBytes)]
            swapBytes = swapPartition
        }
    }

    /// /boot first, then /, then the rest sorted by path (so /var comes before /var/log).
    static func partitionOrder(_ mountPoints: [String]) -> [String] {
        func rank(_ path: String) -> Int { path == "/boot" ? 0 : path == "/" ? 1 : 2 }
        return mountPoints.sorted { (rank($0), $0) < (rank($1), $1) }
    }

    var root: Filesystem { filesystems.first { $0.mountPoint == "/" }! }
    var separateBoot: Bool { filesystems.contains { $0.mountPoint == "/boot" } }
    /// The mount points merged into the root (their fstab lines are commented out).
    var mergedMountPoints: Set<String> { Set(filesystems.flatMap { $0.merged.map(\.mountPoint) }) }

    func plan(requestedSize: UInt64?) throws -> DiskPlan {
        try DiskPlan.make(requestedSize: requestedSize, filesystems: filesystems.map(\.need), swapBytes: swapBytes)
    }
}
