/// The disk image formats Rehost writes.
public enum ImageFormat: String, Sendable, Codable, CaseIterable {
    case raw, qcow2, vmdk, vdi, vhd, vhdx, ova

    /// The format a file name implies: `.raw`/`.img`, `.qcow2`, `.vmdk`, `.vdi`, `.vhd`/`.vpc`, `.vhdx`, `.ova`.
    public static func fromExtension(of path: String) -> ImageFormat? {
        guard let dot = path.lastIndex(of: "."), !path[dot...].contains("/") else { return nil }
        switch path[path.index(after: dot)...].lowercased() {
        case "raw", "img": return .raw
        case "qcow2", "qcow": return .qcow2
        case "vmdk": return .vmdk
        case "vdi": return .vdi
        case "vhd", "vpc": return .vhd
        case "vhdx": return .vhdx
        case "ova": return .ova
        default: return nil
        }
    }
}

/// Every format option, with the defaults a user gets without asking. Each writer reads the
/// fields that concern it.
public struct WriterOptions: Sendable {
    // qcow2
    public enum QCOW2Compression: String, Sendable, CaseIterable { case none, deflate, zstd }
    /// 3 (compat 1.1, the default) or 2 (compat 0.10, for old consumers).
    public var qcow2Version = 3
    public var qcow2ClusterSize = 65536
    public var qcow2Compression: QCOW2Compression = .none

    // VMDK
    public enum VMDKSubformat: String, Sendable, CaseIterable { case monolithicSparse, streamOptimized }
    public enum VMDKAdapter: String, Sendable, CaseIterable { case lsilogic, ide, buslogic, lsisas1068 }
    public var vmdkSubformat: VMDKSubformat = .streamOptimized
    public var vmdkAdapter: VMDKAdapter = .lsilogic
    public var vmdkHardwareVersion = 4
    /// A fixed CID for reproducible builds; random by default.
    public var vmdkCID: UInt32? = nil

    // VDI
    public enum VDIVariant: String, Sendable, CaseIterable { case dynamic, fixed }
    public var vdiVariant: VDIVariant = .dynamic

    // VHD
    public enum VHDVariant: String, Sendable, CaseIterable { case fixed, dynamic }
    public var vhdVariant: VHDVariant = .dynamic

    // VHDX
    public enum VHDXVariant: String, Sendable, CaseIterable { case fixed, dynamic }
    public var vhdxVariant: VHDXVariant = .dynamic
    /// 32 MiB, as Hyper-V makes them (and qemu for disks over 100 GiB); 1 MiB to 256 MiB.
    public var vhdxBlockSize: UInt32 = 32 << 20

    /// The image's UUID (VDI, VHD, VMDK's ddb.uuid): fresh per image by default, fixed for
    /// reproducible builds.
    public var uuid: [UInt8]? = nil

    // OVA
    public enum OVAProfile: String, Sendable, CaseIterable { case vmware, virtualbox }
    public enum ManifestDigest: String, Sendable, CaseIterable { case sha256, sha1 }
    public var ovaProfile: OVAProfile = .vmware
    public var ovaManifest: ManifestDigest = .sha256
    /// The firmware the OVF declares the machine boots with (VMware's `firmware` setting).
    public enum Firmware: String, Sendable, CaseIterable { case bios, efi }
    public var firmware: Firmware = .bios
    public var vmName = "rehost-vm"
    public var cpus = 1
    public var memoryMiB = 1024
    /// VMware's guestOS identifier (e.g. "rhel5_64Guest") or VirtualBox's OS type ("RedHat_64").
    public var guestOS: String? = nil

    /// The level of a whole-file compression (`x.raw.gz`, `.xz`, `.zst`); nil: each one's
    /// default (gzip 6, xz 6, zstd 3).
    public var streamCompressionLevel: Int32? = nil

    /// Compression effort (zlib/libdeflate 1-9, zstd 1-19) for formats that compress.
    public var compressionLevel: Int32 = 6

    public init() {}
}
