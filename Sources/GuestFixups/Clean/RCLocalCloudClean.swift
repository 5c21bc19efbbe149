/// Lines of /etc/rc.local that fetch from the old cloud's metadata service (169.254.169.254,
/// ec2-metadata, instance-data): commented out, so the rest of the script still runs and the
/// change is plain to whoever reads it. Shell constructs spanning lines are commented out whole
/// only when every line in them names the metadata service; otherwise see the report.
struct RCLocalCloudClean: CleanOperation {
    let name = "rc-local-cloud"
    let summary = "comment out the old cloud's metadata fetchers in /etc/rc.local (lines naming 169.254.169.254 and the like)"
    let isDefault = true
    static let markers = ["169.254.169.254", "ec2-metadata", "instance-data", "metadata.google.internal", "fd00:ec2::254"]
    static let prefix = "#rehost-clean# "

    func apply(_ guest: GuestEditor, _ context: CleanContext) throws {
        var done = Set<String>()
        for path in ["/etc/rc.local", "/etc/rc.d/rc.local", "/etc/rc.d/boot.local"] {
            guard let canonical = try guest.resolve(path, followLast: true), done.insert(canonical).inserted,
                  case .regularFile? = try guest.entry(canonical), let text = try guest.fs.readText(canonical) else { continue }
            var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            var changed = false
            for index in lines.indices where !lines[index].hasPrefix("#") && Self.markers.contains(where: lines[index].contains) {
                lines[index] = Self.prefix + lines[index]
                changed = true
            }
            if changed { try guest.writeText(canonical, lines.joined(separator: "\n")) }
        }
    }
}
