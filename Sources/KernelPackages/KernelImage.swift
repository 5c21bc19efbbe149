import Compression
import ImageCore
import KernelModules

/// A kernel image file judged by its bytes, never by its name.
///
/// ```
/// bzImage (x86 boot protocol, Documentation/x86/boot.rst):
///   0x000 "MZ" when the image carries an EFI stub (PE header at le32@0x3C)
///   0x1F1 setup_sects (0 means 4)        0x1FE 55 AA
///   0x202 "HdrS"   0x206 le16 protocol   0x20E le16 -> version string at +0x200
///   0x236 xloadflags (2.12+)             0x248 le32 payload offset, 0x24C le32 length (2.08+)
/// Xen PV (classic 2.6.18-xen: "vmlinuz = gzip(stripped vmlinux)"):
///   1F 8B ... -> ELF, with "Xen" notes or a __xen_guest section, and no HdrS
/// ```
/// A bzImage boots under GRUB on BIOS (a pvops kernel also runs as a Xen PV guest, which changes
/// nothing here); an ELF only Xen's domain builder loads.
public struct KernelImage: Sendable, Equatable, Codable {
    public enum Format: String, Sendable, Codable {
        /// An x86 boot-protocol image: GRUB, SYSLINUX and qemu -kernel load it.
        case bzImage
        /// An ELF vmlinux (raw or compressed) with Xen notes or `__xen_guest`: boots only as a Xen PV guest.
        case xenPV
        /// An ELF vmlinux with no Xen markers and no boot header: no BIOS boot loader loads it.
        case elf
        /// None of the above (truncated, another architecture, not a kernel).
        case unknown
    }

    public var format: Format
    /// The boot protocol version of a bzImage, "2.15".
    public var bootProtocol: String?
    /// What `uname -r` reports once it runs: the first word of the version string.
    public var release: String?
    /// The version string the image carries: "6.1.0-28-amd64 (debian-kernel@...) #1 SMP ...".
    public var banner: String?
    /// A PE header in front of the boot header: firmware can start it as an EFI application.
    public var efiStub: Bool
    /// How the compressed kernel inside a bzImage, or the whole Xen PV image, is compressed.
    public var compression: String?
    /// One line saying why the image was judged so.
    public var detail: String

    /// A bzImage of boot protocol 2.03 or later, which GRUB 2's `linux` command (32-bit boot) loads.
    public var bootsOnBIOS: Bool

    init(format: Format, bootProtocol: String? = nil, release: String? = nil, banner: String? = nil,
         efiStub: Bool, compression: String?, detail: String, bootsOnBIOS: Bool = false) {
        self.format = format
        self.bootProtocol = bootProtocol
        self.release = release
        self.banner = banner
        self.efiStub = efiStub
        self.compression = compression
        self.detail = detail
        self.bootsOnBIOS = bootsOnBIOS
    }

    /// The largest vmlinux a compressed Xen PV image may expand to here; a real one is 5–60 MiB.
    public static let expandedLimit = 512 << 20

    public static func identify(_ bytes: [UInt8], path: String) -> KernelImage {
        if let image = bzImage(bytes) { return image }
        if bytes.starts(with: [0x7F, 0x45, 0x4C, 0x46]) { return fromELF(bytes, path: path, compression: nil) }
        if let compression = StreamCompression.detect(bytes.prefix(8)), compression != .lzo {
            let expanded: [UInt8]
            do {
                expanded = try bytes.withUnsafeBytes {
                    try compression.decompressMember($0, name: path, baseOffset: 0, limit: expandedLimit).output
                }
            } catch {
                return KernelImage(format: .unknown, efiStub: false, compression: compression.rawValue,
                                   detail: "\(compression.rawValue)-compressed, but it does not expand: \(error)")
            }
            guard expanded.starts(with: [0x7F, 0x45, 0x4C, 0x46]) else {
                return KernelImage(format: .unknown, efiStub: false, compression: compression.rawValue,
                                   detail: "\(compression.rawValue)-compressed data that is not an ELF kernel and has no x86 boot header")
            }
            return fromELF(expanded, path: path, compression: compression.rawValue)
        }
        return KernelImage(format: .unknown, efiStub: false, compression: nil,
                           detail: "no x86 boot header (HdrS at 0x202), not an ELF, not compressed: not a kernel image Rehost recognises")
    }

    private static func bzImage(_ bytes: [UInt8]) -> KernelImage? {
        guard bytes.count >= 0x250, bytes[0x1FE] == 0x55, bytes[0x1FF] == 0xAA,
              Array(bytes[0x202..<0x206]) == Array("HdrS".utf8) else { return nil }
        let version = bytes.loadLE(UInt16.self, at: 0x206)
        let protocolText = "\(version >> 8).\(String(format2: version & 0xFF))"
        var banner: String?
        let versionPointer = Int(bytes.loadLE(UInt16.self, at: 0x20E))
        if versionPointer != 0, versionPointer + 0x200 < bytes.count {
            let start = versionPointer + 0x200
            let end = bytes[start...].prefix(256).firstIndex(of: 0) ?? min(bytes.count, start + 256)
            banner = printable(bytes[start..<end])
        }
        var efiStub = false
        if bytes[0] == 0x4D, bytes[1] == 0x5A {
            let peOffset = Int(bytes.loadLE(UInt32.self, at: 0x3C))
            efiStub = peOffset > 0 && peOffset + 4 <= bytes.count && Array(bytes[peOffset..<peOffset + 4]) == [0x50, 0x45, 0, 0]
        }
        var compression: String?
        if version >= 0x0208 {
            let setupSectors = bytes[0x1F1] == 0 ? 4 : Int(bytes[0x1F1])
            let payload = (setupSectors + 1) * 512 + Int(bytes.loadLE(UInt32.self, at: 0x248))
            if payload < bytes.count { compression = StreamCompression.detect(bytes[payload...].prefix(8))?.rawValue }
        }
        var detail = "x86 boot header (HdrS) with boot protocol \(protocolText)"
        if efiStub { detail += ", EFI stub" }
        if version < 0x0203 { detail += "; protocol older than 2.03, which GRUB's linux command refuses" }
        return KernelImage(format: .bzImage, bootProtocol: protocolText, release: banner.flatMap(firstWord),
                           banner: banner, efiStub: efiStub, compression: compression, detail: detail,
                           bootsOnBIOS: version >= 0x0203)
    }

    private static func fromELF(_ bytes: [UInt8], path: String, compression: String?) -> KernelImage {
        let banner = linuxBanner(in: bytes)
        let wrapped = compression.map { "\($0)-compressed ELF" } ?? "ELF"
        guard let elf = try? ELFFile(bytes: bytes, name: path) else {
            return KernelImage(format: .unknown, release: banner.flatMap(firstWord), banner: banner, efiStub: false,
                               compression: compression, detail: "\(wrapped) header that does not parse")
        }
        var markers: [String] = []
        if elf.notes.contains(where: { $0.name == "Xen" }) { markers.append("Xen ELF notes") }
        if elf.section(named: "__xen_guest") != nil { markers.append("a __xen_guest section") }
        guard !markers.isEmpty else {
            return KernelImage(format: .elf, release: banner.flatMap(firstWord), banner: banner, efiStub: false,
                               compression: compression,
                               detail: "\(wrapped) vmlinux without an x86 boot header: no BIOS boot loader loads it")
        }
        return KernelImage(format: .xenPV, release: banner.flatMap(firstWord), banner: banner, efiStub: false,
                           compression: compression,
                           detail: "Xen PV image: \(wrapped) with \(markers.joined(separator: " and ")), no x86 boot header (HdrS)")
    }

    /// The kernel's `linux_banner`: "Linux version 2.6.18-398.el5xen (mockbuild@...) ...".
    static func linuxBanner(in bytes: [UInt8]) -> String? {
        let needle = Array("Linux version ".utf8)
        guard let first = needle.first else { return nil }
        var index = 0
        while let found = bytes[index...].firstIndex(of: first) {
            if found + needle.count < bytes.count, bytes[found..<found + needle.count].elementsEqual(needle) {
                let start = found + needle.count
                // The banner format string has "%s" where a real one has the release.
                if bytes[start] != UInt8(ascii: "%") {
                    let end = bytes[start...].prefix(256).firstIndex { $0 == 0 || $0 == 0x0A } ?? min(bytes.count, start + 256)
                    return printable(bytes[start..<end])
                }
            }
            index = found + 1
        }
        return nil
    }

    private static func firstWord(_ text: String) -> String? {
        text.split(separator: " ").first.map(String.init)
    }

    /// Printable ASCII only: the string comes from a file the user does not control.
    private static func printable(_ bytes: ArraySlice<UInt8>) -> String {
        String(decoding: bytes.map { $0 >= 0x20 && $0 < 0x7F ? $0 : UInt8(ascii: "?") }, as: UTF8.self)
    }
}

private extension String {
    /// Two decimal digits: protocol 2.8 is written "2.08", as the boot protocol documents it.
    init(format2 value: UInt16) {
        self = value < 10 ? "0\(value)" : "\(value)"
    }
}
