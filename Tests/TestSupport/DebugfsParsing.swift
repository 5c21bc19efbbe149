import Foundation

/// One line of `ls -p -r`: `/INODE/MODE/UID/GID/NAME/SIZE/`.
struct ListedEntry: Equatable {
    let inode: UInt32
    let mode: UInt32
    let name: [UInt8]
}

/// What `stat <INODE>` says about one inode; the parts the directory listing does not give.
struct StatReport: Equatable {
    var uid: UInt32 = 0
    var gid: UInt32 = 0
    var size: UInt64 = 0
    var flags: UInt32 = 0
    var linkCount: UInt32 = 0
    var atime: InodeTime?
    var mtime: InodeTime?
    var ctime: InodeTime?
    var device: DeviceNumber?
    var fastLinkTarget: [UInt8]?
    var xattrNames: [String] = []
    var mappedBlocks: [BlockRun] = []
}

enum DebugfsParsing {
    /// Parses `ls -p -r` output. The name field ends at the next "/", which no name can contain,
    /// so names with spaces or even newlines come through intact. Lines that are not entries are skipped.
    static func listing(_ output: ArraySlice<UInt8>) -> [ListedEntry] {
        let slash = UInt8(ascii: "/"), newline = UInt8(ascii: "\n")
        var entries: [ListedEntry] = []
        var index = output.startIndex
        func field() -> ArraySlice<UInt8>? {
            guard let end = output[index...].firstIndex(of: slash) else { return nil }
            defer { index = end + 1 }
            return output[index..<end]
        }
        func skipLine() {
            index = (output[index...].firstIndex(of: newline) ?? output.endIndex - 1) + 1
        }
        while index < output.endIndex {
            guard output[index] == slash else { skipLine(); continue }
            index += 1
            guard let inodeText = field(), let modeText = field(), field() != nil, field() != nil,
                  let name = field(), field() != nil,
                  let inode = UInt32(String(decoding: inodeText, as: UTF8.self)),
                  let mode = UInt32(String(decoding: modeText, as: UTF8.self), radix: 8)
            else { skipLine(); continue }
            // Unused directory slots (lost+found is full of them) come out as inode 0 with an empty name.
            if inode != 0 { entries.append(ListedEntry(inode: inode, mode: mode, name: Array(name))) }
            if index < output.endIndex, output[index] == newline { index += 1 }
        }
        return entries
    }

    /// The "Block size:" line of `stats -h`.
    static func blockSize(_ output: ArraySlice<UInt8>) -> UInt32? {
        for line in lines(output) where line.hasPrefix("Block size:") {
            return UInt32(line.dropFirst("Block size:".count).trimmingCharacters(in: .whitespaces))
        }
        return nil
    }

    /// Parses `stat`. Its layout differs between 128-byte inodes (`ctime: 0xSECONDS -- date`) and
    /// larger ones (` ctime: 0xSECONDS:EXTRA -- date`, plus crtime, Project, checksum lines), so
    /// fields are found by their labels, never by position.
    static func stat(_ output: ArraySlice<UInt8>) -> StatReport? {
        var report = StatReport()
        var sawInode = false
        var section: Substring = ""
        for line in lines(output) {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            let tokens = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            func value(after label: Substring) -> Substring? {
                guard let at = tokens.firstIndex(of: label), at + 1 < tokens.count else { return nil }
                return tokens[at + 1]
            }
            if trimmed.hasPrefix("Inode:") {
                sawInode = true
                guard let flags = value(after: "Flags:"), let parsed = hexNumber(flags) else { return nil }
                report.flags = UInt32(truncatingIfNeeded: parsed)
            } else if trimmed.hasPrefix("User:") {
                // debugfs prints 32-bit ids with %d, so ids above 2^31 come out negative.
                guard let uid = value(after: "User:").flatMap({ Int64($0) }),
                      let gid = value(after: "Group:").flatMap({ Int64($0) }),
                      let size = value(after: "Size:").flatMap({ UInt64($0) })
                else { return nil }
                report.uid = UInt32(truncatingIfNeeded: uid)
                report.gid = UInt32(truncatingIfNeeded: gid)
                report.size = size
            } else if trimmed.hasPrefix("Links:") {
                guard let links = value(after: "Links:").flatMap({ UInt32($0) }) else { return nil }
                report.linkCount = links
            } else if trimmed.hasPrefix("atime:") {
                report.atime = time(trimmed)
            } else if trimmed.hasPrefix("mtime:") {
                report.mtime = time(trimmed)
            } else if trimmed.hasPrefix("ctime:") {
                report.ctime = time(trimmed)
            } else if let range = trimmed.range(of: "Device major/minor number:") {
                let numbers = trimmed[range.upperBound...].split(separator: " ").first?.split(separator: ":")
                if let numbers, numbers.count == 2, let major = UInt32(numbers[0]), let minor = UInt32(numbers[1]) {
                    report.device = DeviceNumber(major: major, minor: minor)
                }
            } else if trimmed == "Extended attributes:" || trimmed == "BLOCKS:" || trimmed == "EXTENTS:" {
                section = Substring(trimmed)
            } else if trimmed.hasPrefix("TOTAL:") || trimmed.hasPrefix("Fast link dest:") {
                section = ""
            } else if section == "Extended attributes:", line.hasPrefix("  "), let name = xattrName(line) {
                report.xattrNames.append(name)
            } else if section == "BLOCKS:" || section == "EXTENTS:" {
                report.mappedBlocks += blockRuns(trimmed)
            }
        }
        guard sawInode, report.atime != nil, report.mtime != nil, report.ctime != nil else { return nil }
        report.mappedBlocks = merged(report.mappedBlocks)
        report.fastLinkTarget = fastLinkTarget(output, size: report.size)
        return report
    }

    /// `Fast link dest: "TARGET"` holds exactly `size` bytes of target, whatever bytes they are.
    private static func fastLinkTarget(_ output: ArraySlice<UInt8>, size: UInt64) -> [UInt8]? {
        let marker = Array("Fast link dest: \"".utf8)
        guard output.count >= marker.count else { return nil }
        var index = output.startIndex
        while index + marker.count <= output.endIndex {
            if output[index..<index + marker.count].elementsEqual(marker) {
                let start = index + marker.count
                let end = min(output.endIndex, start + Int(clamping: size))
                return Array(output[start..<end])
            }
            index += 1
        }
        return nil
    }

    /// `  NAME (LENGTH) = VALUE`: the name ends at the first " (digits) =".
    private static func xattrName(_ line: Substring) -> String? {
        let body = line.dropFirst(2)
        var search = body.startIndex
        while let open = body[search...].range(of: " (") {
            let afterOpen = body[open.upperBound...]
            let digits = afterOpen.prefix(while: \.isNumber)
            if !digits.isEmpty, afterOpen.dropFirst(digits.count).hasPrefix(")") {
                return String(body[..<open.lowerBound])
            }
            search = open.upperBound
        }
        return nil
    }

    /// `ctime: 0x6b01e1b6 -- date` or `ctime: 0x6b01e1b6:a2b4c6d8 -- date`. The extra word holds
    /// two epoch bits (extending the signed 32-bit seconds past 2038) and 30 bits of nanoseconds.
    private static func time(_ line: String) -> InodeTime? {
        guard let word = line.split(separator: " ").dropFirst().first else { return nil }
        let parts = word.split(separator: ":")
        guard let lowText = parts.first, let low = hexNumber(lowText) else { return nil }
        var seconds = Int64(Int32(bitPattern: UInt32(truncatingIfNeeded: low)))
        guard parts.count == 2, let extra = hexNumber(parts[1]) else { return InodeTime(seconds: seconds) }
        seconds += Int64(extra & 3) << 32
        return InodeTime(seconds: seconds, nanoseconds: UInt32(truncatingIfNeeded: extra >> 2))
    }

    /// Runs on a BLOCKS or EXTENTS line: `(0-11):1000-1011, (IND):1012, (12):1013`,
    /// `(ETB0):1234, (100-102[u]):1331-1333`. Entries whose label is not a logical block number
    /// (indirect and extent-tree blocks) are metadata and skipped; uninitialized extents are holes.
    static func blockRuns(_ line: String) -> [BlockRun] {
        var runs: [BlockRun] = []
        var rest = Substring(line)
        while let open = rest.firstIndex(of: "("), let close = rest[open...].firstIndex(of: ")") {
            var label = rest[rest.index(after: open)..<close]
            rest = rest[rest.index(after: close)...]
            if label.hasSuffix("[u]") { continue }
            label = label.prefix { $0 != "[" }
            let bounds = label.split(separator: "-", omittingEmptySubsequences: false)
            guard let first = bounds.first.flatMap({ UInt64($0) }) else { continue }
            let last = bounds.count == 2 ? UInt64(bounds[1]) : first
            guard let last, last >= first else { continue }
            runs.append(BlockRun(first: first, count: last - first + 1))
        }
        return runs
    }

    static func merged(_ runs: [BlockRun]) -> [BlockRun] {
        var result: [BlockRun] = []
        for run in runs.sorted(by: { $0.first < $1.first }) {
            if let last = result.last, last.first + last.count >= run.first {
                let end = max(last.first + last.count, run.first + run.count)
                result[result.count - 1] = BlockRun(first: last.first, count: end - last.first)
            } else {
                result.append(run)
            }
        }
        return result
    }

    private static func hexNumber<S: StringProtocol>(_ text: S) -> UInt64? {
        let digits = text.hasPrefix("0x") || text.hasPrefix("0X") ? String(text.dropFirst(2)) : String(text)
        return UInt64(digits, radix: 16)
    }

    private static func lines(_ output: ArraySlice<UInt8>) -> [Substring] {
        String(decoding: output, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
    }
}
