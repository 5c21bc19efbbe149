/// blkid caches remember the Xen device names and would be trusted over the new disk's.
enum BlkidCacheRepair {
    static func run(_ context: inout RepairContext) throws {
        for path in GuestPaths.blkidCaches {
            try context.removeIfPresent(path)
        }
    }
}
