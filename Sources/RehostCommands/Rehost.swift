import ArgumentParser

public struct Rehost: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "rehost",
        abstract: "Convert Xen instance copies into bootable KVM/VirtualBox disks, without root.",
        subcommands: []
    )
    public init() {}
}
