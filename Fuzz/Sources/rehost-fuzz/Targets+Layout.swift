import DiskLayout
import ImageFormats
import Volumes

/// Partition tables Rehost decodes itself (GPT and the partitions of a disk are probed by
/// libblkid in the `input` target).
extension FuzzTargets {
    static let layoutTargets: [FuzzTarget] = [
        FuzzTarget(name: "mbr", summary: "MBR.decode: the first 512 bytes, then 8 bytes of disk size in sectors",
                   maxLength: 520) { data in
            var sector = Array(data.prefix(MBR.sectorSize))
            if sector.count < MBR.sectorSize { sector += [UInt8](repeating: 0, count: MBR.sectorSize - sector.count) }
            var diskSectors: UInt64? = nil
            if data.count >= MBR.sectorSize + 8 {
                diskSectors = data[MBR.sectorSize..<MBR.sectorSize + 8].reversed().reduce(0) { $0 << 8 | UInt64($1) }
            }
            let mbr = try MBR.decode(sector, diskSectors: diskSectors)
            // What was decoded must encode again.
            _ = mbr.encode()
        },
    ]
}

/// LVM2, read by the `Volumes` module: the text metadata parser and the VG it describes, and a
/// whole PV (label, metadata area, circular buffer, text) whose LVs are then read at their ends.
extension FuzzTargets {
    static let volumeTargets: [FuzzTarget] = [
        FuzzTarget(name: "lvm-metadata", summary: "LVM2 text metadata parsed, then interpreted as a volume group",
                   maxLength: 65536) { data in
            let root = try LVM2.TextParser.parse(String(decoding: data, as: UTF8.self), source: "fuzz")
            _ = try LVM2.VolumeGroup(parsing: root)
        },
        FuzzTarget(name: "lvm-pv", summary: "a PV's first bytes as a whole disk: label, metadata area, text; every LV read at both ends",
                   maxLength: 1 << 20) { data in
            let disk = MemoryDisk(Array(data))
            guard let pv = try LVM2.examine(disk) else { return }
            for group in LVM2.assemble([pv]) {
                for volume in group.group.logicalVolumes {
                    let lv = try group.open(volume)
                    guard lv.size > 0 else { continue }
                    var sector = [UInt8](repeating: 0, count: Int(min(512, lv.size)))
                    try sector.withUnsafeMutableBytes { try lv.read(into: $0, at: 0) }
                    try sector.withUnsafeMutableBytes { try lv.read(into: $0, at: lv.size - UInt64($0.count)) }
                }
            }
        },
    ]
}

/// Bytes in memory as a disk, for readers that take a `RandomAccessDisk`.
final class MemoryDisk: RandomAccessDisk {
    let bytes: [UInt8]
    var size: UInt64 { UInt64(bytes.count) }
    var name: String { "fuzz input" }

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws {
        try checkRange(offset: offset, count: buffer.count)
        bytes.withUnsafeBytes { all in
            buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: all[Int(offset)..<Int(offset) + buffer.count]))
        }
    }
}
