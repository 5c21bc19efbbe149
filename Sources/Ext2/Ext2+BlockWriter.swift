import CExt2fs
import ImageCore

extension Ext2Filesystem {
    /// Writes a new regular file's data in whole blocks: each run of blocks gets a contiguous
    /// free range (one allocation, one large write) instead of libext2fs's block-at-a-time file
    /// writes. Logical blocks never written stay holes. Call `finish` to set the size.
    public final class BlockWriter {
        let owner: Ext2Filesystem
        let ino: InodeNumber
        private var inode: Ext2Inode
        private var goal: blk64_t
        private var dataBlocks: UInt64 = 0

        public init(_ filesystem: Ext2Filesystem, _ ino: InodeNumber) throws {
            owner = filesystem
            self.ino = ino
            inode = try filesystem.readInode(ino)
            goal = inode.withMutableSmallInode { ext2fs_find_inode_goal(filesystem.fs, ino, $0, 0) }
        }

        /// Writes `data` (a whole number of blocks) at logical block `logical`.
        public func write(_ data: UnsafeRawBufferPointer, atBlock logical: UInt64) throws {
            precondition(data.count % owner.blockSize == 0, "BlockWriter writes whole blocks")
            try place(UInt64(data.count / owner.blockSize), atBlock: logical) { start, done, count in
                try owner.writeBlocks(start, count: count, from: data.baseAddress! + done * owner.blockSize)
            }
        }

        /// Allocates `count` blocks at logical block `logical` and maps them into the file without
        /// writing them: they keep what the disk holds there (zeros, in a new filesystem on a
        /// sparse output). Only the indirect blocks the mapping needs are written. For files that
        /// must have no holes but whose contents do not matter, such as a swap file.
        public func allocate(_ count: UInt64, atBlock logical: UInt64) throws {
            try place(count, atBlock: logical) { _, _, _ in }
        }

        /// Finds free runs for `total` blocks, maps each into the file at `logical` onwards, and
        /// hands each run (its first physical block, the blocks placed before it, its length) to `fill`.
        private func place(_ total: UInt64, atBlock logical: UInt64, fill: (blk64_t, Int, Int) throws -> Void) throws {
            let fs = owner.fs
            var done = 0
            while UInt64(done) < total {
                let remaining = blk64_t(total - UInt64(done))
                var start: blk64_t = 0, length: blk64_t = 0
                try owner.check(ext2fs_new_range(fs, 0, goal, remaining, nil, &start, &length),
                                "allocating \(remaining) blocks for inode \(ino)")
                let count = Int(min(length, remaining))
                ext2fs_block_alloc_stats_range(fs, start, UInt32(count), 1)
                for i in 0..<count {
                    var physical = start + blk64_t(i)
                    let block = logical + UInt64(done + i)
                    // BMAP_ALLOC here only ever allocates the indirect blocks the mapping needs.
                    try inode.withMutableSmallInode { small in
                        try owner.check(ext2fs_bmap2(fs, ino, small, nil, BMAP_SET | BMAP_ALLOC, block, nil, &physical),
                                        "mapping block \(block) of inode \(ino)")
                    }
                }
                try fill(start, done, count)
                dataBlocks += UInt64(count)
                done += count
                goal = start + blk64_t(count)
            }
        }

        /// Sets the size and the block count, and writes the inode.
        public func finish(size: UInt64) throws {
            inode = try owner.readInode(ino)
            try inode.withMutableSmallInode { small in
                try owner.check(ext2fs_iblk_add_blocks(owner.fs, small, dataBlocks), "counting the blocks of inode \(ino)")
            }
            inode.size = size
            try owner.writeInode(ino, inode)
        }
    }
}
