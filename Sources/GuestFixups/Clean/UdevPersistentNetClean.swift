/// udev's persistent-net rules, which pin eth0 to the old MAC address: on the new machine the
/// NIC would come up as eth1 and the eth0 configuration would not apply.
struct UdevPersistentNetClean: CleanOperation {
    let name = "udev-persistent-net"
    let summary = "remove /etc/udev/rules.d/70-persistent-net.rules (eth0 pinned to the old MAC address)"
    let isDefault = true

    func apply(_ guest: GuestEditor, _ context: CleanContext) throws {
        for path in ["/etc/udev/rules.d/70-persistent-net.rules", "/etc/udev/rules.d/75-persistent-net-generator.rules.bak"] {
            if case .regularFile? = try guest.entry(path) { try guest.remove(path) }
        }
    }
}
