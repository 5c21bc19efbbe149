/// Everything inside /tmp and /var/tmp (the directories themselves stay, mode 1777 and all).
struct TmpFilesClean: CleanOperation {
    let name = "tmp-files"
    let summary = "remove everything inside /tmp and /var/tmp (the directories stay)"
    let isDefault = true

    func apply(_ guest: GuestEditor, _ context: CleanContext) throws {
        for directory in ["/tmp", "/var/tmp"] {
            guard case .directory? = try guest.entry(directory) else { continue }
            try guest.removeContents(directory)
        }
    }
}
