import Compression
import ImageCore
import KernelModules

/// Builds an initrd for a kernel the guest did not have, from an initrd the guest's own tool made
/// for another kernel: its init program, scripts, tools and configuration are kept, and its
/// modules are replaced by the new kernel's. The Xen kernel's initrd knows how this guest finds
/// its root (LVM, the filesystem, the udev or nash setup); only the modules are wrong.
///
/// The result is one gzip-compressed newc archive, after the original's uncompressed early
/// microcode archive if it has one.
public enum InitrdDeriver {
    /// - Parameters:
    ///   - modules: the new kernel's modules, a closure in load order.
    ///   - moduleLists: modules.order, modules.builtin and modules.builtin.modinfo of the new
    ///     kernel, when it has them, copied in and used for the index.
    public static func derive(
        from contents: InitrdContents, original: [UInt8], release: String, modules: [InitrdModule],
        moduleLists: [String: [UInt8]], name: String, mtime: UInt32
    ) throws -> [UInt8] {
        var tree = contents.tree
        switch contents.family {
        case .initramfsTools, .dracut:
            try replaceIndexedModules(&tree, contents: contents, release: release, modules: modules,
                                      moduleLists: moduleLists, mtime: mtime)
        case .nash:
            try replaceNashModules(&tree, contents: contents, modules: modules, name: name, mtime: mtime)
        case .unknown:
            throw InitrdPatchError.unknownFamily(name: name)
        }
        // Sorted paths put every directory before what it holds.
        let entries = tree.keys.sorted().compactMap { path -> CpioEntry? in
            guard var entry = tree[path], !path.isEmpty else { return nil }
            entry.name = path
            return entry
        }
        var bytes: [UInt8] = []
        if let first = contents.image.members.first, first.compression == nil,
           first.entries.contains(where: { $0.path.hasPrefix("kernel/x86/microcode") }) {
            bytes += original[first.offset..<(first.offset + first.length)]
            while bytes.count % 4 != 0 { bytes.append(0) }
        }
        bytes += StreamCompression.gzip(CpioNewc.write(entries))
        return bytes
    }

    static func replaceIndexedModules(
        _ tree: inout [String: CpioEntry], contents: InitrdContents, release: String, modules: [InitrdModule],
        moduleLists: [String: [UInt8]], mtime: UInt32
    ) throws {
        let base = tree["lib"]?.kind == .symlink || tree["usr/lib/modules"] != nil ? "usr/lib/modules" : "lib/modules"
        if let old = contents.modulesRoot {
            for path in tree.keys where path == old || path.hasPrefix(old + "/") { tree[path] = nil }
        }
        let root = base + "/" + release
        func addDirectories(for path: String) {
            var prefix = ""
            for component in path.split(separator: "/").dropLast() {
                prefix += prefix.isEmpty ? String(component) : "/" + component
                if tree[prefix] == nil { tree[prefix] = .directory(prefix, mtime: mtime) }
            }
        }
        var indexed: [(path: String, info: ModuleInfo)] = []
        for module in modules {
            let path = root + "/" + module.relativePath
            addDirectories(for: path)
            tree[path] = .file(path, module.elf, mode: 0o644, mtime: mtime)
            indexed.append((module.relativePath, module.info))
        }
        for (file, data) in moduleLists {
            addDirectories(for: root + "/" + file)
            tree[root + "/" + file] = .file(root + "/" + file, data, mode: 0o644, mtime: mtime)
        }
        func lines(_ file: String) -> [String]? {
            moduleLists[file].map { String(decoding: $0, as: UTF8.self).split(separator: "\n").map(String.init) }
        }
        let index = Depmod.generate(modules: indexed, order: lines("modules.order"), builtin: lines("modules.builtin"),
                                    builtinModinfo: moduleLists["modules.builtin.modinfo"])
        addDirectories(for: root + "/modules.dep")
        for (file, data) in index {
            tree[root + "/" + file] = .file(root + "/" + file, data, mode: 0o644, mtime: mtime)
        }
    }

    static func replaceNashModules(
        _ tree: inout [String: CpioEntry], contents: InitrdContents, modules: [InitrdModule], name: String, mtime: UInt32
    ) throws {
        guard let script = tree["init"]?.data else { throw InitrdPatchError.noInsertionPoint(name: name) }
        for path in contents.modules.values { tree[path] = nil }
        var lines = String(decoding: script, as: UTF8.self).components(separatedBy: "\n")
        func first(_ line: String) -> String? {
            line.split(whereSeparator: { $0 == " " || $0 == "\t" }).first.map(String.init)
        }
        // Drop the old kernel's insmods and the echo before each; the new ones go where the first was.
        var insertAt: Int?
        var index = 0
        while index < lines.count {
            if first(lines[index]) == "insmod" {
                var start = index
                if index > 0, lines[index - 1].hasPrefix("echo \"Loading ") { start = index - 1 }
                insertAt = insertAt ?? start
                lines.removeSubrange(start...index)
                index = start
            } else {
                index += 1
            }
        }
        if insertAt == nil, let root = lines.firstIndex(where: { first($0) == "mkrootdev" }) {
            insertAt = lines[..<root].lastIndex(where: { first($0) == "mkblkdevs" }) ?? root
        }
        guard let insertAt else { throw InitrdPatchError.noInsertionPoint(name: name) }
        var added: [String] = []
        for module in modules {
            let file = InitrdPatcher.fileName(module)
            tree["lib/\(file).ko"] = .file("lib/\(file).ko", module.elf, mode: 0o644, mtime: mtime)
            added += ["echo \"Loading \(file).ko module\"", "insmod /lib/\(file).ko"]
        }
        lines.insert(contentsOf: added, at: insertAt)
        tree["init"] = .file("init", Array(lines.joined(separator: "\n").utf8), mode: 0o755, mtime: mtime)
    }
}
