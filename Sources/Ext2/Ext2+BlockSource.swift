import CExt2fs
import ImageCore
#if canImport(Glibc)
import Glibc
#endif

/// Bytes a filesystem can be read from when it is not a plain file: a partition of a qcow2,
/// VMDK, VDI or VHD image, read through its format's tables. Ext2 knows nothing of formats; the
/// pipeline adapts its disks to this.
public protocol Ext2BlockSource: AnyObject {
    /// Bytes the source holds; the filesystem lies in `0 ..< size`.
    var size: UInt64 { get }
    /// Fills `buffer` with the bytes at `offset ..< offset + buffer.count` (within `size`).
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws
}

/// A block source libext2fs may also write: staged writes over an image read in place, applied
/// to the image only once the filesystem is closed without error.
public protocol Ext2WritableBlockSource: Ext2BlockSource {
    /// Replaces the bytes at `offset ..< offset + bytes.count` (within `size`).
    func write(_ bytes: UnsafeRawBufferPointer, at offset: UInt64) throws
}

/// A libext2fs io_manager over an `Ext2BlockSource`, the counterpart of unix_io for
/// sources that are no file (the vtable contract is e2fsprogs' lib/ext2fs/ext2_io.h):
///
/// ```
/// ext2fs_open2("rehost-source:<address>", ...) -> open: the address is a SourceChannel,
///                                                 retained by the channel's private_data
/// read_blk64(block, count)                     -> bytes block x block_size, count blocks, or
///                                                 -count bytes when count < 0
/// write_blk64(block, count)                    -> the source's write, for an
///                                                 Ext2WritableBlockSource; refused otherwise
/// set_option                                   -> refused
/// close                                        -> drops a reference (libext2fs shares one
///                                                 channel between fs->io and fs->image_io)
/// ```
///
/// Small reads (superblock, group descriptors, inode tables, directories, 4 KiB file blocks)
/// go through a cache of `chunkCount` aligned chunks of `chunkSize` bytes, so a format is asked
/// for 64 KiB at a time; reads of a chunk or more (the copy's block runs) go straight to the
/// source. Memory: at most 4 MiB per open filesystem. A writable source is read without the
/// cache (it keeps its own), so nothing cached goes stale.
final class SourceChannel {
    let source: any Ext2BlockSource
    let name: String
    private let chunks = BoundedCache<UInt64, [UInt8]>(capacity: SourceChannel.chunkCount)
    /// The source's last error, kept for the message of the libext2fs call that failed on it.
    fileprivate(set) var lastError: (any Error)?

    static let chunkSize = 64 << 10
    static let chunkCount = 64
    static let namePrefix = "rehost-source:"

    init(source: any Ext2BlockSource, name: String) {
        self.source = source
        self.name = name
    }

    /// The text to hand `ext2fs_open2` as the device name: this channel's address.
    var deviceName: String { Self.namePrefix + String(UInt(bitPattern: Unmanaged.passUnretained(self).toOpaque()), radix: 16) }

    func takeError() -> (any Error)? {
        defer { lastError = nil }
        return lastError
    }

    /// Reads `buffer.count` bytes at `offset`; bytes past the end of the source read as zeros and
    /// make the read short, as unix_io reports a read past the end of its file.
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) -> errcode_t {
        let size = source.size
        let available = offset >= size ? 0 : Int(min(UInt64(buffer.count), size - offset))
        UnsafeMutableRawBufferPointer(rebasing: buffer[available...]).initializeMemory(as: UInt8.self, repeating: 0)
        do {
            if available >= Self.chunkSize || source is any Ext2WritableBlockSource {
                try source.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<available]), at: offset)
            } else {
                try readCached(into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<available]), at: offset)
            }
        } catch {
            lastError = error
            return errcode_t(EXT2_ET_SHORT_READ)
        }
        return available == buffer.count ? 0 : errcode_t(EXT2_ET_SHORT_READ)
    }

    private func readCached(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws {
        let chunkSize = UInt64(Self.chunkSize)
        var done = 0
        while done < buffer.count {
            let position = offset + UInt64(done)
            let start = position / chunkSize * chunkSize
            let chunk = try chunks.value(for: start) {
                var bytes = [UInt8](repeating: 0, count: Int(min(chunkSize, source.size - start)))
                try bytes.withUnsafeMutableBytes { try source.read(into: $0, at: start) }
                return bytes
            }
            let within = Int(position - start)
            let count = min(buffer.count - done, chunk.count - within)
            chunk.withUnsafeBytes { bytes in
                UnsafeMutableRawBufferPointer(rebasing: buffer[done..<(done + count)])
                    .copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[within..<(within + count)]))
            }
            done += count
        }
    }

    /// The io_manager, built once. Its function pointers are plain C functions; it is never
    /// written after it is built, which is what makes the unchecked global safe.
    nonisolated(unsafe) static let manager: io_manager = {
        let manager = UnsafeMutablePointer<struct_io_manager>.allocate(capacity: 1)
        manager.initialize(to: struct_io_manager())
        manager.pointee.magic = errcode_t(EXT2_ET_MAGIC_IO_MANAGER)
        manager.pointee.name = UnsafePointer(strdup("Rehost block source I/O manager"))
        manager.pointee.open = { name, flags, channelOut in
            guard let name, let channelOut else { return errcode_t(EXT2_ET_BAD_DEVICE_NAME) }
            let text = String(cString: name)
            guard text.hasPrefix(SourceChannel.namePrefix),
                  let address = UInt(text.dropFirst(SourceChannel.namePrefix.count), radix: 16),
                  let pointer = UnsafeMutableRawPointer(bitPattern: address) else {
                return errcode_t(EXT2_ET_BAD_DEVICE_NAME)
            }
            let writable = Unmanaged<SourceChannel>.fromOpaque(pointer).takeUnretainedValue().source is any Ext2WritableBlockSource
            guard flags & Int32(IO_FLAG_RW) == 0 || writable else { return errcode_t(EXT2_ET_RO_FILSYS) }
            let channel = UnsafeMutablePointer<struct_io_channel>.allocate(capacity: 1)
            channel.initialize(to: struct_io_channel())
            channel.pointee.magic = errcode_t(EXT2_ET_MAGIC_IO_CHANNEL)
            channel.pointee.manager = SourceChannel.manager
            channel.pointee.name = strdup(name)
            channel.pointee.block_size = 1024
            channel.pointee.refcount = 1
            // The channel keeps its SourceChannel alive until the last close.
            channel.pointee.private_data = Unmanaged<SourceChannel>.fromOpaque(pointer).retain().toOpaque()
            channelOut.pointee = channel
            return 0
        }
        manager.pointee.close = { channel in
            guard let channel else { return errcode_t(EXT2_ET_MAGIC_IO_CHANNEL) }
            channel.pointee.refcount -= 1
            guard channel.pointee.refcount <= 0 else { return 0 }
            if let data = channel.pointee.private_data { Unmanaged<SourceChannel>.fromOpaque(data).release() }
            free(channel.pointee.name)
            channel.deinitialize(count: 1)
            channel.deallocate()
            return 0
        }
        manager.pointee.set_blksize = { channel, size in
            guard let channel, size > 0 else { return errcode_t(EXT2_ET_INVALID_ARGUMENT) }
            channel.pointee.block_size = size
            return 0
        }
        manager.pointee.read_blk = { channel, block, count, data in
            SourceChannel.read(channel, block: UInt64(block), count: count, data: data)
        }
        manager.pointee.read_blk64 = { channel, block, count, data in
            SourceChannel.read(channel, block: UInt64(block), count: count, data: data)
        }
        manager.pointee.write_blk = { channel, block, count, data in
            SourceChannel.write(channel, block: UInt64(block), count: count, data: data)
        }
        manager.pointee.write_blk64 = { channel, block, count, data in
            SourceChannel.write(channel, block: UInt64(block), count: count, data: data)
        }
        manager.pointee.flush = { _ in 0 }
        manager.pointee.set_option = { _, _, _ in errcode_t(EXT2_ET_INVALID_ARGUMENT) }
        return manager
    }()

    private static func write(_ channel: io_channel?, block: UInt64, count: Int32, data: UnsafeRawPointer?) -> errcode_t {
        guard let channel, let data, let state = channel.pointee.private_data else { return errcode_t(EXT2_ET_MAGIC_IO_CHANNEL) }
        let source = Unmanaged<SourceChannel>.fromOpaque(state).takeUnretainedValue()
        guard let writable = source.source as? any Ext2WritableBlockSource else { return errcode_t(EXT2_ET_RO_FILSYS) }
        let blockSize = UInt64(channel.pointee.block_size)
        let bytes = count < 0 ? UInt64(-Int64(count)) : UInt64(count) * blockSize
        let (offset, overflow) = block.multipliedReportingOverflow(by: blockSize)
        guard !overflow, bytes <= UInt64(Int32.max), offset <= writable.size, bytes <= writable.size - offset else {
            return errcode_t(EXT2_ET_SHORT_WRITE)
        }
        do {
            try writable.write(UnsafeRawBufferPointer(start: data, count: Int(bytes)), at: offset)
        } catch {
            source.lastError = error
            return errcode_t(EXT2_ET_SHORT_WRITE)
        }
        return 0
    }

    private static func read(_ channel: io_channel?, block: UInt64, count: Int32, data: UnsafeMutableRawPointer?) -> errcode_t {
        guard let channel, let data, let state = channel.pointee.private_data else { return errcode_t(EXT2_ET_MAGIC_IO_CHANNEL) }
        let blockSize = UInt64(channel.pointee.block_size)
        let bytes = count < 0 ? UInt64(-Int64(count)) : UInt64(count) * blockSize
        let (offset, overflow) = block.multipliedReportingOverflow(by: blockSize)
        guard !overflow, bytes <= UInt64(Int32.max) else { return errcode_t(EXT2_ET_INVALID_ARGUMENT) }
        let source = Unmanaged<SourceChannel>.fromOpaque(state).takeUnretainedValue()
        return source.read(into: UnsafeMutableRawBufferPointer(start: data, count: Int(bytes)), at: offset)
    }
}
