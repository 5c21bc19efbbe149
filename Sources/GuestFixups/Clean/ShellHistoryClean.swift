/// Shell and tool histories in root's and every user's home directory.
struct ShellHistoryClean: CleanOperation {
    let name = "bash-history"
    let summary = "remove shell histories (.bash_history, .sh_history, .zsh_history, .history, .ash_history) of root and every user"
    let isDefault = true
    static let files = [".bash_history", ".sh_history", ".zsh_history", ".history", ".ash_history", ".lesshst", ".python_history", ".mysql_history"]

    func apply(_ guest: GuestEditor, _ context: CleanContext) throws {
        for home in try guest.homes() {
            for name in Self.files {
                let path = guest.join(home, name)
                if let entry = try guest.entry(path), entry != .directory { try guest.remove(path) }
            }
        }
    }
}
