import Blkid
import ImageCore

/// How the locator asks libblkid about a disk: straight from a file, or through a window.
protocol DiskProber {
    func probePartitions() throws -> PartitionTableProbe?
    func probeFilesystem(offset: UInt64, size: UInt64?) throws -> FilesystemProbe?
}

/// A raw disk or bare filesystem file, probed by libblkid as it is.
struct PathProber: DiskProber {
    let path: String

    func probePartitions() throws -> PartitionTableProbe? { try BlkidProbe.probePartitions(path: path) }
    func probeFilesystem(offset: UInt64, size: UInt64?) throws -> FilesystemProbe? {
        try BlkidProbe.probeFilesystem(path: path, offset: offset, size: size)
    }
}

/// A disk read through its format (qcow2, VMDK, VDI, VHD), shown to libblkid as a sparse
/// in-memory file of the disk's full size that holds only the bytes probing looks at; no scratch
/// file is written anywhere:
///
/// ```
/// partitions:  the first and last MiB (MBR, GPT header and entries, and their backups), the
///              EBR of every logical partition (the chain walked here), and the first 64 KiB of
///              every other partition (nested BSD, Solaris, UnixWare or Minix labels); probed
///              again until no partition brings new bytes
/// filesystem:  the first and last MiB of its range (every superblock libblkid knows lies there:
///              ext at 1 KiB, btrfs at 64 KiB, RAID and ZFS labels near the end)
/// ```
///
/// Bytes are copied in 64 KiB chunks, once each; chunks of zeros stay holes. Memory: two MiB,
/// 64 KiB per partition, two MiB per filesystem probed, at most `maximumBytes`.
final class ProbeWindow: DiskProber {
    let disk: any RandomAccessDisk
    let name: String
    private let memory: MemoryFile
    private var copied: Set<UInt64> = []

    static let chunkSize: UInt64 = 64 << 10
    static let edgeBytes: UInt64 = 1 << 20
    static let partitionHeadBytes: UInt64 = 64 << 10
    /// At most this much of the disk is copied in (a hundred filesystems probed).
    static let maximumBytes: UInt64 = 256 << 20
    /// Logical partitions followed along one EBR chain (Linux reads at most 256 partitions).
    static let maximumLogicalPartitions = 256

    init(disk: any RandomAccessDisk, name: String) throws {
        self.disk = disk
        self.name = name
        memory = try MemoryFile(name: name, size: disk.size)
        try include(offset: 0, count: Self.edgeBytes)
        try include(offset: disk.size - min(disk.size, Self.edgeBytes), count: Self.edgeBytes)
    }

    /// Copies the chunks covering `offset ..< offset + count` (clipped to the disk) in; says
    /// whether any was new.
    @discardableResult
    func include(offset: UInt64, count: UInt64) throws -> Bool {
        guard offset < disk.size, count > 0 else { return false }
        let end = offset + min(count, disk.size - offset)
        var chunk = offset / Self.chunkSize * Self.chunkSize
        var added = false
        var buffer = [UInt8](repeating: 0, count: Int(Self.chunkSize))
        while chunk < end {
            defer { chunk += Self.chunkSize }
            guard !copied.contains(chunk) else { continue }
            guard UInt64(copied.count) * Self.chunkSize < Self.maximumBytes else { break }
            copied.insert(chunk)
            added = true
            let length = Int(min(Self.chunkSize, disk.size - chunk))
            try buffer.withUnsafeMutableBytes { bytes in
                let target = UnsafeMutableRawBufferPointer(rebasing: bytes[0..<length])
                try disk.read(into: target, at: chunk)
                if target.contains(where: { $0 != 0 }) { try memory.write(UnsafeRawBufferPointer(target), at: chunk) }
            }
        }
        return added
    }

    func probePartitions() throws -> PartitionTableProbe? {
        var table = try BlkidProbe.probePartitions(descriptor: memory.fd, name: name)
        // Each round can find partitions whose bytes the next needs (the next EBR of a chain).
        for _ in 0..<Self.maximumLogicalPartitions {
            guard let found = table else { return nil }
            var added = false
            for entry in found.partitions where entry.sizeBytes > 0 {
                if entry.isExtended {
                    for ebr in try extendedBootRecords(from: entry.startBytes) {
                        added = try include(offset: ebr, count: 512) || added
                    }
                } else {
                    added = try include(offset: entry.startBytes, count: min(entry.sizeBytes, Self.partitionHeadBytes)) || added
                }
            }
            guard added else { return found }
            table = try BlkidProbe.probePartitions(descriptor: memory.fd, name: name)
        }
        return table
    }

    func probeFilesystem(offset: UInt64, size: UInt64?) throws -> FilesystemProbe? {
        let length = size ?? (disk.size - min(offset, disk.size))
        try include(offset: offset, count: min(length, Self.edgeBytes))
        if length > Self.edgeBytes { try include(offset: offset + length - Self.edgeBytes, count: Self.edgeBytes) }
        return try BlkidProbe.probeFilesystem(descriptor: memory.fd, name: name, offset: offset, size: size)
    }

    /// The byte offsets of the EBRs chained from an extended partition at `start`: each EBR's
    /// second entry, if it is an extended type, gives the next one relative to `start`. Stops at
    /// a missing signature, a loop, the end of the disk or `maximumLogicalPartitions`.
    private func extendedBootRecords(from start: UInt64) throws -> [UInt64] {
        var found: [UInt64] = []
        var next = start
        while found.count < Self.maximumLogicalPartitions, !found.contains(next), next <= disk.size - min(disk.size, 512) {
            found.append(next)
            let sector = try disk.read(count: 512, at: next)
            guard sector[510] == 0x55, sector[511] == 0xAA else { break }
            let link = 446 + 16
            let type = sector[link + 4]
            guard [0x05, 0x0F, 0x85].contains(type) else { break }
            let relative = UInt64(sector.loadLE(UInt32.self, at: link + 8))
            guard relative > 0 else { break }
            next = start + relative * 512
        }
        return found
    }
}
