import CExt2fs

extension Ext2Filesystem {
    /// Whether the journal holds transactions not yet replayed (the filesystem was not cleanly
    /// unmounted): writing around them would be undone, or worse, when the kernel replays them.
    public var needsRecovery: Bool {
        fs.pointee.super.pointee.s_feature_incompat & UInt32(EXT3_FEATURE_INCOMPAT_RECOVER) != 0
    }
}
