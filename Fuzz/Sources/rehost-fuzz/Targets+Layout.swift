import DiskLayout

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

/// LVM2 text metadata: the slot for the `Volumes` module's parser (being written on another
/// branch). When it lands, add a target here that feeds the bytes to the metadata parser and a
/// seed recipe (`vgcfgbackup` output, pvcreate/vgcreate on a loop-free image file) in
/// Fuzz/make-seeds.sh.
extension FuzzTargets {
    static let volumeTargets: [FuzzTarget] = []
}
