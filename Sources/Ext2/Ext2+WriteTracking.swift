import CExt2fs
import Synchronization

/// Told of every write a filesystem makes to its file, once the write call has returned: byte
/// ranges of the file, the partition's offset included. A write is `direct` when its bytes are in
/// the file on return; libext2fs's unix I/O manager keeps writes of four blocks or fewer in its
/// cache and writes them to the file later, out of sight, so those are not direct.
public protocol Ext2WriteObserver: AnyObject, Sendable {
    func didWrite(_ range: Range<UInt64>, direct: Bool)
}

extension Ext2Filesystem {
    /// Reports every later write through this handle to `observer`, until the handle closes.
    /// Writes libext2fs still holds in its cache are written out first, so every later change
    /// to the file is reported.
    public func observeWrites(_ observer: any Ext2WriteObserver) throws {
        let channel = fs.pointee.io!
        try check(rehost_io_flush(channel), "writing out the I/O cache")
        WriteTracking.register(channel, offset: offset, observer: observer)
        channel.pointee.manager = WriteTracking.manager
    }
}

/// A libext2fs io_manager that is unix_io with its writing entry points wrapped: each calls
/// unix_io's own and then tells the channel's observer what it wrote. It is installed on a channel
/// unix_io opened, whose private data it leaves to unix_io.
enum WriteTracking {
    private struct Entry {
        let offset: UInt64
        let observer: any Ext2WriteObserver
    }

    /// unix_io writes more than this many blocks straight to the file (its WRITE_DIRECT_SIZE).
    private static let directWriteBlocks: Int32 = 4
    private static let observers = Mutex<[UInt: Entry]>([:])
    nonisolated(unsafe) private static let unix: io_manager = rehost_unix_io_manager()

    static func register(_ channel: io_channel, offset: UInt64, observer: any Ext2WriteObserver) {
        observers.withLock { $0[UInt(bitPattern: channel)] = Entry(offset: offset, observer: observer) }
    }

    private static func report(_ channel: io_channel?, at byte: UInt64, count: UInt64, direct: Bool) {
        guard let channel, count > 0 else { return }
        guard let entry = observers.withLock({ $0[UInt(bitPattern: channel)] }) else { return }
        let start = entry.offset + byte
        entry.observer.didWrite(start..<(start + count), direct: direct)
    }

    /// A count of blocks, or of bytes when negative, as io_channel_write_blk64 takes it.
    private static func bytes(_ channel: io_channel?, _ count: Int32) -> UInt64 {
        count < 0 ? UInt64(-Int64(count)) : UInt64(count) * UInt64(channel?.pointee.block_size ?? 0)
    }

    /// Built once and never written afterwards, which is what makes the unchecked global safe.
    nonisolated(unsafe) static let manager: io_manager = {
        let manager = UnsafeMutablePointer<struct_io_manager>.allocate(capacity: 1)
        manager.initialize(to: unix.pointee)
        manager.pointee.name = UnsafePointer(strdup("Rehost write-tracking unix I/O manager"))
        manager.pointee.close = { channel in
            // unix_io frees the channel on its last close: forget it first, as its address can be reused.
            if let channel, channel.pointee.refcount <= 1 {
                _ = observers.withLock { $0.removeValue(forKey: UInt(bitPattern: channel)) }
            }
            return WriteTracking.unix.pointee.close(channel)
        }
        manager.pointee.write_blk = { channel, block, count, data in
            let result = WriteTracking.unix.pointee.write_blk(channel, block, count, data)
            if result == 0 {
                report(channel, at: UInt64(block) * UInt64(channel?.pointee.block_size ?? 0), count: bytes(channel, count),
                       direct: count < 0 || count > directWriteBlocks)
            }
            return result
        }
        manager.pointee.write_blk64 = { channel, block, count, data in
            let result = WriteTracking.unix.pointee.write_blk64(channel, block, count, data)
            if result == 0 {
                report(channel, at: block * UInt64(channel?.pointee.block_size ?? 0), count: bytes(channel, count),
                       direct: count < 0 || count > directWriteBlocks)
            }
            return result
        }
        manager.pointee.write_byte = { channel, offset, size, data in
            let result = WriteTracking.unix.pointee.write_byte(channel, offset, size, data)
            if result == 0, size > 0 { report(channel, at: UInt64(offset), count: UInt64(size), direct: true) }
            return result
        }
        // Discarded and zeroed ranges change too; whether unix_io punched, zeroed or wrote them,
        // they are reported as not direct, so nothing trusts their bytes before the end.
        manager.pointee.discard = { channel, block, count in
            let result = WriteTracking.unix.pointee.discard(channel, block, count)
            report(channel, at: block * UInt64(channel?.pointee.block_size ?? 0),
                   count: count * UInt64(channel?.pointee.block_size ?? 0), direct: false)
            return result
        }
        manager.pointee.zeroout = { channel, block, count in
            let result = WriteTracking.unix.pointee.zeroout(channel, block, count)
            report(channel, at: block * UInt64(channel?.pointee.block_size ?? 0),
                   count: count * UInt64(channel?.pointee.block_size ?? 0), direct: false)
            return result
        }
        return manager
    }()
}
