import Initrd

/// Where a driver a kernel needs comes from.
public struct DriverStatus: Codable, Sendable, Equatable {
    public enum State: String, Codable, Sendable {
        /// In the kernel image: nothing to load.
        case builtIn = "built-in"
        /// In the initrd, which loads it before it looks for root.
        case inInitrd = "in initrd"
        /// A module in the guest's /lib/modules/<release>/ that the initrd does not load yet.
        case module
        /// Neither built in nor in the guest.
        case missing
    }

    public var name: String
    public var state: State
    /// For `module`: its path in the guest, with its compression suffix (".ko.xz").
    public var path: String?

    public init(name: String, state: State, path: String? = nil) {
        self.name = name
        self.state = state
        self.path = path
    }
}

/// Whether a kernel reaches its root filesystem over one disk bus.
public struct BusVerdict: Codable, Sendable, Equatable {
    public var bus: String
    /// The bus's own drivers, which load their dependencies.
    public var requested: [String]
    /// The drivers for the bus with their dependencies, in load order.
    public var drivers: [DriverStatus]

    /// Every driver built in or loaded by the initrd.
    public var ready: Bool { drivers.allSatisfy { $0.state == .builtIn || $0.state == .inInitrd } }
    /// Nothing missing: what is not loaded yet can be added to the initrd.
    public var complete: Bool { !drivers.contains { $0.state == .missing } }
    public var toAdd: [String] { drivers.filter { $0.state == .module }.map(\.name) }
    public var missing: [String] { drivers.filter { $0.state == .missing }.map(\.name) }
}

/// Whether a kernel boots on a target, and why.
public struct TargetVerdict: Codable, Sendable, Equatable {
    public enum Outcome: String, Codable, Sendable {
        /// Boots as the guest stands.
        case boots
        /// Boots once the initrd repair has added the drivers listed in the buses.
        case bootsAfterRepair = "boots after repair"
        case doesNotBoot = "does not boot"
    }

    public var target: Target
    public var outcome: Outcome
    /// One line: "virtio_blk is loaded by its initrd", "Xen PV image: ...".
    public var because: String
    /// The target's disk buses, the one its outputs declare first; the first decides the outcome.
    public var buses: [BusVerdict]
    /// The root filesystem's driver (ext3, or ext4 serving ext3).
    public var filesystem: BusVerdict?

    public var boots: Bool { outcome != .doesNotBoot }
}

public struct InitrdSummary: Codable, Sendable, Equatable {
    public var path: String
    public var family: InitrdFamily?
    /// The members' compressions, "uncompressed + zstd".
    public var layout: String?
    /// The kernel release its modules are for.
    public var release: String?
    public var moduleCount: Int
    /// Why it could not be read, if it could not.
    public var problem: String?
}
