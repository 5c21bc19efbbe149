import Ext2
import ImageCore

#if canImport(Glibc)
import Glibc
#endif

/// The guest side of `copy-in`: the host entries written through one writable libext2fs handle,
/// after every check has passed.
extension GuestCopyIn {
    static func write(_ items: [HostItem], into fs: Ext2Filesystem, inner: String, guestDirectory: String, image: String,
                      owner: (uid: UInt32, gid: UInt32), report: CopyInReport) throws -> CopyInReport {
        guard let directory = try fs.lookup(inner, followLast: false) else {
            throw FileAccessError.notFound(image: image, path: guestDirectory)
        }
        var writer = Writer(fs: fs, owner: owner, report: report)
        for item in items { try writer.write(item, into: directory) }
        try writer.touchDirectory(directory)
        return writer.report
    }

    /// Makes each entry under its parent, data first, then owner, mode and times (so nothing the
    /// copy does afterwards changes them).
    struct Writer {
        let fs: Ext2Filesystem
        let owner: (uid: UInt32, gid: UInt32)
        var report: CopyInReport
        let now = Int(Reproducibility.now())

        mutating func write(_ item: HostItem, into directory: InodeNumber) throws {
            switch item.kind {
            case let .file(size, data):
                var template = Ext2Inode()
                template.mode = 0o100000 | item.permissions
                template.linksCount = 1
                template.times = Ext2Inode.Times(all: UInt32(truncatingIfNeeded: now))
                let ino = try fs.makeNode(parent: directory, name: item.name, inode: template)
                try copyData(item.hostPath, size: size, data: data, to: ino)
                try stamp(ino, item, type: 0o100000)
                report.files += 1
                report.bytes += size
            case let .directory(children):
                let ino = try fs.makeDirectory(parent: directory, name: item.name)
                for child in children { try write(child, into: ino) }
                try stamp(ino, item, type: 0o040000)
                report.directories += 1
            case let .symlink(target):
                let ino = try fs.makeSymlink(parent: directory, name: item.name, target: target)
                var symlinkItem = item
                symlinkItem.permissions = 0o777
                try stamp(ino, symlinkItem, type: 0o120000)
                report.symlinks += 1
            }
        }

        /// Copies the data ranges only, so the host file's holes stay holes in the guest.
        func copyData(_ path: String, size: UInt64, data: [Range<UInt64>], to ino: InodeNumber) throws {
            let file = try RawFile(path: path, mode: .readOnlyNoFollow)
            let writer = try Ext2Filesystem.FileWriter(fs, ino)
            let chunk = 1 << 20
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 4096)
            defer { buffer.deallocate() }
            for range in data where range.lowerBound < size {
                var offset = range.lowerBound
                let end = min(range.upperBound, size)
                while offset < end {
                    let count = Int(min(UInt64(chunk), end - offset))
                    let piece = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<count])
                    let got = try file.read(into: piece, at: offset)
                    guard got == count else { throw FileError.shortRead(path: path, offset: offset, wanted: count, got: got) }
                    try writer.write(UnsafeRawBufferPointer(piece), at: offset)
                    offset += UInt64(count)
                }
            }
            try writer.truncate(to: size)
            try writer.close()
        }

        /// Owner, mode and the host's access and modification times (to the nanosecond where the
        /// inode has room); the change time is now, as the kernel would set it.
        func stamp(_ ino: InodeNumber, _ item: HostItem, type: UInt16) throws {
            var inode = try fs.readInode(ino)
            inode.mode = type | item.permissions
            inode.uid = owner.uid
            inode.gid = owner.gid
            var times = inode.times
            times.access = UInt32(truncatingIfNeeded: item.access.tv_sec)
            times.modification = UInt32(truncatingIfNeeded: item.modification.tv_sec)
            times.change = UInt32(truncatingIfNeeded: now)
            if times.hasExtra {
                times.accessExtra = Self.extra(item.access)
                times.modificationExtra = Self.extra(item.modification)
                times.changeExtra = 0
            }
            inode.times = times
            try fs.writeInode(ino, inode)
        }

        /// The extra time word: nanoseconds above, the epoch bits past 2038 below.
        static func extra(_ time: timespec) -> UInt32 {
            (UInt32(time.tv_nsec) << 2) | UInt32((Int64(time.tv_sec) >> 32) & 3)
        }

        /// The destination directory changed now, as after a kernel's link.
        func touchDirectory(_ ino: InodeNumber) throws {
            var inode = try fs.readInode(ino)
            var times = inode.times
            times.modification = UInt32(truncatingIfNeeded: now)
            times.change = times.modification
            if times.hasExtra { times.modificationExtra = 0; times.changeExtra = 0 }
            inode.times = times
            try fs.writeInode(ino, inode)
        }
    }
}
