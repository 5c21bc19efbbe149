/// Every log under /var/log truncated in place: the files stay, with their owners, modes and
/// labels, so the daemons that write them need not make them again. systemd's binary journals
/// and compressed rotated logs (`messages-20140101.gz`) are removed instead: an empty journal or
/// gzip file is a corrupt one.
struct LogFilesClean: CleanOperation {
    let name = "logfiles"
    let summary = "truncate every file under /var/log in place (owners, modes, labels kept); remove systemd journals and compressed rotated logs"
    static let compressed = [".gz", ".xz", ".bz2", ".zst", ".lz4", ".Z"]
    let isDefault = true

    func apply(_ guest: GuestEditor, _ context: CleanContext) throws {
        for (path, entry) in try guest.walk("/var/log") {
            guard case .regularFile = entry else { continue }
            if path.hasPrefix("/var/log/journal/") || Self.compressed.contains(where: path.hasSuffix) {
                try guest.remove(path)
            } else {
                try guest.truncate(path)
            }
        }
    }
}
