/// DHCP client leases: the old network's addresses, which a client would ask for again.
struct DHCPLeasesClean: CleanOperation {
    let name = "dhcp-client-state"
    let summary = "remove DHCP leases (dhclient, dhcpcd, NetworkManager, systemd-networkd)"
    let isDefault = true
    static let directories = ["/var/lib/dhclient", "/var/lib/dhcp", "/var/lib/dhcp3", "/var/lib/dhcpcd", "/var/db/dhcpcd",
                              "/var/lib/NetworkManager", "/var/lib/wicked", "/run/systemd/netif/leases"]

    func apply(_ guest: GuestEditor, _ context: CleanContext) throws {
        for directory in Self.directories {
            for path in try guest.matching(directory, { $0.contains("lease") || $0.hasSuffix(".lease") }) {
                if case .regularFile? = try guest.entry(path) { try guest.remove(path) }
            }
        }
    }
}
