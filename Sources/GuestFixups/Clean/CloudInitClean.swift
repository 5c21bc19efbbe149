/// cloud-init's per-instance state: with it gone, cloud-init treats the next boot as a new
/// instance and reads the new cloud's data source (the seed of `convert --cloud-init`).
struct CloudInitClean: CleanOperation {
    let name = "cloud-init"
    let summary = "remove cloud-init's instance state (/var/lib/cloud/instances, instance, sem, data)"
    let isDefault = true

    func apply(_ guest: GuestEditor, _ context: CleanContext) throws {
        try guest.removeContents("/var/lib/cloud/instances")
        for path in ["/var/lib/cloud/instance", "/var/lib/cloud/sem", "/var/lib/cloud/data"] where try guest.entry(path) != nil {
            try guest.remove(path)
        }
    }
}
