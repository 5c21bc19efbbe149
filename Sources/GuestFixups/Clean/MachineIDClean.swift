/// /etc/machine-id emptied, not removed: systemd then makes a new one at first boot (a missing
/// file would make it boot as "first boot" with presets, an empty one just gets a new ID).
struct MachineIDClean: CleanOperation {
    let name = "machine-id"
    let summary = "empty /etc/machine-id (kept, so systemd writes a new ID at boot) and remove D-Bus's own copy"
    let isDefault = true

    func apply(_ guest: GuestEditor, _ context: CleanContext) throws {
        try guest.truncate("/etc/machine-id", action: .emptied)
        // D-Bus's copy, when a file of its own (a symlink to /etc/machine-id is left).
        if case .regularFile? = try guest.entry("/var/lib/dbus/machine-id") { try guest.remove("/var/lib/dbus/machine-id") }
    }
}
