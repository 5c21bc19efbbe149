/// The saved random seed: every copy of the image would start its pool from the same bytes.
struct RandomSeedClean: CleanOperation {
    let name = "random-seed"
    let summary = "remove the saved random seed (/var/lib/random-seed, systemd's, urandom's)"
    let isDefault = true

    func apply(_ guest: GuestEditor, _ context: CleanContext) throws {
        for path in ["/var/lib/random-seed", "/var/lib/systemd/random-seed", "/var/lib/urandom/random-seed", "/var/run/random-seed"] {
            if case .regularFile? = try guest.entry(path) { try guest.remove(path) }
        }
    }
}
