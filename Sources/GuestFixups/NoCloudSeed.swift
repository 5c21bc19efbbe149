/// A cloud-init NoCloud seed (`convert --cloud-init`): the files cloud-init's NoCloud datasource
/// reads at first boot, written inside the guest, and the configuration that makes cloud-init use
/// that datasource.
///
/// - `/var/lib/cloud/seed/nocloud/user-data` and `meta-data` (both required by NoCloud's seed
///   directory reader), and `network-config` when one is given; mode 0600, since user data may
///   hold passwords. Missing directories are made (0755).
/// - `/etc/cloud/cloud.cfg.d/99_rehost_nocloud.cfg` with `datasource_list: [ NoCloud, None ]`:
///   files in cloud.cfg.d are merged in name order, so it wins over Debian's `90_dpkg.cfg`; systemd
///   guests' `ds-identify` reads the same list and finds the seed directory.
///
/// Without `--meta-data`, the meta-data names an instance id derived from the seed's bytes
/// (`iid-rehost-` and 16 hex digits): a guest that ran cloud-init before (an EC2 instance) sees a
/// new instance and runs its per-instance modules again; the same seed gives the same id.
/// Files the seed creates get SELinux labels as the repairs' files do.
public struct NoCloudSeed: Sendable, Equatable {
    public var userData: [UInt8]
    public var metaData: [UInt8]?
    public var networkConfig: [UInt8]?

    public init(userData: [UInt8], metaData: [UInt8]? = nil, networkConfig: [UInt8]? = nil) {
        self.userData = userData
        self.metaData = metaData
        self.networkConfig = networkConfig
    }

    /// The name in reports, and in `--skip`.
    public static let repairName = "cloud-init"
    public static let seedDirectory = "/var/lib/cloud/seed/nocloud"
    public static let datasourceConfig = "/etc/cloud/cloud.cfg.d/99_rehost_nocloud.cfg"
    public static let datasourceLines = [
        "# Written by rehost convert --cloud-init: use the NoCloud seed in \(seedDirectory).",
        "datasource_list: [ NoCloud, None ]",
    ]

    /// The meta-data written: the one given, else an instance id from the seed's bytes.
    public var effectiveMetaData: [UInt8] {
        metaData ?? Array("instance-id: \(instanceID)\n".utf8)
    }

    /// `iid-rehost-` and the FNV-1a 64 hash of user-data and network-config, in hex.
    public var instanceID: String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in userData + [0] + (networkConfig ?? []) {
            hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
        }
        let hex = String(hash, radix: 16)
        return "iid-rehost-" + String(repeating: "0", count: 16 - hex.count) + hex
    }

    /// The files of the seed, by name (`user-data`, `meta-data`, `network-config`), in that order.
    public var files: [(name: String, contents: [UInt8])] {
        var files = [("user-data", userData), ("meta-data", effectiveMetaData)]
        if let networkConfig { files.append(("network-config", networkConfig)) }
        return files
    }

    /// Writes the seed into the guest and returns the changes (and, with `options.selinux`, the
    /// labels given) under the name `cloud-init`. Idempotent: files already holding these bytes
    /// are left alone. `report` is the guest's inspection (the repairs' own).
    public func apply(to fs: any GuestFilesystem, options: RepairOptions, report: GuestReport) throws -> GuestRepairs.Outcome {
        var context = RepairContext(fs: fs, options: options, report: report, repair: Self.repairName)
        for directory in ["/var", "/var/lib", "/var/lib/cloud", "/var/lib/cloud/seed", Self.seedDirectory,
                          "/etc", "/etc/cloud", "/etc/cloud/cloud.cfg.d"] {
            try context.createDirectoryIfMissing(directory)
        }
        for (name, contents) in files {
            try context.writeBytes(Self.seedDirectory + "/" + name, contents: contents, newFileMode: 0o600,
                                   showLines: name == "meta-data")
        }
        try context.writeWholeFile(Self.datasourceConfig, lines: Self.datasourceLines, newFileMode: 0o644)
        if try fs.entry(at: "/usr/bin/cloud-init") == nil {
            context.warnings.append("--cloud-init: the guest has no /usr/bin/cloud-init; the NoCloud seed is written, but nothing will read it until cloud-init is installed")
        }
        if !options.skip.contains("selinux") {
            try SELinuxRepair.run(&context)
        }
        return GuestRepairs.Outcome(changes: context.changes, warnings: context.warnings, report: report)
    }
}

extension RepairContext {
    /// Makes `path` a regular file holding exactly `contents` (replacing a symlink there); writes
    /// nothing if it already does. Lines are listed in the report only with `showLines` (user data
    /// may hold secrets): otherwise the change says the size.
    mutating func writeBytes(_ path: String, contents: [UInt8], newFileMode: UInt16, showLines: Bool) throws {
        let existing = try fs.entry(at: path)
        var action = GuestChange.Action.created
        var before: [String] = []
        switch existing {
        case .symlink?:
            try fs.remove(path)
        case .regularFile?:
            let old = try fs.readFile(path) ?? []
            guard old != contents else { return }
            action = .edited
            before = showLines ? TextLines(bytes: old).texts : []
        default:
            break
        }
        try fs.writeFile(path, contents: contents, newFileMode: newFileMode)
        let lines: [GuestChange.LineChange]
        if showLines {
            let after = TextLines(bytes: contents).texts
            lines = action == .created ? after.map { .init(before: nil, after: $0) } : LineDiff.changes(from: before, to: after)
        } else {
            lines = [.init(before: nil, after: "(\(contents.count) bytes, not shown)")]
        }
        changes.append(GuestChange(repair: repair, path: path, action: action, lines: lines))
    }
}
