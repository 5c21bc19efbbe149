/// One named clean operation of `rehost clean` and `convert --clean`: it removes or resets one
/// kind of state an image should not carry to another machine or owner, records every file it
/// removes or changes, and changes nothing the second time (idempotent).
public protocol CleanOperation: Sendable {
    /// The name on the command line (`--operations logfiles,-tmp-files`).
    var name: String { get }
    /// One line for `--list-operations`.
    var summary: String { get }
    /// Whether it runs when no `--operations` are given.
    var isDefault: Bool { get }
    func apply(_ guest: GuestEditor, _ context: CleanContext) throws
}

/// What the operations share: the init system (for first-boot jobs) and the guest's facts.
public struct CleanContext: Sendable {
    public var initSystem: InitSystem
    public init(initSystem: InitSystem) { self.initSystem = initSystem }
}

public enum CleanOperations {
    /// Every operation, in the order they run.
    public static let all: [any CleanOperation] = [
        ShellHistoryClean(), SSHUserDirClean(), SSHHostKeysClean(), MachineIDClean(), DHCPLeasesClean(),
        UdevPersistentNetClean(), LogFilesClean(), MailSpoolClean(), TmpFilesClean(), PackageCacheClean(),
        RandomSeedClean(), CloudInitClean(), RCLocalCloudClean(), CrashDumpsClean(),
    ]

    public static var names: [String] { all.map(\.name) }

    /// The operations chosen by a list such as `defaults,-logfiles,tmp-files` (`defaults` and
    /// `all` name groups; a leading `-` removes). An empty list means the defaults.
    public static func select(_ spec: [String]) throws -> [any CleanOperation] {
        var chosen: Set<String> = []
        let items = spec.flatMap { $0.split(separator: ",").map(String.init) }.filter { !$0.isEmpty }
        if items.isEmpty || items.allSatisfy({ $0.hasPrefix("-") }) { chosen = Set(all.filter(\.isDefault).map(\.name)) }
        for item in items {
            let remove = item.hasPrefix("-")
            let name = remove ? String(item.dropFirst()) : item
            let names: [String]
            switch name {
            case "defaults": names = all.filter(\.isDefault).map(\.name)
            case "all": names = self.names
            default:
                guard self.names.contains(name) else { throw GuestEditError.unknownOperation(name: name, known: self.names + ["defaults", "all"]) }
                names = [name]
            }
            if remove { chosen.subtract(names) } else { chosen.formUnion(names) }
        }
        return all.filter { chosen.contains($0.name) }
    }

    /// Runs the operations in order, then labels what they created.
    public static func run(_ operations: [any CleanOperation], on guest: GuestEditor, context: CleanContext) throws {
        for operation in operations {
            guest.operation = operation.name
            try operation.apply(guest, context)
        }
        try guest.labelCreated()
    }
}

extension CleanContext {
    /// The context of a guest as it is: its init system.
    public static func of(_ fs: any GuestFilesystem) throws -> CleanContext {
        CleanContext(initSystem: try GuestInspector.detectInitSystem(fs))
    }
}
