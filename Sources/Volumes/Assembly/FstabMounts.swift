/// One line of /etc/fstab that mounts something.
public struct FstabEntry: Equatable, Sendable {
    public var device: String
    public var mountPoint: String
    public var type: String
    public var line: Int

    /// The entries of an fstab text, comments and blank lines left out; `\040` in a field is a space.
    public static func parse(_ text: String) -> [FstabEntry] {
        var entries: [FstabEntry] = []
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.drop { $0 == " " || $0 == "\t" }
            guard !line.isEmpty, !line.hasPrefix("#") else { continue }
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map { $0.replacingOccurrences(of: "\\040", with: " ") }
            guard fields.count >= 3 else { continue }
            var mountPoint = fields[1]
            while mountPoint.count > 1, mountPoint.hasSuffix("/") { mountPoint.removeLast() }
            entries.append(FstabEntry(device: fields[0], mountPoint: mountPoint, type: fields[2], line: index + 1))
        }
        return entries
    }

    /// ext2/3/4 (or "auto", resolved by what the device holds).
    public var mayBeExt: Bool { ["ext2", "ext3", "ext4", "auto"].contains(type) }
}

extension GuestVolumes {
    /// The volume an fstab device names: `LABEL=`, `UUID=`, `/dev/VG/LV`, `/dev/mapper/VG-LV`
    /// (a dash in a name doubled), or a partition of the first disk by any of the names guests
    /// give it (`/dev/sda2`, `/dev/hda2`, `/dev/xvda2`, `/dev/vda2`, `/dev/xvde2`...).
    public func volume(named device: String) -> GuestVolume? {
        if device.hasPrefix("LABEL=") {
            let label = String(device.dropFirst(6))
            return volumes.first { $0.probe?.label == label }
        }
        if device.hasPrefix("UUID=") {
            let uuid = device.dropFirst(5).lowercased()
            return volumes.first { $0.probe?.uuid?.lowercased() == uuid }
        }
        if device.hasPrefix("/dev/mapper/") {
            let name = String(device.dropFirst(12))
            return volumes.first {
                guard case let .logicalVolume(group, volume) = $0.kind else { return false }
                return Self.mapperName(group: group, volume: volume) == name
            }
        }
        let parts = device.split(separator: "/", omittingEmptySubsequences: false)
        if parts.count == 4, parts[0].isEmpty, parts[1] == "dev" {
            return volumes.first { $0.kind == .logicalVolume(group: String(parts[2]), volume: String(parts[3])) }
        }
        if let (letter, number) = Self.partitionName(device) {
            // With one disk every letter is that disk (clouds numbered Xen disks xvde, xvdf...);
            // with several, b is the second disk given, c the third.
            let index = Int(letter.asciiValue ?? 97) - 97
            let disk = diskCount > 1 && index > 0 && index < diskCount ? index : 0
            return volumes.first { $0.kind == .partition(disk: disk, number: number) }
        }
        return nil
    }

    /// The unreadable LV an fstab device names (`/dev/VG/LV`, `/dev/mapper/VG-LV`), with why.
    public func unreadableVolume(named device: String) -> (name: String, reason: String)? {
        unreadable.first { entry in
            let parts = entry.name.split(separator: "/").map(String.init)
            guard parts.count == 2 else { return false }
            return device == "/dev/\(parts[0])/\(parts[1])" || device == "/dev/mapper/" + Self.mapperName(group: parts[0], volume: parts[1])
        }
    }

    /// device-mapper's name of an LV: VG-LV with dashes inside either doubled.
    public static func mapperName(group: String, volume: String) -> String {
        group.replacingOccurrences(of: "-", with: "--") + "-" + volume.replacingOccurrences(of: "-", with: "--")
    }

    /// 2 for /dev/sda2, /dev/hda2, /dev/xvda2, /dev/vda2, /dev/xvde2 (a Xen disk letter other than a
    /// counts as the first disk: clouds numbered them so); nil for anything else.
    static func partitionNumber(_ device: String) -> Int? { partitionName(device)?.number }

    /// The disk letter and partition number of /dev/sdb2 and the like.
    static func partitionName(_ device: String) -> (letter: Character, number: Int)? {
        for prefix in ["/dev/xvd", "/dev/sd", "/dev/hd", "/dev/vd"] where device.hasPrefix(prefix) {
            let rest = device.dropFirst(prefix.count)
            guard let letter = rest.first, letter.isASCII, letter.isLowercase else { return nil }
            let digits = rest.dropFirst()
            guard !digits.isEmpty, digits.allSatisfy(\.isNumber), let n = Int(digits), n > 0 else { return nil }
            return (letter, n)
        }
        return nil
    }
}
