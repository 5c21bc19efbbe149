/// What `GuestInspector` found in a guest; printed by `rehost inspect` (as JSON on request).
public struct GuestReport: Codable, Sendable, Equatable {
    public var os: OperatingSystem
    /// Every /boot/vmlinuz-*, sorted newest first.
    public var kernels: [Kernel]
    /// The newest kernel that is not Xen-only; nil if there is none.
    public var bootableKernel: Kernel?
    /// Why the guest cannot boot off Xen as it stands (only Xen kernels, or none); nil if it can.
    public var kernelProblem: String?
    public var xenTraits: [XenTrait]
    /// Bootloader configurations present: /boot/grub/grub.conf, menu.lst, grub.cfg, /boot/grub2/grub.cfg, /etc/grub.conf.
    public var bootloaderConfigs: [String]
    public var initSystem: InitSystem

    public init(os: OperatingSystem, kernels: [Kernel], bootableKernel: Kernel?, kernelProblem: String?,
                xenTraits: [XenTrait], bootloaderConfigs: [String], initSystem: InitSystem) {
        self.os = os
        self.kernels = kernels
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
    /// The part after "vmlinuz-": "2.6.18-398.el5".
    public var version: String
    public var path: String
    /// The matching initrd's path, if any.
    public var initrd: String?
    public var size: UInt64
    /// A paravirtual-only Xen kernel (`...xen`, `-xenU`, old AWS `-ec2`): it cannot boot on hardware.
    public var xenOnly: Bool

    public init(version: String, path: String, initrd: String?, size: UInt64, xenOnly: Bool) {
        self.version = version
        self.path = path
        self.initrd = initrd
        self.size = size
        self.xenOnly = xenOnly
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
