import ArgumentParser
import GuestFixups

/// `convert --cloud-init USERDATA [--meta-data FILE] [--network-config FILE]`: a NoCloud seed
/// written inside the converted guest (GuestFixups/NoCloudSeed.swift).
struct CloudInitOptions: ParsableArguments {
    @Option(name: .customLong("cloud-init"),
            help: ArgumentHelp("Write this user data as a cloud-init NoCloud seed inside the guest (/var/lib/cloud/seed/nocloud/user-data, with meta-data, and /etc/cloud/cloud.cfg.d/99_rehost_nocloud.cfg selecting NoCloud), so cloud-init configures the guest at its first boot.",
                               valueName: "user-data"))
    var userData: String?

    @Option(name: .customLong("meta-data"),
            help: ArgumentHelp("With --cloud-init: the NoCloud meta-data (default: an instance id derived from the seed, `iid-rehost-...`).", valueName: "file"))
    var metaData: String?

    @Option(name: .customLong("network-config"),
            help: ArgumentHelp("With --cloud-init: a NoCloud network-config (cloud-init network configuration v1 or v2).", valueName: "file"))
    var networkConfig: String?

    func validate() throws {
        if userData == nil, metaData != nil || networkConfig != nil {
            throw ValidationError("--meta-data and --network-config go with --cloud-init USERDATA")
        }
    }

    /// The seed, its files read; nil without --cloud-init.
    func seed() throws -> NoCloudSeed? {
        guard let userData else { return nil }
        return NoCloudSeed(userData: try readWholeFile(userData), metaData: try metaData.map(readWholeFile),
                           networkConfig: try networkConfig.map(readWholeFile))
    }
}
