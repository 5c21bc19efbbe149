/// The boot menu for the converted disk. Rehost installs GRUB 2 with the prefix
/// `(hd0,msdos1)/boot/grub`, and GRUB 2 reads /boot/grub/grub.cfg as native syntax only (a symlink
/// to a legacy grub.conf stops at `grub>`), so grub.cfg is written as a real GRUB 2 file. The
/// guest's own tools (grubby, new-kernel-pkg, update-grub for GRUB legacy) keep using
/// /boot/grub/grub.conf, written in GRUB legacy syntax with the same entries, with menu.lst and
/// /etc/grub.conf as symlinks to it. Every non-Xen kernel gets an entry, newest first; Xen-only
/// kernels are left out, since they cannot boot outside Xen PV. When /boot is a partition of its
/// own (`--keep-layout`), the prefix is `(hd0,msdos1)/grub` and every path in both menus is
/// relative to that filesystem (`/vmlinuz-...`), as GRUB and the guest's tools expect there.
enum BootloaderRepair {
    static func run(_ context: inout RepairContext) throws {
        let report = context.report
        let options = context.options
        // The kernel chosen to boot first (the default entry), then the others that boot there.
        let kernels = report.kernels.filter { $0.path == report.bootableKernel?.path }
            + report.kernels.filter { $0.path != report.bootableKernel?.path && $0.verdict(for: options.target)?.boots == true }
        guard !kernels.isEmpty else { throw GuestInspector.kernelProblem(report.kernels, target: options.target) }
        var extra = try keptKernelArguments(context.fs)
        if try NetworkNames.configurationNamesEth0(context.fs, initSystem: report.initSystem) {
            // systemd would name the new NIC ens3/enp0s3 and never configure eth0.
            for argument in ["net.ifnames=0", "biosdevname=0"] where !extra.contains(argument) { extra.append(argument) }
        }
        let command = ["ro", "root=\(options.rootReference)"] + extra
            + ["console=tty0", "console=ttyS0,\(options.serialSpeed)"]
        let entries = kernels.map { kernel in
            MenuEntry(title: "\(report.os.name) (\(kernel.version))", kernel: options.bootLoaderPath(kernel.path),
                      arguments: command.joined(separator: " "), initrd: kernel.initrd.map(options.bootLoaderPath))
        }

        try context.createDirectoryIfMissing("/boot/grub")
        try context.writeWholeFile(GuestPaths.grubConf, lines: legacyConfig(entries, options: options), newFileMode: 0o600)
        try context.symlink(GuestPaths.menuList, to: "grub.conf", equivalentTargets: ["./grub.conf", GuestPaths.grubConf])
        if try context.fs.entry(at: "/etc") == .directory {
            try context.symlink(GuestPaths.etcGrubConf, to: "../boot/grub/grub.conf", equivalentTargets: [GuestPaths.grubConf])
        }
        try context.writeWholeFile(GuestPaths.grubCfg, lines: grub2Config(entries, options: options), newFileMode: 0o644)
        try makeDefaultsLast(&context, classicNames: extra.contains("net.ifnames=0"))
    }

    /// Writes the boot choices where the guest's own tools look when they next install a kernel or
    /// regenerate the menu: RHEL's new-kernel-pkg makes the next `kernel-xen` the default unless
    /// /etc/sysconfig/kernel says `kernel`, and update-grub builds every entry from /etc/default/grub.
    static func makeDefaultsLast(_ context: inout RepairContext, classicNames: Bool) throws {
        try context.edit("/etc/sysconfig/kernel") { lines in
            for (index, text) in lines.texts.enumerated() {
                let trimmed = text.trimmingCharacters(in: " \t")
                guard trimmed.hasPrefix("DEFAULTKERNEL="), trimmed.lowercased().contains("xen") else { continue }
                lines.replace(index, with: "DEFAULTKERNEL=kernel")
            }
        }
        let speed = context.options.serialSpeed
        let serial = "console=ttyS0,\(speed)"
        try context.edit("/etc/default/grub") { lines in
            var sawSerialCommand = false, sawTerminal = false
            for (index, text) in lines.texts.enumerated() {
                let trimmed = text.trimmingCharacters(in: " \t")
                if trimmed.hasPrefix("GRUB_SERIAL_COMMAND=") { sawSerialCommand = true }
                if trimmed.hasPrefix("GRUB_TERMINAL=") || trimmed.hasPrefix("GRUB_TERMINAL_OUTPUT=") { sawTerminal = true }
                for key in ["GRUB_CMDLINE_LINUX", "GRUB_CMDLINE_LINUX_DEFAULT"] where trimmed.hasPrefix(key + "=") {
                    var value = String(trimmed.dropFirst(key.count + 1))
                    if value.count >= 2, value.first == "\"", value.last == "\"" { value = String(value.dropFirst().dropLast()) }
                    var arguments = value.split(separator: " ").map(String.init).filter { argument in
                        let lowered = argument.lowercased()
                        return !lowered.hasPrefix("console=") && !lowered.contains("xen")
                            && !(classicNames && (lowered.hasPrefix("net.ifnames=") || lowered.hasPrefix("biosdevname=")))
                    }
                    if key == "GRUB_CMDLINE_LINUX" {
                        arguments += ["console=tty0", serial]
                        if classicNames { arguments += ["net.ifnames=0", "biosdevname=0"] }
                    }
                    lines.replace(index, with: "\(key)=\"\(arguments.joined(separator: " "))\"")
                }
            }
            if !sawTerminal { lines.append("GRUB_TERMINAL=\"serial console\"") }
            if !sawSerialCommand { lines.append("GRUB_SERIAL_COMMAND=\"serial --unit=0 --speed=\(speed)\"") }
        }
    }

    struct MenuEntry {
        var title: String
        var kernel: String
        var arguments: String
        var initrd: String?
    }

    static func legacyConfig(_ entries: [MenuEntry], options: RepairOptions) -> [String] {
        var lines = [
            "# Written by rehost for \(options.target.rawValue): GRUB legacy syntax, for the guest's own tools.",
            "# The disk boots GRUB 2, which reads the same menu from /boot/grub/grub.cfg.",
            "default=0",
            "timeout=5",
            "serial --unit=0 --speed=\(options.serialSpeed)",
            "terminal --timeout=5 serial console",
        ]
        for entry in entries {
            lines += ["title \(entry.title)", "\troot \(options.legacyGrubRoot)", "\tkernel \(entry.kernel) \(entry.arguments)"]
            if let initrd = entry.initrd { lines.append("\tinitrd \(initrd)") }
        }
        return lines
    }

    static func grub2Config(_ entries: [MenuEntry], options: RepairOptions) -> [String] {
        var lines = [
            "# Written by rehost for \(options.target.rawValue): native GRUB 2 syntax (prefix (\(options.grubBootPartition))\(options.bootLoaderPath("/boot/grub"))).",
            "# /boot/grub/grub.conf holds the same menu in GRUB legacy syntax.",
            "serial --unit=0 --speed=\(options.serialSpeed)",
            "terminal_input serial console",
            "terminal_output serial console",
            "set default=0",
            "set timeout=3",
        ]
        for entry in entries {
            let quoted = entry.title.replacing("'", with: "'\\''")
            lines += ["menuentry '\(quoted)' {", "\tlinux \(entry.kernel) \(entry.arguments)"]
            if let initrd = entry.initrd { lines.append("\tinitrd \(initrd)") }
            lines.append("}")
        }
        return lines
    }

    /// The arguments of the guest's current default kernel line worth keeping (`rhgb quiet`,
    /// `crashkernel=auto`, `selinux=0`...): everything but the kernel path, ro/rw, root=, console=,
    /// anything about Xen, and GRUB 2 variables. From the legacy config if there is one, else from
    /// a GRUB 2 grub.cfg.
    static func keptKernelArguments(_ fs: any GuestFilesystem) throws -> [String] {
        for path in [GuestPaths.grubConf, GuestPaths.menuList, GuestPaths.etcGrubConf] {
            if let lines = try fs.readLines(path) {
                return filtered(defaultLegacyKernelArguments(lines.texts))
            }
        }
        for path in [GuestPaths.grubCfg, "/boot/grub2/grub.cfg"] {
            guard let lines = try fs.readLines(path) else { continue }
            let command = lines.texts.lazy.map { $0.blankSeparatedFields }
                .first { ["linux", "linux16", "linuxefi"].contains($0.first ?? "") }
            if let command { return filtered(command.dropFirst(2).map(String.init)) }
        }
        return []
    }

    /// The kernel line of the `default=N` entry (the first entry when there is no default).
    static func defaultLegacyKernelArguments(_ lines: [String]) -> [String] {
        var defaultIndex = 0
        var kernelLines: [[Substring]] = []
        var inEntry = false
        for line in lines where !line.isCommentOrBlank {
            let fields = line.split(whereSeparator: { $0.isBlankSpace || $0 == "=" })
            guard let keyword = fields.first else { continue }
            switch keyword {
            case "default" where !inEntry:
                defaultIndex = fields.count > 1 ? Int(fields[1]) ?? 0 : 0
            case "title":
                inEntry = true
                kernelLines.append([])
            case "kernel" where inEntry && kernelLines[kernelLines.count - 1].isEmpty:
                kernelLines[kernelLines.count - 1] = Array(line.blankSeparatedFields.dropFirst())
            default:
                break
            }
        }
        let chosen = kernelLines.indices.contains(defaultIndex) ? kernelLines[defaultIndex] : (kernelLines.first ?? [])
        return chosen.dropFirst().map(String.init)
    }

    static func filtered(_ arguments: [String]) -> [String] {
        var kept: [String] = []
        for argument in arguments {
            let lowered = argument.lowercased()
            let dropped = lowered == "ro" || lowered == "rw" || lowered.hasPrefix("root=")
                || lowered.hasPrefix("console=") || lowered.contains("xen") || argument.contains("$")
                || lowered.hasPrefix("boot_image=")
            if !dropped, !kept.contains(argument) { kept.append(argument) }
        }
        return kept
    }
}

/// Whether the guest's network configuration names `eth0` while its udev (systemd's) would give
/// the NIC a predictable name instead, so the network would not come up after the move.
enum NetworkNames {
    static func configurationNamesEth0(_ fs: any GuestFilesystem, initSystem: InitSystem) throws -> Bool {
        guard initSystem == .systemd else { return false }
        var files = ["/etc/network/interfaces", "/etc/sysconfig/network-scripts/ifcfg-eth0"]
        files += try fs.listDirectory("/etc/network/interfaces.d").map { "/etc/network/interfaces.d/\($0)" }
        files += try fs.listDirectory("/etc/netplan").filter { $0.hasSuffix(".yaml") }.map { "/etc/netplan/\($0)" }
        files += try fs.listDirectory("/etc/systemd/network").filter { $0.hasSuffix(".network") }.map { "/etc/systemd/network/\($0)" }
        for path in files {
            guard let lines = try fs.readLines(path) else { continue }
            let mentions = lines.texts.contains { line in
                !line.isCommentOrBlank && line.split(whereSeparator: { " \t:=\"".contains($0) }).contains("eth0")
            }
            if mentions { return true }
        }
        return false
    }
}
