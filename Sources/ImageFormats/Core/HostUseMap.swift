/// Which units of an image file (sectors, clusters) a reader's tables already map, so that two
/// table entries naming the same host bytes are caught before anything is streamed.
///
/// Why it matters: qemu and VMware never map one host cluster or grain to two guest places in the
/// active disk (a qcow2 snapshot shares clusters between snapshots, never inside one L2 walk). A
/// hostile image that does so makes a file of a few hundred KiB read as gigabytes of data, all of
/// it written to the output. Refusing shared host data bounds the data a reader hands out by the
/// size of the file (times the deflate ratio for compressed units, which `--max-output-size`
/// bounds).
///
/// Memory: one bit per unit of the file, at most `maximumBytes`. A file with more units than that
/// (a VMDK of more than 1 TiB, counted in sectors) gets no map (`init` returns nil): its readers
/// still refuse more allocated units than the file can hold, and the output cap bounds the rest.
struct HostUseMap {
    /// 256 MiB of bits: 2^31 units, 1 TiB of 512-byte sectors.
    static let maximumBytes = 256 << 20

    private var words: [UInt64]
    let units: UInt64

    /// A map of `units` units, all free; nil when it would take more than `maximumBytes`.
    init?(units: UInt64) {
        let (count, overflow) = units.addingReportingOverflow(63)
        guard !overflow, count / 64 <= UInt64(Self.maximumBytes / 8) else { return nil }
        self.units = units
        words = [UInt64](repeating: 0, count: Int(count / 64))
    }

    /// Marks units `first ..< first + count` used. Returns the first unit already used (nothing is
    /// marked past it), or nil when all were free. Units past `units` are the caller's to refuse
    /// first; they are ignored here.
    mutating func use(first: UInt64, count: UInt64) -> UInt64? {
        let end = min(units, first &+ count < first ? UInt64.max : first + count)
        var unit = first
        while unit < end {
            let word = Int(unit / 64), bit = unit % 64
            // Whole words at a time where the run allows.
            let span = min(64 - bit, end - unit)
            let mask: UInt64 = span == 64 ? ~0 : ((1 << span) - 1) << bit
            let clash = words[word] & mask
            if clash != 0 { return UInt64(word) * 64 + UInt64(clash.trailingZeroBitCount) }
            words[word] |= mask
            unit += span
        }
        return nil
    }
}
