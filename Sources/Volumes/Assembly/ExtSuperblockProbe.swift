import Blkid
import ImageCore
import ImageFormats

/// What an ext2/3/4 superblock says about itself, read through a `RandomAccessDisk`: for volumes
/// libblkid cannot probe because they are not one run of a file (an LV in several segments).
enum ExtSuperblockProbe {
    static func probe(_ disk: any RandomAccessDisk) throws -> FilesystemProbe? {
        guard disk.size >= 2048 else { return nil }
        let sb = try disk.read(count: 1024, at: 1024)
        guard sb.loadLE(UInt16.self, at: 56) == 0xef53 else { return nil }
        let compat = sb.loadLE(UInt32.self, at: 92)
        let incompat = sb.loadLE(UInt32.self, at: 96)
        // As libblkid names them: extents, 64bit or flex_bg make ext4; a journal ext3.
        let type = incompat & (0x40 | 0x80 | 0x200) != 0 ? "ext4" : compat & 0x4 != 0 ? "ext3" : "ext2"
        let label = String(decoding: sb[120..<136].prefix { $0 != 0 }, as: UTF8.self)
        return FilesystemProbe(type: type, label: label.isEmpty ? nil : label, uuid: UUIDBytes.format(Array(sb[104..<120])),
                               version: nil, usage: "filesystem")
    }
}
