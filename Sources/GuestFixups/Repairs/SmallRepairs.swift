/// /etc/securetty: root may log in on the serial console. The Xen consoles stay listed (harmless).
/// A guest without the file lets root log in anywhere, so a missing file is left missing.
enum SecurettyRepair {
    static func run(_ context: inout RepairContext) throws {
        try context.edit(GuestPaths.securetty) { lines in
            guard !lines.texts.contains(where: { $0.trimmingCharacters(in: " \t") == "ttyS0" }) else { return }
            lines.append("ttyS0")
        }
    }
}

/// `alias scsi_hostadapter xenblk` and `alias eth0 xennet` (and their newer spellings) name the
/// target's drivers instead; only the module word changes, the rest of the line is kept.
enum ModprobeRepair {
    static func run(_ context: inout RepairContext) throws {
        let target = context.options.target
        for path in try GuestPaths.modprobeFiles(context.fs) {
            try context.edit(path) { lines in
                for index in lines.lines.indices {
                    var text = lines.text(index)
                    guard let alias = GuestPaths.moduleAlias(in: text),
                          let kind = GuestPaths.xenAliasKind(alias) else { continue }
                    text.replaceSubrange(alias.moduleRange, with: kind == .block ? target.blockDriver : target.netDriver)
                    lines.replace(index, with: text)
                }
            }
        }
    }
}

/// blkid caches remember the Xen device names and would be trusted over the new disk's.
enum BlkidCacheRepair {
    static func run(_ context: inout RepairContext) throws {
        for path in GuestPaths.blkidCaches {
            try context.removeIfPresent(path)
        }
    }
}

/// The new NIC has a new MAC address: an ifcfg file pinned to the old one is not brought up, and a
/// persistent-net rule would rename the new NIC eth1. SUSE's MAC-named ifcfg-eth-id-* files are not
/// renamed.
enum NetworkRepair {
    static func run(_ context: inout RepairContext) throws {
        for path in try GuestPaths.ifcfgFiles(context.fs) {
            try context.edit(path) { lines in
                lines.lines = lines.lines.indices
                    .filter { !GuestPaths.isHardwareAddressLine(lines.text($0)) }
                    .map { lines.lines[$0] }
            }
        }
        for path in try GuestPaths.persistentNetRules(context.fs) {
            try context.removeIfPresent(path)
        }
    }
}
