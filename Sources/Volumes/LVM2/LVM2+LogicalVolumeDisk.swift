import ImageCore
import ImageFormats

extension LVM2 {
    /// A linear or striped logical volume read through the PVs it lies on, as device-mapper's
    /// linear and stripe targets map it.
    public final class LogicalVolumeDisk: RandomAccessDisk {
        public let size: UInt64
        public let name: String
        let extentBytes: UInt64
        let pieces: [Piece]

        /// One segment: where it starts in the LV, and its stripes as (PV disk, byte offset).
        struct Piece {
            var start: UInt64
            var length: UInt64
            var stripeBytes: UInt64
            var stripes: [(disk: any RandomAccessDisk, offset: UInt64)]
        }

        /// Throws for a segment type other than linear or striped, or a PV missing from `disks`
        /// (keyed by PV name in the metadata).
        init(group: VolumeGroup, volume: LogicalVolume, disks: [String: any RandomAccessDisk]) throws {
            name = "\(group.name)/\(volume.name)"
            if let type = volume.unsupported { throw LVMError.unsupportedSegment(logicalVolume: name, type: type) }
            extentBytes = group.extentBytes
            var pieces: [Piece] = []
            for segment in volume.segments {
                var stripes: [(disk: any RandomAccessDisk, offset: UInt64)] = []
                for stripe in segment.stripes {
                    guard let pv = group.physicalVolume(named: stripe.physicalVolume) else {
                        throw LVMError.badMetadata(volumeGroup: group.name, reason: "\(name) names an unknown PV \(stripe.physicalVolume)")
                    }
                    guard let disk = disks[pv.name] else {
                        throw LVMError.missingPhysicalVolume(logicalVolume: name, physicalVolume: pv.name, uuid: pv.id)
                    }
                    // VolumeGroup(parsing:) checked that extents fit the PV and that the sums do not overflow.
                    stripes.append((disk, pv.peStart * sectorSize + stripe.startExtent * extentBytes))
                }
                pieces.append(Piece(start: segment.startExtent * extentBytes, length: segment.extentCount * extentBytes,
                                    stripeBytes: segment.stripeSize * sectorSize, stripes: stripes))
            }
            self.pieces = pieces
            size = volume.extentCount * group.extentBytes
        }

        /// Where the LV's byte `offset` lies, and how many bytes after it are contiguous there.
        func locate(_ offset: UInt64) -> (disk: any RandomAccessDisk, offset: UInt64, run: UInt64)? {
            guard let piece = pieces.last(where: { $0.start <= offset }), offset - piece.start < piece.length else { return nil }
            let within = offset - piece.start
            if piece.stripes.count == 1 {
                return (piece.stripes[0].disk, piece.stripes[0].offset + within, piece.length - within)
            }
            let chunk = within / piece.stripeBytes
            let stripe = Int(chunk % UInt64(piece.stripes.count))
            let row = chunk / UInt64(piece.stripes.count)
            let inChunk = within % piece.stripeBytes
            let target = piece.stripes[stripe]
            return (target.disk, target.offset + row * piece.stripeBytes + inChunk, piece.stripeBytes - inChunk)
        }

        public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws {
            try checkRange(offset: offset, count: buffer.count)
            var done = 0
            while done < buffer.count {
                guard let place = locate(offset + UInt64(done)) else {
                    // checkRange and the segments' contiguity (checked when parsed) make this unreachable.
                    throw LVMError.badMetadata(volumeGroup: name, reason: "no segment maps byte \(offset + UInt64(done))")
                }
                let count = Int(min(UInt64(buffer.count - done), place.run))
                try place.disk.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[done ..< done + count]), at: place.offset)
                done += count
            }
        }

        /// When the whole LV is one run of bytes on one PV: that PV and the offset. A reader
        /// that needs a file and an offset (libext2fs's unix_io) can use it; anything else needs
        /// a reader over this disk.
        public var contiguousRun: (disk: any RandomAccessDisk, offset: UInt64)? {
            guard let first = locate(0), first.run >= size else { return nil }
            return (first.disk, first.offset)
        }
    }
}

/// Where a disk's bytes lie in a plain file, when they do: a `FileDisk` or slices of one.
public func fileLocation(of disk: any RandomAccessDisk, offset: UInt64 = 0) -> (path: String, offset: UInt64)? {
    if let file = disk as? FileDisk { return (file.file.path, offset) }
    if let slice = disk as? DiskSlice { return fileLocation(of: slice.base, offset: slice.offset + offset) }
    if let lv = disk as? LVM2.LogicalVolumeDisk, let run = lv.contiguousRun {
        return fileLocation(of: run.disk, offset: run.offset + offset)
    }
    return nil
}
