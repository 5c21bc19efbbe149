extension InitramfsImage {
    /// The tree the kernel leaves after unpacking every member in order: key = path (no leading
    /// "./"), value = the entry now there, its `name` set to that path.
    ///
    /// The kernel's rules (init/initramfs.c `do_name`, `clean_path`, `maybe_link`, `do_symlink`):
    /// - an existing entry of another type is removed first (a directory only if empty); a
    ///   symlink entry removes whatever is there, so a directory entry over a symlink deletes it;
    /// - a regular file is opened O_TRUNC and rewritten (other names hard-linked to it see that);
    /// - a directory over a directory, or a device over the same kind, keeps the node and takes
    ///   the new mode, owner and mtime;
    /// - parents are not created: an entry whose parent does not resolve to a directory
    ///   (symlinks in the parent followed, as path lookup does) is skipped, and an entry under a
    ///   symlinked directory lands at the resolved path (`lib/x` with `lib -> usr/lib` is `usr/lib/x`);
    /// - within one archive, entries with nlink ≥ 2 and the same (ino, dev, mode) are hard links
    ///   to the first; their data is written into the shared file without truncation.
    public func unpackedTree() -> [String: CpioEntry] {
        var tree = UnpackedTree()
        for member in members {
            for archive in member.archives {
                var links: [LinkKey: String] = [:]
                for entry in member.entries[archive] { tree.apply(entry, links: &links) }
            }
        }
        return tree.result()
    }
}

struct LinkKey: Hashable {
    var ino: UInt32, devMajor: UInt32, devMinor: UInt32, mode: UInt32
}

/// Paths mapped to nodes (inodes), so hard links share one node.
struct UnpackedTree {
    var nodes: [CpioEntry] = []
    var paths: [String: Int] = [:]

    func result() -> [String: CpioEntry] {
        var result: [String: CpioEntry] = [:]
        for (path, node) in paths {
            var entry = nodes[node]
            entry.name = path
            result[path] = entry
        }
        return result
    }

    func kind(_ path: String) -> CpioEntry.Kind? {
        if path.isEmpty { return .directory }
        return paths[path].map { nodes[$0].kind }
    }

    /// `path` with every symlink in it followed, or nil when a component is missing, is not a
    /// directory, or links loop (40 hops, as the kernel allows).
    func resolveDirectory(_ path: String) -> String? {
        var pending = path.split(separator: "/").map(String.init)
        var resolved: [String] = []
        var hops = 0
        while !pending.isEmpty {
            let component = pending.removeFirst()
            if component == "." || component.isEmpty { continue }
            if component == ".." {
                if !resolved.isEmpty { resolved.removeLast() }
                continue
            }
            let candidate = (resolved + [component]).joined(separator: "/")
            guard let node = paths[candidate] else { return nil }
            let entry = nodes[node]
            switch entry.kind {
            case .directory:
                resolved.append(component)
            case .symlink:
                hops += 1
                guard hops <= 40 else { return nil }
                let target = String(decoding: entry.data, as: UTF8.self)
                if target.hasPrefix("/") { resolved = [] }
                pending = target.split(separator: "/").map(String.init) + pending
            default:
                return nil
            }
        }
        return resolved.joined(separator: "/")
    }

    /// Removes `path` if it is there and its type differs from `kind` (any type when nil);
    /// a directory goes only when empty, as rmdir does.
    mutating func clean(_ path: String, unless kind: CpioEntry.Kind?) {
        guard !path.isEmpty, let existing = self.kind(path), existing != kind else { return }
        if existing == .directory && paths.keys.contains(where: { $0.hasPrefix(path + "/") }) { return }
        paths[path] = nil
    }

    mutating func apply(_ entry: CpioEntry, links: inout [LinkKey: String]) {
        let logical = entry.path
        var path = ""
        if !logical.isEmpty {
            let parts = logical.split(separator: "/", omittingEmptySubsequences: true)
            guard let last = parts.last else { return }
            let parent = parts.dropLast().joined(separator: "/")
            guard let directory = resolveDirectory(parent) else { return }
            path = directory.isEmpty ? String(last) : directory + "/" + last
        }
        if path.isEmpty {
            // The root exists already: a "." directory entry only sets its mode, owner and mtime.
            if entry.kind == .directory { store(entry, at: "") }
            return
        }
        clean(path, unless: entry.kind)
        switch entry.kind {
        case .regular:
            var linked = false
            if entry.nlink >= 2 {
                let key = LinkKey(ino: entry.ino, devMajor: entry.devMajor, devMinor: entry.devMinor, mode: entry.mode)
                if let first = links[key] {
                    clean(path, unless: nil)
                    // link() fails when the name is still taken or the first name is gone.
                    guard paths[path] == nil, let node = paths[first] else { return }
                    paths[path] = node
                    linked = true
                } else {
                    links[key] = path
                }
            }
            if let node = paths[path] {
                guard nodes[node].kind == .regular else { return }   // open() on a directory fails
                var updated = entry
                if linked && entry.data.count < nodes[node].data.count {
                    // No O_TRUNC for a hard link: the data overwrites the start of the file.
                    updated.data += nodes[node].data[entry.data.count...]
                }
                nodes[node] = updated
            } else {
                add(entry, at: path)
            }
        case .directory:
            store(entry, at: path)
        case .symlink:
            clean(path, unless: nil)
            guard paths[path] == nil else { return }
            add(entry, at: path)
        case .characterDevice, .blockDevice, .fifo, .socket:
            if entry.nlink >= 2 {
                let key = LinkKey(ino: entry.ino, devMajor: entry.devMajor, devMinor: entry.devMinor, mode: entry.mode)
                if let first = links[key] {
                    clean(path, unless: nil)
                    if paths[path] == nil, let node = paths[first] { paths[path] = node }
                    return
                }
                links[key] = path
            }
            store(entry, at: path)
        case .other:
            return
        }
    }

    /// mkdir or mknod: a new node, or the same kind already there keeps its node and takes the
    /// new metadata (chown and chmod run after the EEXIST).
    private mutating func store(_ entry: CpioEntry, at path: String) {
        if let node = paths[path] {
            guard nodes[node].kind == entry.kind else { return }
            nodes[node] = entry
        } else {
            add(entry, at: path)
        }
    }

    private mutating func add(_ entry: CpioEntry, at path: String) {
        nodes.append(entry)
        paths[path] = nodes.count - 1
    }
}
