/// Every log under /var/log truncated in place: the files stay, with their owners, modes and
/// labels, so the daemons that write them need not make them again. systemd's binary journals
/// are removed instead (a truncated journal file is a corrupt one).
struct LogFilesClean: CleanOperation {
    let name = "logfiles"
    let summary = "truncate every file under /var/log in place (owners, modes, labels kept); remove systemd journals"
    let isDefault = true

    func apply(_ guest: GuestEditor, _ context: CleanContext) throws {
        for (path, entry) in try guest.walk("/var/log") {
            guard case .regularFile = entry else { continue }
            if path.hasPrefix("/var/log/journal/") { try guest.remove(path) } else { try guest.truncate(path) }
        }
    }
}
