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
