/// Downloaded packages and package-index caches: yum, dnf, apt, zypper. Files only; the
/// directories the tools expect (apt's archives/partial) stay.
struct PackageCacheClean: CleanOperation {
    let name = "package-manager-cache"
    let summary = "remove cached packages and indexes (yum, dnf, apt, zypper); directories stay"
    let isDefault = true
    static let directories = ["/var/cache/yum", "/var/cache/dnf", "/var/cache/apt", "/var/cache/zypp/packages", "/var/cache/zypp/raw"]

    func apply(_ guest: GuestEditor, _ context: CleanContext) throws {
        for directory in Self.directories {
            for (path, entry) in try guest.walk(directory) where entry != .directory { try guest.remove(path) }
        }
    }
}
