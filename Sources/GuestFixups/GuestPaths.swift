/// Where the files the inspection and the repairs care about live, and how to recognise their
/// Xen-specific lines. Shared so that `inspect` reports exactly what the repairs change.
enum GuestPaths {
    static let inittab = "/etc/inittab"
    static let securetty = "/etc/securetty"
    static let fstab = "/etc/fstab"
    static let blkidCaches = ["/etc/blkid/blkid.tab", "/etc/blkid/blkid.tab.old", "/etc/blkid.tab", "/etc/blkid.tab.old"]
    static let udevRules = "/etc/udev/rules.d"
    static let ifcfgDirectories = ["/etc/sysconfig/network-scripts", "/etc/sysconfig/network"]
    static let grubConf = "/boot/grub/grub.conf"
    static let menuList = "/boot/grub/menu.lst"
    static let grubCfg = "/boot/grub/grub.cfg"
    static let etcGrubConf = "/etc/grub.conf"
    static let bootloaderConfigs = [grubConf, menuList, grubCfg, "/boot/grub2/grub.cfg", etcGrubConf]

    static let xenBlockModules: Set<String> = ["xenblk", "xen-blkfront", "xen_blkfront"]
    static let xenNetModules: Set<String> = ["xennet", "xen-netfront", "xen_netfront", "xen_vnif"]

    /// modprobe.conf, modprobe.conf.local and every regular file in /etc/modprobe.d. Symlinks are
    /// left alone: editing through one would change a file the guest shares elsewhere.
    static func modprobeFiles(_ fs: any GuestFilesystem) throws -> [String] {
        var files: [String] = []
        for path in ["/etc/modprobe.conf", "/etc/modprobe.conf.local"] where try fs.isRegularFile(path) {
            files.append(path)
        }
        for name in try fs.listDirectory("/etc/modprobe.d") where try fs.isRegularFile("/etc/modprobe.d/\(name)") {
            files.append("/etc/modprobe.d/\(name)")
        }
        return files
    }

    /// systemd getty units enabled on a Xen console: `serial-getty@hvc0.service` links in the
    /// `*.wants` directories under /etc/systemd/system.
    static func xenSerialGettyUnits(_ fs: any GuestFilesystem) throws -> [String] {
        var units: [String] = []
        let root = "/etc/systemd/system"
        for directory in try fs.listDirectory(root) where directory.hasSuffix(".wants") {
            for name in try fs.listDirectory("\(root)/\(directory)") {
                guard name.hasSuffix(".service"), let at = name.firstIndex(of: "@") else { continue }
                let instance = name[name.index(after: at)...].dropLast(".service".count)
                if name.hasPrefix("serial-getty@") || name.hasPrefix("getty@"), isXenConsole(instance) {
                    units.append("\(root)/\(directory)/\(name)")
                }
            }
        }
        return units
    }

    static func ifcfgFiles(_ fs: any GuestFilesystem) throws -> [String] {
        var files: [String] = []
        for directory in ifcfgDirectories {
            for name in try fs.listDirectory(directory) where name.hasPrefix("ifcfg-") {
                let path = "\(directory)/\(name)"
                if try fs.isRegularFile(path) { files.append(path) }
            }
        }
        return files
    }

    /// udev rules that pin interface names to the Xen NIC's MAC address. The rules that switch the
    /// generator off ("...persistent-net-generator.rules", often a link to /dev/null) are kept.
    static func persistentNetRules(_ fs: any GuestFilesystem) throws -> [String] {
        try fs.listDirectory(udevRules)
            .filter { $0.contains("persistent-net") && !$0.contains("generator") }
            .map { "\(udevRules)/\($0)" }
    }

    /// `alias NAME MODULE` split into its parts, with the module's position for an in-place edit.
    struct ModuleAlias {
        var name: Substring
        var module: Substring
        var moduleRange: Range<String.Index>
    }

    static func moduleAlias(in line: String) -> ModuleAlias? {
        guard !line.isCommentOrBlank else { return nil }
        let fields = line.blankSeparatedFields
        guard fields.count >= 3, fields[0] == "alias" else { return nil }
        return ModuleAlias(name: fields[1], module: fields[2], moduleRange: fields[2].startIndex..<fields[2].endIndex)
    }

    enum XenAliasKind { case block, net }

    static func xenAliasKind(_ alias: ModuleAlias) -> XenAliasKind? {
        let module = String(alias.module)
        if alias.name.hasPrefix("scsi_hostadapter") && xenBlockModules.contains(module) { return .block }
        if alias.name.hasPrefix("eth") && xenNetModules.contains(module) { return .net }
        return nil
    }

    /// An fstab device a Xen guest had and the converted single-partition disk does not.
    static func isOldBlockDevice(_ device: Substring) -> Bool {
        ["/dev/xvd", "/dev/sd", "/dev/hd", "/dev/vd"].contains { device.hasPrefix($0) }
    }

    /// Serial and Xen consoles a getty may run on in /etc/inittab.
    static func isXenConsole(_ name: Substring) -> Bool {
        let name = name.hasPrefix("/dev/") ? name.dropFirst(5) : name
        for prefix in ["xvc", "hvc"] where name.hasPrefix(prefix) {
            let rest = name.dropFirst(prefix.count)
            return !rest.isEmpty && rest.allSatisfy(\.isNumber)
        }
        return false
    }

    /// The address lines the ifcfg files pin to the Xen NIC.
    static func isHardwareAddressLine(_ line: String) -> Bool {
        let rest = line.withoutLeadingBlanks
        return ["HWADDR", "MACADDR"].contains { key in
            rest.hasPrefix(key) && rest.dropFirst(key.count).withoutLeadingBlanks.first == "="
        }
    }
}

/// One /etc/inittab entry, `id:runlevels:action:process`.
struct InittabEntry {
    var id: Substring
    var process: Substring

    init?(_ line: String) {
        guard !line.isCommentOrBlank else { return nil }
        let fields = line.split(separator: ":", maxSplits: 3, omittingEmptySubsequences: false)
        guard fields.count == 4 else { return nil }
        id = fields[0].withoutLeadingBlanks
        process = fields[3]
    }

    /// The program and its arguments, if the process is a getty.
    var getty: (program: Substring, arguments: [Substring])? {
        let words = process.blankSeparatedFields
        guard let program = words.first, program.split(separator: "/").last?.contains("getty") == true else { return nil }
        return (program, Array(words.dropFirst()))
    }

    var isXenConsoleGetty: Bool {
        getty?.arguments.contains(where: GuestPaths.isXenConsole) ?? false
    }

    var isSerialGetty: Bool {
        getty?.arguments.contains { $0 == "ttyS0" || $0 == "/dev/ttyS0" } ?? false
    }
}

extension GuestFilesystem {
    func isRegularFile(_ path: String) throws -> Bool {
        if case .regularFile? = try entry(at: path) { return true }
        return false
    }

    func exists(_ path: String) throws -> Bool {
        try entry(at: path) != nil
    }

    func readLines(_ path: String) throws -> TextLines? {
        try readFile(path).map(TextLines.init(bytes:))
    }
}
