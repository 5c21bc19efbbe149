import ImageCore

/// The few ext2/3/4 superblock fields needed to know how many bytes a filesystem spans, read at
/// explicit little-endian offsets (the superblock is 1024 bytes at byte 1024 of the filesystem).
///
///     0x00 s_inodes_count      0x04 s_blocks_count_lo   0x14 s_first_data_block
///     0x18 s_log_block_size    0x20 s_blocks_per_group  0x28 s_inodes_per_group
///     0x38 s_magic (0xEF53)    0x4C s_rev_level         0x58 s_inode_size
///     0x60 s_feature_incompat  0x150 s_blocks_count_hi (only with INCOMPAT_64BIT)
struct ExtSuperblockGeometry {
    static let superblockOffset: UInt64 = 1024
    static let superblockSize = 1024
    static let magic: UInt16 = 0xEF53
    static let incompat64Bit: UInt32 = 0x80

    let blockSize: UInt64
    let blockCount: UInt64
    var byteCount: UInt64 { blockSize * blockCount }

    static func hasMagic(_ sb: [UInt8]) -> Bool {
        sb.count >= superblockSize && sb.loadLE(UInt16.self, at: 0x38) == magic
    }

    /// Checks the geometry is self-consistent; `reason` strings name the field and what was expected.
    init(superblock sb: [UInt8]) throws(GeometryProblem) {
        let logBlockSize = sb.loadLE(UInt32.self, at: 0x18)
        guard logBlockSize <= 6 else {
            throw GeometryProblem("s_log_block_size is \(logBlockSize), expected 0...6 (1 KiB to 64 KiB blocks)")
        }
        let blockSize = UInt64(1024) << logBlockSize
        var blockCount = UInt64(sb.loadLE(UInt32.self, at: 0x04))
        if sb.loadLE(UInt32.self, at: 0x60) & Self.incompat64Bit != 0 {
            blockCount |= UInt64(sb.loadLE(UInt32.self, at: 0x150)) << 32
        }
        guard blockCount > 0 else { throw GeometryProblem("s_blocks_count is 0") }
        guard blockCount.multipliedReportingOverflow(by: blockSize).overflow == false,
              blockCount * blockSize <= 1 << 60 else {
            throw GeometryProblem("s_blocks_count \(blockCount) of \(blockSize) bytes is beyond any real disk")
        }
        let firstDataBlock = UInt64(sb.loadLE(UInt32.self, at: 0x14))
        let expectedFirst: UInt64 = blockSize == 1024 ? 1 : 0
        guard firstDataBlock == expectedFirst else {
            throw GeometryProblem("s_first_data_block is \(firstDataBlock), expected \(expectedFirst) for \(blockSize)-byte blocks")
        }
        let blocksPerGroup = UInt64(sb.loadLE(UInt32.self, at: 0x20))
        guard blocksPerGroup > 0, blocksPerGroup <= 8 * blockSize else {
            throw GeometryProblem("s_blocks_per_group is \(blocksPerGroup), expected 1...\(8 * blockSize)")
        }
        let inodesPerGroup = UInt64(sb.loadLE(UInt32.self, at: 0x28))
        guard inodesPerGroup > 0, inodesPerGroup <= 8 * blockSize else {
            throw GeometryProblem("s_inodes_per_group is \(inodesPerGroup), expected 1...\(8 * blockSize)")
        }
        let groups = (blockCount - firstDataBlock + blocksPerGroup - 1) / blocksPerGroup
        let inodeCount = UInt64(sb.loadLE(UInt32.self, at: 0x00))
        guard inodeCount > 0, inodeCount <= groups * inodesPerGroup else {
            throw GeometryProblem("s_inodes_count is \(inodeCount), expected 1...\(groups * inodesPerGroup) for \(groups) groups")
        }
        if sb.loadLE(UInt32.self, at: 0x4C) >= 1 {
            let inodeSize = UInt64(sb.loadLE(UInt16.self, at: 0x58))
            guard inodeSize >= 128, inodeSize <= blockSize, inodeSize & (inodeSize - 1) == 0 else {
                throw GeometryProblem("s_inode_size is \(inodeSize), expected a power of two from 128 to \(blockSize)")
            }
        }
        self.blockSize = blockSize
        self.blockCount = blockCount
    }

    struct GeometryProblem: Error {
        let reason: String
        init(_ reason: String) { self.reason = reason }
    }
}
