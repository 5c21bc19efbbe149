import Ext2
import ImageCore

/// How the new filesystem should differ from the source's, from the command line.
public struct FormatOptions: Sendable {
    public var flavor: Ext2FormatParameters.Flavor = .ext3
    /// 128 by default: GRUB legacy and old kernels read nothing larger.
    public var inodeSize: Int = 128
    public var newUUID = false
    public var label: String? = nil

    public init(flavor: Ext2FormatParameters.Flavor = .ext3, inodeSize: Int = 128, newUUID: Bool = false, label: String? = nil) {
        self.flavor = flavor
        self.inodeSize = inodeSize
        self.newUUID = newUUID
        self.label = label
    }
}

public enum FormatPlanner {
    /// Parameters for a filesystem of `capacity` bytes that will hold a copy of `source`: the same
    /// block size, label, UUID (unless a new one is asked for), bytes-per-inode ratio and reserve.
    /// `mergedUsedInodes` counts the inodes of other filesystems copied into it (a separate /boot
    /// or /var merged into the root), which must fit too.
    public static func parameters(for source: Ext2Filesystem, capacity: UInt64, options: FormatOptions,
                                  mergedUsedInodes: UInt64 = 0) -> Ext2FormatParameters {
        let blockSize = source.blockSize
        let blocks = capacity / UInt64(blockSize)
        let bytesPerInode = max(UInt64(4096), source.sizeInBytes / UInt64(max(source.inodesCount, 1)))
        // Keep the source's density of inodes, and always room for every used inode plus a margin.
        let used = UInt64(source.usedInodes) + mergedUsedInodes
        let wanted = max(capacity / bytesPerInode, used + used / 4 + 1024)
        let inodes = UInt32(min(wanted, UInt64(UInt32.max - 1), blocks))
        let reserved = source.blocksCount > 0 ? blocks * source.reservedBlocksCount / source.blocksCount : blocks / 20
        var uuid = source.uuid
        if options.newUUID { uuid = UUIDBytes.random(for: "new filesystem uuid \(source.uuid)") }
        var parameters = Ext2FormatParameters(
            flavor: options.flavor, blockSize: blockSize, blocksCount: blocks, inodesCount: inodes,
            inodeSize: options.inodeSize, label: options.label ?? source.label, uuid: uuid, reservedBlocksCount: reserved)
        if source.defaultMountOptions != 0 { parameters.defaultMountOptions = source.defaultMountOptions }
        return parameters
    }
}
