/// Sizes as users write them (`10G`, `512M`, `4096`) and as we print them.
public enum ByteCount {
    public static let KiB: UInt64 = 1 << 10
    public static let MiB: UInt64 = 1 << 20
    public static let GiB: UInt64 = 1 << 30
    public static let TiB: UInt64 = 1 << 40

    /// Parses `N`, `NK`, `NM`, `NG`, `NT` (binary units; an optional trailing `iB` or `B` is accepted).
    public static func parse(_ text: String) -> UInt64? {
        var s = text.trimmingCharacters(in: " ").uppercased()
        for suffix in ["IB", "B"] where s.hasSuffix(suffix) && s.count > suffix.count {
            s.removeLast(suffix.count)
            break
        }
        var multiplier: UInt64 = 1
        if let last = s.last, !last.isNumber {
            switch last {
            case "K": multiplier = KiB
            case "M": multiplier = MiB
            case "G": multiplier = GiB
            case "T": multiplier = TiB
            default: return nil
            }
            s.removeLast()
        }
        guard !s.isEmpty, s.allSatisfy(\.isNumber), let n = UInt64(s) else { return nil }
        let (product, overflow) = n.multipliedReportingOverflow(by: multiplier)
        return overflow ? nil : product
    }

    /// `1.5 GiB`, `512 MiB`, `700 B`.
    public static func format(_ bytes: UInt64) -> String {
        let units: [(UInt64, String)] = [(TiB, "TiB"), (GiB, "GiB"), (MiB, "MiB"), (KiB, "KiB")]
        for (size, name) in units where bytes >= size {
            let value = Double(bytes) / Double(size)
            let rounded = (value * 10).rounded() / 10
            return rounded == rounded.rounded() ? "\(Int(rounded)) \(name)" : "\(rounded) \(name)"
        }
        return "\(bytes) B"
    }
}

extension String {
    func trimmingCharacters(in set: Character) -> String {
        var s = Substring(self)
        while s.first == set { s.removeFirst() }
        while s.last == set { s.removeLast() }
        return String(s)
    }
}
