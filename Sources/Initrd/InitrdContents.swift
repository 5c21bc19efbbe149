import Compression
import ImageCore
import KernelModules

/// The tool that built an initrd, which decides how its modules get loaded (INITRD-FACTS §0).
public enum InitrdFamily: String, Sendable, Codable, CaseIterable {
    /// Debian, Ubuntu: udev coldplug by modalias, plus `conf/modules`; kmod reads only the .bin indexes.
    case initramfsTools = "initramfs-tools"
    /// RHEL/CentOS 6+, Fedora, SUSE 12+, Amazon Linux 2: udev coldplug by modalias.
    case dracut
    /// RHEL/CentOS 5 mkinitrd: a nash `/init` that insmods `/lib/<name>.ko` by path, in order.
    case nash
    /// Anything else (hand-made, busybox, Gentoo genkernel...): Rehost does not know how it loads modules.
    case unknown
}

/// What an initrd holds, as the kernel would unpack it: its members, its family, and its modules.
public struct InitrdContents: Sendable {
    public let image: InitramfsImage
    /// Every path after all members are unpacked, later members winning.
    public let tree: [String: CpioEntry]
    public let family: InitrdFamily
    /// The directory holding the modules, spelled as the archive spells it ("usr/lib/modules/6.1.0-28-amd64"
    /// when `lib` is a symlink to `usr/lib`); "lib" for nash. nil when the initrd has no modules.
    public let modulesRoot: String?
    /// The kernel release the modules belong to (the name of the directory under lib/modules).
    public let kernelRelease: String?
    /// Each module in the image by normalized name, with its path in the tree.
    public let modules: [String: String]
    /// For nash: the modules its /init loads, in order.
    public let loadedByInit: [String]

    /// The largest an initrd may unpack to here; real ones are well under 1 GiB.
    public static let unpackedLimit = 2 << 30

    public init(bytes: [UInt8], name: String) throws {
        image = try bytes.withUnsafeBytes {
            try InitramfsImage(bytes: $0, name: name, limits: InitramfsLimits(maxDecompressedBytes: Self.unpackedLimit))
        }
        let tree = image.unpackedTree()
        self.tree = tree
        family = Self.family(of: tree)

        var modules: [String: String] = [:]
        var release: String?
        var root: String?
        if family == .nash {
            for path in tree.keys.sorted() where path.hasPrefix("lib/") && !path.dropFirst(4).contains("/")
                && ModuleName.isModulePath(path) {
                modules[ModuleName.fromPath(path)] = path
            }
            root = "lib"
        } else {
            // Prefer the spelling the archive uses for real directories: `lib` is a symlink in
            // usr-merged images, and a new entry under it would replace the link (§1).
            for base in ["usr/lib/modules", "lib/modules"] where tree[base]?.kind == .directory {
                let prefix = base + "/"
                for path in tree.keys where path.hasPrefix(prefix) {
                    let rest = path.dropFirst(prefix.count)
                    guard let slash = rest.firstIndex(of: "/") else { continue }
                    if release == nil { release = String(rest[..<slash]) }
                    if ModuleName.isModulePath(path) { modules[ModuleName.fromPath(path)] = path }
                }
                if let release { root = base + "/" + release }
                break
            }
        }
        self.modules = modules
        kernelRelease = release
        modulesRoot = modules.isEmpty && release == nil && family != .nash ? nil : root
        loadedByInit = family == .nash ? NashInit.insmodModules(in: tree["init"]?.data ?? []) : []
    }

    static func family(of tree: [String: CpioEntry]) -> InitrdFamily {
        let initScript = tree["init"].map { String(decoding: $0.data.prefix(64), as: UTF8.self) } ?? ""
        if initScript.hasPrefix("#!/bin/nash") || tree["bin/nash"] != nil { return .nash }
        if tree["usr/lib/dracut"] != nil || tree["lib/dracut"] != nil || tree["lib/dracut-lib.sh"] != nil
            || tree["usr/lib/dracut-lib.sh"] != nil { return .dracut }
        if tree["conf/initramfs.conf"] != nil || tree["scripts/functions"] != nil { return .initramfsTools }
        return .unknown
    }

    /// The compression of each member, "uncompressed" for plain cpio: "uncompressed + gzip".
    public var layout: String {
        image.members.map { $0.compression?.rawValue ?? "uncompressed" }.joined(separator: " + ")
    }

    /// Whether the image loads `module` (by normalized name) before it mounts root, as far as the
    /// family's rules go: present in the index-driven families, insmod'ed by nash's /init.
    public func loads(_ module: String) -> Bool {
        switch family {
        case .nash: return loadedByInit.contains(module)
        case .initramfsTools, .dracut, .unknown: return modules[module] != nil
        }
    }
}

/// RHEL 5's nash `/init` script (mkinitrd 5.1.19): `insmod /lib/<name>.ko` lines in load order.
enum NashInit {
    static func insmodModules(in script: [UInt8]) -> [String] {
        String(decoding: script, as: UTF8.self).split(separator: "\n").compactMap { line in
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard fields.count >= 2, fields[0] == "insmod" else { return nil }
            return ModuleName.fromPath(String(fields[1]))
        }
    }
}
