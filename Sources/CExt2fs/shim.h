#ifndef REHOST_CEXT2FS_SHIM_H
#define REHOST_CEXT2FS_SHIM_H
#include <ext2fs/ext2_fs.h>
#include <ext2fs/ext2fs.h>
#include <et/com_err.h>

// C mutable globals are errors in Swift 6: hand out the io manager through a function.
static inline io_manager rehost_unix_io_manager(void) { return unix_io_manager; }

// Function-like macros that Swift does not import.
static inline unsigned int rehost_block_size(ext2_filsys fs) { return EXT2_BLOCK_SIZE(fs->super); }
static inline unsigned int rehost_inode_size(ext2_filsys fs) { return EXT2_INODE_SIZE(fs->super); }
static inline unsigned int rehost_first_inode(ext2_filsys fs) { return EXT2_FIRST_INODE(fs->super); }
static inline errcode_t rehost_io_read_blk64(io_channel io, unsigned long long block, int count, void *data) {
    return io_channel_read_blk64(io, block, count, data);
}
static inline errcode_t rehost_io_write_blk64(io_channel io, unsigned long long block, int count, const void *data) {
    return io_channel_write_blk64(io, block, count, data);
}
static inline errcode_t rehost_io_set_options(io_channel io, const char *opts) {
    return io_channel_set_options(io, opts);
}
static inline errcode_t rehost_io_flush(io_channel io) { return io_channel_flush(io); }

// The feature tests and setters are generated inline functions in ext2fs.h; these wrap the
// ones we need so the Swift side reads plainly.
static inline int rehost_has_journal(ext2_filsys fs) { return ext2fs_has_feature_journal(fs->super); }
static inline int rehost_has_extents(ext2_filsys fs) { return ext2fs_has_feature_extents(fs->super); }
static inline int rehost_has_resize_inode(ext2_filsys fs) { return ext2fs_has_feature_resize_inode(fs->super); }

// ext2_inode_large's i_uid_high/i_gid_high live in a union; reach them by name.
static inline unsigned int rehost_inode_uid(const struct ext2_inode *inode) { return inode_uid(*inode); }
static inline unsigned int rehost_inode_gid(const struct ext2_inode *inode) { return inode_gid(*inode); }
static inline void rehost_inode_set_uid(struct ext2_inode *inode, unsigned int uid) { ext2fs_set_i_uid_high(*inode, uid >> 16); inode->i_uid = uid & 0xffff; }
static inline void rehost_inode_set_gid(struct ext2_inode *inode, unsigned int gid) { ext2fs_set_i_gid_high(*inode, gid >> 16); inode->i_gid = gid & 0xffff; }

// com_err tables are registered lazily; error_message() says "Unknown code" until this has run.
static inline void rehost_init_error_tables(void) { initialize_ext2_error_table(); }
#endif
