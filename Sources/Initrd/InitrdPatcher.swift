import Compression
import ImageCore
import KernelModules

/// A kernel module to put into an initrd: already decompressed (every loader reads a plain .ko,
/// nash's insmod.static and kmod builds without zstd included, INITRD-FACTS §5).
public struct InitrdModule: Sendable, Equatable {
    public var info: ModuleInfo
    /// Its path under /lib/modules/<release>/ in the guest, without a compression suffix:
    /// "kernel/drivers/block/virtio_blk.ko".
    public var relativePath: String
    public var elf: [UInt8]

    public var name: String { info.name }

    public init(info: ModuleInfo, relativePath: String, elf: [UInt8]) {
        self.info = info
        self.relativePath = relativePath
        self.elf = elf
    }
}

public enum InitrdPatchError: RehostError, Equatable {
    case unknownFamily(name: String)
    case noInsertionPoint(name: String)
    case symlinkInPath(name: String, path: String)
    case noModulesDirectory(name: String)

    public var description: String {
        switch self {
        case let .unknownFamily(name):
            return "\(name): an initrd not built by initramfs-tools, dracut or RHEL 5 mkinitrd; Rehost does not know how it loads modules, so it cannot add drivers to it (rebuild it in the guest, or --skip initrd)"
        case let .noInsertionPoint(name):
            return "\(name): its nash /init has no insmod, mkblkdevs or mkrootdev line to load the new drivers before"
        case let .symlinkInPath(name, path):
            return "\(name): \(path) is a symlink inside the initrd; an entry under it would replace the link"
        case let .noModulesDirectory(name):
            return "\(name): the initrd has no lib/modules/<release> directory and the kernel release is unknown"
        }
    }
}

/// The result of a patch: the complete new initrd and what its appended archive holds.
public struct InitrdPatch: Sendable {
    /// The original bytes, zero padding, then one gzip-compressed newc archive; the original
    /// bytes alone when there was nothing to add (`entries` is then empty).
    public var bytes: [UInt8]
    /// The appended archive's entries, by path (directories, modules, index files, edited scripts).
    public var entries: [String]
}

/// Adds kernel modules to an initrd without rewriting it: one more cpio archive is appended, which
/// the kernel unpacks over the others (INITRD-FACTS §0–§1). The original bytes are kept as they
/// are, so the guest's own tools still read the first archive, and the change is easy to undo.
///
/// The appended archive is gzip-compressed whatever the image uses: every kernel that reads
/// initramfs can inflate gzip, and 2.6.18 nothing else.
public enum InitrdPatcher {
    /// Adds `modules` (a closure in load order) to `contents` so the initrd loads them before it
    /// looks for root. `forceLoad` names modules to load explicitly where the family has a list
    /// for it (initramfs-tools' conf/modules); the others load by modalias during udev coldplug,
    /// or, for nash, by the insmod lines added to /init.
    public static func addModules(
        _ modules: [InitrdModule], forceLoad: [String], to contents: InitrdContents, original: [UInt8],
        kernelRelease: String, name: String, mtime: UInt32
    ) throws -> InitrdPatch {
        var entries: [CpioEntry]
        switch contents.family {
        case .initramfsTools, .dracut:
            entries = try indexedFamilyEntries(modules, forceLoad: forceLoad, contents: contents,
                                               kernelRelease: kernelRelease, name: name, mtime: mtime)
        case .nash:
            entries = try nashEntries(modules, contents: contents, name: name, mtime: mtime)
        case .unknown:
            throw InitrdPatchError.unknownFamily(name: name)
        }
        // Nothing to add (every module is there, the index and conf/modules already say so):
        // the image stays as it is, rather than growing by an empty archive on every run.
        guard !entries.isEmpty else { return InitrdPatch(bytes: original, entries: []) }
        let archive = StreamCompression.gzip(CpioNewc.write(entries))
        var bytes = original
        bytes.append(contentsOf: [UInt8](repeating: 0, count: InitramfsImage.paddingBeforeAppending(to: contents.image)))
        bytes.append(contentsOf: archive)
        return InitrdPatch(bytes: bytes, entries: entries.map(\.path))
    }

    // MARK: initramfs-tools and dracut: modules plus a regenerated index

    static func indexedFamilyEntries(
        _ modules: [InitrdModule], forceLoad: [String], contents: InitrdContents, kernelRelease: String,
        name: String, mtime: UInt32
    ) throws -> [CpioEntry] {
        let tree = contents.tree
        let root: String
        if let existing = contents.modulesRoot {
            root = existing
        } else {
            root = (tree["lib"]?.kind == .symlink ? "usr/lib/modules/" : "lib/modules/") + kernelRelease
        }
        var entries: [CpioEntry] = []
        var created = Set<String>()
        func ensureDirectories(for path: String) throws {
            var prefix = ""
            for component in path.split(separator: "/").dropLast() {
                prefix += prefix.isEmpty ? String(component) : "/" + component
                if let entry = tree[prefix] {
                    if entry.kind == .symlink { throw InitrdPatchError.symlinkInPath(name: name, path: prefix) }
                    continue
                }
                if created.insert(prefix).inserted { entries.append(.directory(prefix, mtime: mtime)) }
            }
        }

        // The index covers the modules already inside and the new ones, as depmod would write it.
        var indexed: [(path: String, info: ModuleInfo)] = []
        let prefix = root + "/"
        for (moduleName, path) in contents.modules.sorted(by: { $0.key < $1.key }) where path.hasPrefix(prefix) {
            guard let data = tree[path]?.data else { continue }
            let elf = try ModuleName.plainModule(data, path: "\(name):\(path)", limit: 256 << 20)
            var info = try ModuleInfo.read(elf: elf, path: "\(name):\(path)")
            if info.name.isEmpty { info.name = moduleName }
            indexed.append((String(path.dropFirst(prefix.count)), info))
        }
        for module in modules where contents.modules[module.name] == nil {
            let path = root + "/" + module.relativePath
            try ensureDirectories(for: path)
            entries.append(.file(path, module.elf, mode: 0o644, mtime: mtime))
            indexed.append((module.relativePath, module.info))
        }
        let order = tree[root + "/modules.order"].map { lines($0.data) }
        let builtin = tree[root + "/modules.builtin"].map { lines($0.data) }
        let builtinModinfo = tree[root + "/modules.builtin.modinfo"]?.data
        let generated = Depmod.generate(modules: indexed, order: order, builtin: builtin, builtinModinfo: builtinModinfo)
        // The built-in indexes come from files the initrd may not carry; without them depmod's
        // empty ones would replace good ones.
        var regenerated = ["modules.dep", "modules.dep.bin", "modules.alias", "modules.alias.bin",
                           "modules.symbols", "modules.symbols.bin", "modules.softdep", "modules.devname"]
        if builtin != nil { regenerated.append("modules.builtin.bin") }
        if builtinModinfo != nil { regenerated.append("modules.builtin.alias.bin") }
        try ensureDirectories(for: root + "/modules.dep")
        for (file, data) in generated.sorted(by: { $0.key < $1.key }) where regenerated.contains(file) {
            let path = root + "/" + file
            if tree[path]?.data == data { continue }
            entries.append(.file(path, data, mode: 0o644, mtime: mtime))
        }

        if contents.family == .initramfsTools, !forceLoad.isEmpty {
            // /init runs `modprobe` for every line of conf/modules before it waits for root.
            let existing = tree["conf/modules"].map { lines($0.data) } ?? []
            // Each name once, however it is spelled (virtio-pci and virtio_pci are one module).
            var listed = Set(existing.map(ModuleName.normalized))
            let added = forceLoad.filter { listed.insert(ModuleName.normalized($0)).inserted }
            if !added.isEmpty {
                try ensureDirectories(for: "conf/modules")
                let text = (existing + added).map { $0 + "\n" }.joined()
                entries.append(.file("conf/modules", Array(text.utf8), mode: 0o644, mtime: mtime))
            }
        }
        return entries
    }

    // MARK: nash: lib/<name>.ko and insmod lines in /init

    static func nashEntries(_ modules: [InitrdModule], contents: InitrdContents, name: String, mtime: UInt32) throws -> [CpioEntry] {
        let missing = modules.filter { !contents.loadedByInit.contains($0.name) }
        guard !missing.isEmpty else { return [] }
        guard let script = contents.tree["init"]?.data else { throw InitrdPatchError.noInsertionPoint(name: name) }
        var entries: [CpioEntry] = []
        for module in missing where contents.modules[module.name] == nil {
            entries.append(.file("lib/\(fileName(module)).ko", module.elf, mode: 0o644, mtime: mtime))
        }
        var lines = String(decoding: script, as: UTF8.self).components(separatedBy: "\n")
        func starts(_ line: String, _ word: String) -> Bool {
            line.split(whereSeparator: { $0 == " " || $0 == "\t" }).first.map(String.init) == word
        }
        // mkinitrd loads modules in order after `hotplug`/`mkblkdevs`; new ones go after the last
        // insmod, and before the mkblkdevs that precedes LVM and mkrootdev when there is none.
        let insertAt: Int
        if let last = lines.lastIndex(where: { starts($0, "insmod") }) {
            insertAt = last + 1
        } else if let root = lines.firstIndex(where: { starts($0, "mkrootdev") }) {
            insertAt = lines[..<root].lastIndex(where: { starts($0, "mkblkdevs") }) ?? root
        } else {
            throw InitrdPatchError.noInsertionPoint(name: name)
        }
        var added: [String] = []
        for module in missing {
            let file = fileName(module)
            added += ["echo \"Loading \(file).ko module\"", "insmod /lib/\(file).ko"]
        }
        // SCSI disks appear asynchronously; mkinitrd waits for the bus to settle the same way.
        if missing.contains(where: { ["sd_mod", "ata_piix", "ahci", "mptspi", "mptsas", "vmw_pvscsi", "virtio_scsi"].contains($0.name) }) {
            added.append("stabilized --hash --interval 250 /proc/scsi/scsi")
        }
        lines.insert(contentsOf: added, at: insertAt)
        entries.append(.file("init", Array(lines.joined(separator: "\n").utf8), mode: 0o755, mtime: mtime))
        return entries
    }

    /// The module's file name without ".ko", as it is on disk (`xen-blkfront`, not `xen_blkfront`).
    static func fileName(_ module: InitrdModule) -> String {
        var base = String(module.relativePath.split(separator: "/").last ?? Substring(module.name))
        if base.hasSuffix(".ko") { base.removeLast(3) }
        return base
    }

    static func lines(_ data: [UInt8]) -> [String] {
        String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init).filter { !$0.isEmpty }
    }
}
