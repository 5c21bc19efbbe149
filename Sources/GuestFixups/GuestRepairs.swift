/// The offline Xen-to-hardware repairs, in the order they run. Each has a stable name for
/// `--skip NAME`, does nothing when its files are missing, and is idempotent: on a guest it has
/// already repaired it returns no changes and writes nothing.
public enum GuestRepairs {
    struct Repair {
        let name: String
        let summary: String
        let run: @Sendable (inout RepairContext) throws -> Void
    }

    static let all: [Repair] = [
        Repair(name: "inittab", summary: "comment out Xen console gettys (xvc0, hvc0) and add a ttyS0 getty in /etc/inittab; disable systemd gettys on the Xen console",
               run: InittabRepair.run),
        Repair(name: "securetty", summary: "allow root logins on ttyS0 in /etc/securetty",
               run: SecurettyRepair.run),
        Repair(name: "modprobe", summary: "point xenblk/xennet module aliases at the target's disk and network drivers",
               run: ModprobeRepair.run),
        Repair(name: "fstab", summary: "mount / by the new root reference and comment out the Xen disks' other entries",
               run: FstabRepair.run),
        Repair(name: "blkid-cache", summary: "remove stale blkid caches that name the Xen devices",
               run: BlkidCacheRepair.run),
        Repair(name: "network", summary: "drop HWADDR/MACADDR pins in ifcfg files and udev persistent-net rules",
               run: NetworkRepair.run),
        Repair(name: "initrd", summary: "add the target's disk drivers from the guest's own modules to the initrd of the kernel that boots",
               run: InitrdRepair.run),
        Repair(name: "bootloader", summary: "write grub.conf (GRUB legacy) and a native grub.cfg for the non-Xen kernels",
               run: BootloaderRepair.run),
        Repair(name: "selinux", summary: "give the files the repairs created their SELinux labels (or, with --selinux relabel, touch /.autorelabel)",
               run: SELinuxRepair.run),
    ]

    /// Every repair's name (the values `--skip` accepts) with a one-line description, in the order
    /// they run (for --help).
    public static let names: [(name: String, description: String)] = all.map { ($0.name, $0.summary) }

    /// What the repairs did.
    public struct Outcome: Sendable, Equatable {
        public var changes: [GuestChange]
        /// Things the user should know that did not stop the repairs ("no virtio-scsi driver").
        public var warnings: [String]
        /// The guest as the repairs saw it: after `--add-kernel` installs, before the other repairs.
        public var report: GuestReport
    }

    /// Runs every repair not in `options.skip`, in order, and returns what changed. Checks up front
    /// that the guest has a kernel that boots on the target (unless `bootloader` is skipped), so a
    /// guest that cannot boot is refused before anything is written.
    ///
    /// `kernels` (from `--add-kernel`) are installed first, and the newest of them becomes the
    /// kernel to boot unless `options.kernel` names another.
    ///
    /// `report`, when given, is this guest's inspection with these options (the conversion has
    /// one already: reading every kernel and initrd again costs seconds); it is not used when
    /// kernels are supplied, since they change the guest first.
    public static func apply(to fs: any GuestFilesystem, options: RepairOptions,
                             kernels supplied: [SuppliedKernel] = [], report inspected: GuestReport? = nil) throws -> Outcome {
        let known = all.map(\.name)
        if let unknown = options.skip.sorted().first(where: { !known.contains($0) }) {
            throw RepairError.unknownRepair(name: unknown, known: known)
        }
        var installed: [GuestChange] = [], installWarnings: [String] = []
        for kernel in supplied {
            try KernelInstall.run(kernel, fs: fs, changes: &installed, warnings: &installWarnings)
        }
        var options = options
        if options.kernel == nil, let newest = supplied.map(\.release).max(by: { KernelVersion.isOlder($0, than: $1) }) {
            options.kernel = newest
        }
        let report = try supplied.isEmpty ? inspected ?? GuestInspector.inspect(
            fs, target: options.target, rootFilesystemType: options.rootFilesystemType, kernel: options.kernel)
            : GuestInspector.inspect(fs, target: options.target, rootFilesystemType: options.rootFilesystemType, kernel: options.kernel)
        if !options.skip.contains("bootloader"), report.bootableKernel == nil {
            throw GuestInspector.kernelProblem(report.kernels, target: options.target)
        }
        var context = RepairContext(fs: fs, options: options, report: report, repair: "")
        context.changes = installed
        context.warnings = installWarnings
        if options.skip.contains("initrd"), let kernel = report.bootableKernel,
           kernel.verdict(for: options.target)?.outcome == .bootsAfterRepair {
            context.warnings.append("--skip initrd: \(kernel.path) boots on \(options.target.rawValue) only once its initrd has the target's drivers")
        }
        for repair in all where !options.skip.contains(repair.name) {
            context.repair = repair.name
            try repair.run(&context)
        }
        return Outcome(changes: context.changes, warnings: context.warnings, report: report)
    }
}

/// What a repair works with, and the record of what it changed.
struct RepairContext {
    let fs: any GuestFilesystem
    let options: RepairOptions
    let report: GuestReport
    var repair: String
    var changes: [GuestChange] = []
    var warnings: [String] = []

    /// Applies `edit` to the lines of an existing file and writes the file only if its bytes change.
    mutating func edit(_ path: String, _ edit: (inout TextLines) throws -> Void) throws {
        guard let original = try fs.readLines(path) else { return }
        var edited = original
        try edit(&edited)
        guard edited.bytes != original.bytes else { return }
        try fs.writeFile(path, contents: edited.bytes, newFileMode: 0o644)
        changes.append(GuestChange(repair: repair, path: path, action: .edited,
                                   lines: LineDiff.changes(from: original.texts, to: edited.texts)))
    }

    /// Makes `path` a regular file with exactly `lines`, replacing a symlink there (writing through
    /// it would change the file it points at). Writes nothing if the file already says this.
    mutating func writeWholeFile(_ path: String, lines: [String], newFileMode: UInt16) throws {
        let wanted = TextLines(lines: lines)
        let existing = try fs.entry(at: path)
        if case .symlink? = existing {
            try fs.remove(path)
        } else if case .regularFile? = existing, let old = try fs.readLines(path) {
            guard old.bytes != wanted.bytes else { return }
            try fs.writeFile(path, contents: wanted.bytes, newFileMode: newFileMode)
            changes.append(GuestChange(repair: repair, path: path, action: .edited,
                                       lines: LineDiff.changes(from: old.texts, to: wanted.texts)))
            return
        }
        try fs.writeFile(path, contents: wanted.bytes, newFileMode: newFileMode)
        changes.append(GuestChange(repair: repair, path: path, action: .created,
                                   lines: lines.map { .init(before: nil, after: $0) }))
    }

    /// Makes `path` a symlink to `target` unless it already is one to any of `equivalentTargets`.
    mutating func symlink(_ path: String, to target: String, equivalentTargets: Set<String>) throws {
        if case .symlink(let current)? = try fs.entry(at: path),
           current == target || equivalentTargets.contains(current) { return }
        try fs.createSymlink(path, target: target)
        changes.append(GuestChange(repair: repair, path: path, action: .symlinked, target: target))
    }

    mutating func removeIfPresent(_ path: String) throws {
        switch try fs.entry(at: path) {
        case nil, .directory?: return
        default:
            try fs.remove(path)
            changes.append(GuestChange(repair: repair, path: path, action: .removed))
        }
    }

    mutating func createDirectoryIfMissing(_ path: String) throws {
        guard try fs.entry(at: path) == nil else { return }
        try fs.createDirectory(path, mode: 0o755)
        changes.append(GuestChange(repair: repair, path: path, action: .created))
    }
}
