/// Kernel and process crash dumps: large, and full of the old owner's memory.
struct CrashDumpsClean: CleanOperation {
    let name = "crash-data"
    let summary = "remove crash dumps (/var/crash, /var/lib/systemd/coredump, /var/spool/abrt)"
    let isDefault = true

    func apply(_ guest: GuestEditor, _ context: CleanContext) throws {
        for directory in ["/var/crash", "/var/lib/systemd/coredump", "/var/spool/abrt", "/var/lib/kdump"] {
            guard case .directory? = try guest.entry(directory) else { continue }
            try guest.removeContents(directory)
        }
    }
}
