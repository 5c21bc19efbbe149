/// Version ordering in the manner of rpm's version comparison: the strings are cut into runs of
/// digits and runs of letters (anything else separates), digit runs compare as numbers (so
/// 2.6.18-398.el5 > 2.6.18-8.el5 and 6.1.0-27 > 6.1.0-9), letter runs as text, a number is newer
/// than letters, and with all else equal the version with more runs is newer.
public enum KernelVersion {
    public static func isOlder(_ a: String, than b: String) -> Bool {
        compare(a, b) < 0
    }

    /// -1, 0 or 1.
    public static func compare(_ a: String, _ b: String) -> Int {
        let left = segments(a), right = segments(b)
        for (x, y) in zip(left, right) {
            let order = compareSegments(x, y)
            if order != 0 { return order }
        }
        return left.count == right.count ? 0 : (left.count < right.count ? -1 : 1)
    }

    private enum Segment {
        case number(Substring)
        case letters(Substring)
    }

    private static func segments(_ version: String) -> [Segment] {
        var result: [Segment] = []
        var index = version.startIndex
        while index < version.endIndex {
            let character = version[index]
            if character.isASCII && character.isNumber {
                let end = version[index...].firstIndex { !($0.isASCII && $0.isNumber) } ?? version.endIndex
                result.append(.number(version[index..<end]))
                index = end
            } else if character.isASCII && character.isLetter {
                let end = version[index...].firstIndex { !($0.isASCII && $0.isLetter) } ?? version.endIndex
                result.append(.letters(version[index..<end]))
                index = end
            } else {
                index = version.index(after: index)
            }
        }
        return result
    }

    private static func compareSegments(_ x: Segment, _ y: Segment) -> Int {
        switch (x, y) {
        case let (.number(a), .number(b)):
            // Compared as digit strings, so no length of number can overflow.
            let a = a.drop { $0 == "0" }, b = b.drop { $0 == "0" }
            if a.count != b.count { return a.count < b.count ? -1 : 1 }
            return a == b ? 0 : (a < b ? -1 : 1)
        case let (.letters(a), .letters(b)):
            return a == b ? 0 : (a < b ? -1 : 1)
        case (.number, .letters): return 1
        case (.letters, .number): return -1
        }
    }
}
