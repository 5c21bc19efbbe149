/// `~/.ssh` of root and every user (/home/*, and login users' homes elsewhere): authorized keys,
/// known hosts, private keys. An image for someone else must not let its old owner in;
/// `--keep-user-ssh` keeps them for a private move. System accounts' homes are left alone.
struct SSHUserDirClean: CleanOperation {
    let name = "ssh-userdir"
    let summary = "remove ~/.ssh of root and every user (authorized_keys, keys, known_hosts); --keep-user-ssh keeps them"
    let isDefault = true

    func apply(_ guest: GuestEditor, _ context: CleanContext) throws {
        for home in try guest.homes() {
            let path = guest.join(home, ".ssh")
            if try guest.entry(path) != nil { try guest.remove(path) }
        }
    }
}
