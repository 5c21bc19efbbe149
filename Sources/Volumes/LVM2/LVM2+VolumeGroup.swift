import ImageCore

extension LVM2 {
    /// A volume group as its text metadata describes it; sizes in 512-byte sectors as lvm2
    /// writes them, checked for overflow when converted to bytes.
    public struct VolumeGroup: Sendable, Equatable {
        public var name: String
        public var id: String
        public var seqno: UInt64
        /// Sectors per extent.
        public var extentSize: UInt64
        public var physicalVolumes: [PhysicalVolume]
        public var logicalVolumes: [LogicalVolume]

        public var extentBytes: UInt64 { extentSize * sectorSize }

        public func physicalVolume(named name: String) -> PhysicalVolume? { physicalVolumes.first { $0.name == name } }
    }

    public struct PhysicalVolume: Sendable, Equatable {
        /// The name inside the metadata ("pv0").
        public var name: String
        /// With dashes, as the metadata writes it.
        public var id: String
        /// The device it was on when the metadata was written ("/dev/sda2"): a hint only.
        public var device: String?
        /// Where the first extent starts, in sectors.
        public var peStart: UInt64
        public var peCount: UInt64
    }

    public struct LogicalVolume: Sendable, Equatable {
        public var name: String
        public var id: String
        public var status: [String]
        public var segments: [Segment]
        /// Why this LV cannot be read (a mirror, RAID, thin or snapshot segment), nil when it can.
        public var unsupported: String?

        public var extentCount: UInt64 { segments.reduce(0) { $0 + $1.extentCount } }
        public var isVisible: Bool { status.contains("VISIBLE") }
    }

    public struct Segment: Sendable, Equatable {
        public var startExtent: UInt64
        public var extentCount: UInt64
        public var type: String
        /// Sectors per stripe chunk; 0 for one stripe (linear).
        public var stripeSize: UInt64
        public var stripes: [Stripe]
    }

    public struct Stripe: Sendable, Equatable {
        /// The PV's name in the metadata ("pv0").
        public var physicalVolume: String
        public var startExtent: UInt64
    }
}

extension LVM2.VolumeGroup {
    /// Bounds on what a metadata text may claim: far beyond any real volume group.
    static let maximumExtentSize: UInt64 = 1 << 32          // sectors: 2 TiB extents
    static let maximumCount: UInt64 = 1 << 40
    static let maximumStripes = 128

    /// Interprets the parsed text of one metadata copy: the one top-level section that is the VG.
    public init(parsing root: LVM2.Section) throws {
        let vgs = root.sections.filter { $0.section["extent_size"] != nil }
        guard let (name, vg) = vgs.first else {
            throw LVMError.badMetadata(volumeGroup: "?", reason: "the metadata holds no volume group section")
        }
        guard vgs.count == 1 else { throw LVMError.badMetadata(volumeGroup: name, reason: "the metadata holds \(vgs.count) volume groups") }
        func bad(_ reason: String) -> LVMError { .badMetadata(volumeGroup: name, reason: reason) }
        func number(_ s: LVM2.Section, _ key: String, in what: String, max: UInt64 = LVM2.VolumeGroup.maximumCount) throws -> UInt64 {
            guard let value = s[key] else { throw bad("\(what) has no \(key)") }
            guard let v = value.integer else { throw bad("\(what): \(key) is not an integer") }
            guard v >= 0, UInt64(v) <= max else { throw bad("\(what): \(key) = \(v) is out of range (0...\(max))") }
            return UInt64(v)
        }
        func text(_ s: LVM2.Section, _ key: String, in what: String) throws -> String {
            guard let v = s[key]?.string else { throw bad("\(what) has no \(key) string") }
            return v
        }

        self.name = name
        id = try text(vg, "id", in: "the volume group")
        seqno = try number(vg, "seqno", in: "the volume group")
        extentSize = try number(vg, "extent_size", in: "the volume group", max: Self.maximumExtentSize)
        guard extentSize > 0 else { throw bad("extent_size is 0") }

        physicalVolumes = []
        for (pvName, pv) in vg["physical_volumes"]?.section?.sections ?? [] {
            let what = "physical volume \(pvName)"
            physicalVolumes.append(LVM2.PhysicalVolume(
                name: pvName, id: try text(pv, "id", in: what), device: pv["device"]?.string,
                peStart: try number(pv, "pe_start", in: what), peCount: try number(pv, "pe_count", in: what)))
            // The end of the data area in bytes must be representable.
            let last = physicalVolumes[physicalVolumes.count - 1]
            let (extents, o1) = last.peCount.multipliedReportingOverflow(by: extentSize * LVM2.sectorSize)
            let (end, o2) = (last.peStart * LVM2.sectorSize).addingReportingOverflow(extents)
            guard !o1, !o2, end < UInt64(Int64.max) else { throw bad("\(what): pe_start + pe_count extents overflows") }
        }
        guard !physicalVolumes.isEmpty else { throw bad("no physical volumes") }

        logicalVolumes = []
        for (lvName, lv) in vg["logical_volumes"]?.section?.sections ?? [] {
            let what = "logical volume \(lvName)"
            var volume = LVM2.LogicalVolume(
                name: lvName, id: try text(lv, "id", in: what),
                status: (lv["status"]?.array ?? []).compactMap(\.string), segments: [], unsupported: nil)
            let declared = try number(lv, "segment_count", in: what, max: 1 << 16)
            let segmentSections = lv.sections.filter { $0.name.hasPrefix("segment") }
            guard declared == UInt64(segmentSections.count) else {
                throw bad("\(what): segment_count is \(declared) but \(segmentSections.count) segments follow")
            }
            var nextExtent: UInt64 = 0
            for (segmentName, segment) in segmentSections {
                let where_ = "\(what) \(segmentName)"
                let type = try text(segment, "type", in: where_)
                let start = try number(segment, "start_extent", in: where_)
                let count = try number(segment, "extent_count", in: where_)
                guard nextExtent <= Self.maximumCount else { throw bad("\(what) has more than \(Self.maximumCount) extents") }
                guard start == nextExtent else { throw bad("\(where_) starts at extent \(start), expected \(nextExtent)") }
                guard count > 0 else { throw bad("\(where_) has no extents") }
                nextExtent = start + count
                guard type == "striped" else {
                    volume.unsupported = volume.unsupported ?? type
                    volume.segments.append(LVM2.Segment(startExtent: start, extentCount: count, type: type, stripeSize: 0, stripes: []))
                    continue
                }
                let stripeCount = try number(segment, "stripe_count", in: where_, max: UInt64(Self.maximumStripes))
                guard stripeCount > 0 else { throw bad("\(where_): stripe_count is 0") }
                guard count % stripeCount == 0 else { throw bad("\(where_): \(count) extents do not divide among \(stripeCount) stripes") }
                var stripeSize: UInt64 = 0
                if stripeCount > 1 {
                    stripeSize = try number(segment, "stripe_size", in: where_, max: extentSize)
                    guard stripeSize > 0, stripeSize & (stripeSize - 1) == 0 else {
                        throw bad("\(where_): stripe_size \(stripeSize) is not a power of two")
                    }
                    // Each stripe's area is whole chunks, as device-mapper's stripe target requires.
                    guard extentSize % stripeSize == 0 else {
                        throw bad("\(where_): stripe_size \(stripeSize) does not divide extent_size \(extentSize)")
                    }
                }
                guard let list = segment["stripes"]?.array, list.count == 2 * Int(stripeCount) else {
                    throw bad("\(where_): stripes must list \(stripeCount) pairs of a PV name and an extent")
                }
                var stripes: [LVM2.Stripe] = []
                for i in 0..<Int(stripeCount) {
                    guard let pvName = list[2 * i].string, let pvExtent = list[2 * i + 1].integer, pvExtent >= 0 else {
                        throw bad("\(where_): stripe \(i) is not a PV name and an extent")
                    }
                    guard let pv = physicalVolumes.first(where: { $0.name == pvName }) else {
                        throw bad("\(where_): stripe \(i) names \(pvName), which is not a physical volume of the group")
                    }
                    let (last, overflow) = UInt64(pvExtent).addingReportingOverflow(count / stripeCount)
                    guard !overflow, last <= pv.peCount else {
                        throw LVMError.extentsOutsidePhysicalVolume(logicalVolume: "\(name)/\(lvName)", physicalVolume: pvName,
                                                                    lastExtent: overflow ? UInt64.max : last - 1, peCount: pv.peCount)
                    }
                    stripes.append(LVM2.Stripe(physicalVolume: pvName, startExtent: UInt64(pvExtent)))
                }
                volume.segments.append(LVM2.Segment(startExtent: start, extentCount: count, type: stripeCount == 1 ? "linear" : "striped",
                                                    stripeSize: stripeSize, stripes: stripes))
            }
            // Its size in bytes must be representable (each segment fits its PV, but their sum may not).
            let (bytes, overflow) = nextExtent.multipliedReportingOverflow(by: extentSize * LVM2.sectorSize)
            guard !overflow, bytes < UInt64(Int64.max) else { throw bad("\(what): \(nextExtent) extents overflow 64 bits of bytes") }
            logicalVolumes.append(volume)
        }
    }
}
