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
