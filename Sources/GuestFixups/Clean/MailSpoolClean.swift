/// Mail spools emptied in place (the mailbox files keep their owners and modes).
struct MailSpoolClean: CleanOperation {
    let name = "mail-spool"
    let summary = "truncate the mailboxes in /var/spool/mail and /var/mail; remove queued mail"
    let isDefault = true

    func apply(_ guest: GuestEditor, _ context: CleanContext) throws {
        for directory in ["/var/spool/mail", "/var/mail"] {
            guard let canonical = try guest.resolve(directory, followLast: true), canonical == directory else { continue }
            for (path, entry) in try guest.walk(directory) { if case .regularFile = entry { try guest.truncate(path) } }
        }
        for queue in ["/var/spool/postfix/deferred", "/var/spool/postfix/active", "/var/spool/postfix/incoming",
                      "/var/spool/clientmqueue", "/var/spool/mqueue"] {
            for (path, entry) in try guest.walk(queue) { if case .regularFile = entry { try guest.remove(path) } }
        }
    }
}
