import KernelPackages

/// What `GuestInspector` found in a guest; printed by `rehost inspect` (as JSON on request).
public struct GuestReport: Codable, Sendable, Equatable {
    public var os: OperatingSystem
    /// Every /boot/vmlinuz-*, sorted newest first.
    public var kernels: [Kernel]
    /// The target the verdicts below were made for.
    public var target: Target
    /// The newest kernel that boots on the target (now, or after the initrd repair); nil if none does.
    public var bootableKernel: Kernel?
    /// Why no kernel boots on the target; nil if one does.
    public var kernelProblem: String?
    public var xenTraits: [XenTrait]
    /// Bootloader configurations present: /boot/grub/grub.conf, menu.lst, grub.cfg, /boot/grub2/grub.cfg, /etc/grub.conf.
    public var bootloaderConfigs: [String]
    public var initSystem: InitSystem

    public init(os: OperatingSystem, kernels: [Kernel], target: Target, bootableKernel: Kernel?, kernelProblem: String?,
                xenTraits: [XenTrait], bootloaderConfigs: [String], initSystem: InitSystem) {
        self.os = os
        self.kernels = kernels
        self.target = target
        self.bootableKernel = bootableKernel
        self.kernelProblem = kernelProblem
        self.xenTraits = xenTraits
        self.bootloaderConfigs = bootloaderConfigs
        self.initSystem = initSystem
    }
}

public enum OSFamily: String, Codable, Sendable {
    case redhat, debian, suse, other
}

public struct OperatingSystem: Codable, Sendable, Equatable {
    public var family: OSFamily
    /// A short name for boot menu titles: "CentOS", "Red Hat Enterprise Linux Server", "Debian GNU/Linux".
    public var name: String
    /// The version as the guest writes it: "5.11", "6.10", "squeeze/sid"; nil if unknown.
    public var version: String?
    public var majorVersion: Int?
    /// The file the answer came from; nil if nothing was recognised.
    public var source: String?

    public init(family: OSFamily, name: String, version: String?, majorVersion: Int?, source: String?) {
        self.family = family
        self.name = name
        self.version = version
        self.majorVersion = majorVersion
        self.source = source
    }

    static let unknown = OperatingSystem(family: .other, name: "Linux", version: nil, majorVersion: nil, source: nil)
}

public struct Kernel: Codable, Sendable, Equatable {
    /// The part after "vmlinuz-": "2.6.18-398.el5". A name is a hint only; `image` says what it is.
    public var version: String
    public var path: String
    /// The matching initrd's path, if any.
    public var initrd: String?
    public var size: UInt64
    /// The image judged by its bytes: a bzImage boots under GRUB, a Xen PV ELF does not.
    public var image: KernelImage
    /// `uname -r` once it runs (from the image's version string), naming its modules directory.
    public var release: String
    /// `/lib/modules/<release>` when the guest has it.
    public var modulesDirectory: String?
    public var initrdDetails: InitrdSummary?
    /// Whether it boots on each target, and why.
    public var verdicts: [TargetVerdict]
    /// The public clouds' network drivers it has, as a module or built in: `ena` (AWS's Elastic
    /// Network Adapter) and `ixgbevf` (Intel 82599 virtual functions, AWS's "simple" SR-IOV).
    public var cloudNetworkDrivers: [String] = []

    /// The drivers `cloudNetworkDrivers` looks for.
    public static let cloudNetworkDriverNames = ["ena", "ixgbevf"]

    /// A Xen PV image: it boots only as a Xen paravirtual guest.
    public var xenOnly: Bool { image.format == .xenPV }

    public func verdict(for target: Target) -> TargetVerdict? {
        verdicts.first { $0.target == target }
    }

    public init(version: String, path: String, initrd: String?, size: UInt64, image: KernelImage, release: String,
                modulesDirectory: String?, initrdDetails: InitrdSummary?, verdicts: [TargetVerdict]) {
        self.version = version
        self.path = path
        self.initrd = initrd
        self.size = size
        self.image = image
        self.release = release
        self.modulesDirectory = modulesDirectory
        self.initrdDetails = initrdDetails
        self.verdicts = verdicts
    }
}

/// A piece of Xen-specific configuration found in the guest.
public struct XenTrait: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable {
        case consoleGetty, secureTTY, modprobeAlias, fstabDevice, hardwareAddress, persistentNetRules, blkidCache
    }

    public var kind: Kind
    public var file: String
    /// 1-based; nil when the whole file is the trait.
    public var line: Int?
    public var text: String?

    public init(kind: Kind, file: String, line: Int?, text: String?) {
        self.kind = kind
        self.file = file
        self.line = line
        self.text = text
    }
}

public enum InitSystem: String, Codable, Sendable {
    case sysvinit, upstart, systemd, unknown
}
