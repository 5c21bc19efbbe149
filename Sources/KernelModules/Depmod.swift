import ImageCore

/// What `depmod -b DIR VERSION` (kmod 30, `tools/depmod.c`) writes for one kernel's modules,
/// computed from the modules' metadata alone and byte-identical to it when given the same tree:
///
/// - **Module order** (the order of modules.dep, modules.alias, modules.softdep, and the
///   priorities in the .bin files): depmod gathers modules in a hash table keyed by name (kmod
///   `shared/hash.c`: 512 buckets, Paul Hsieh's SuperFastHash, each bucket sorted by strcmp) and
///   takes them in bucket order; then modules named in modules.order move to the front in that
///   file's order (a stable sort: glibc's qsort is a merge sort); the rest stay in hash order.
/// - **Dependencies** come from each module's `depends=` (modpost computed them at build time).
///   depmod finds the same set by resolving undefined symbols; the order of a module's direct
///   dependencies follows the first undefined symbol each one exports, which is what we use to
///   order them, so the topological numbering below matches depmod's. A module with no `depends=`
///   field (kernels older than 2.6.x) gets its dependencies by symbol resolution, as depmod does.
/// - **Transitive order**: depmod numbers the modules by a topological sort that starts from the
///   modules no one needs (roots in module order, taken last-first from a stack), and lists each
///   module's transitive dependencies by that number: users before what they use.
/// - **modules.symbols** lists exported symbols in the bucket order of a 2048-bucket table of the
///   same hash; when two modules export one name, the later module in module order owns it.
///
/// Not reproduced: depmod's choice between two files with one module name (by the `search` and
/// `override` lines of depmod.d; here the first in `modules` wins), `-F System.map` / `-E
/// Module.symvers` checks (they only print warnings), and dependency loops, for which depmod
/// writes nothing and fails; here the modules of a loop are numbered after all others, so the
/// output stays usable.
public enum Depmod {
    /// The files depmod writes, in its order.
    public static let fileNames = [
        "modules.dep", "modules.dep.bin", "modules.alias", "modules.alias.bin", "modules.softdep",
        "modules.symbols", "modules.symbols.bin", "modules.builtin.bin", "modules.builtin.alias.bin", "modules.devname",
    ]

    /// - Parameters:
    ///   - modules: each module's path relative to /lib/modules/<version> (as it is on disk, .ko.xz
    ///     and all) and its metadata.
    ///   - order: the lines of modules.order, if the kernel has one.
    ///   - builtin: the lines of modules.builtin (paths such as kernel/drivers/tty/serial/8250/8250.ko).
    ///     depmod writes an empty modules.builtin.bin without it.
    ///   - builtinModinfo: modules.builtin.modinfo (`name.key=value` NUL-separated), for
    ///     modules.builtin.alias.bin; empty file without it.
    /// - Returns: file name -> contents, for every name in `fileNames`.
    public static func generate(modules: [(path: String, info: ModuleInfo)], order: [String]? = nil,
                                builtin: [String]? = nil, builtinModinfo: [UInt8]? = nil) -> [String: [UInt8]] {
        let graph = DependencyGraph(modules: modules, order: order)
        var files: [String: [UInt8]] = [:]
        files["modules.dep"] = graph.modulesDep().encoded()
        files["modules.dep.bin"] = KmodIndex.write(graph.modules.indices.map { i in
            let m = graph.modules[i]
            var line = m.path + ":"
            for d in graph.sortedDependencies(of: i) { line += " " + graph.modules[d].path }
            return (m.name, line, UInt32(i))
        })

        var aliases = "# Aliases extracted from modules themselves.\n"
        var aliasEntries: [(key: String, value: String, priority: UInt32)] = []
        var softdeps = "# Soft dependencies extracted from modules themselves.\n"
        var devnames = ""
        for (i, m) in graph.modules.enumerated() {
            for field in m.info.fields where field.key == "alias" {
                aliases += "alias \(field.value) \(m.name)\n"
                // depmod skips an alias with an unmatched bracket (it warns).
                if let key = normalizedAlias(field.value) { aliasEntries.append((key, m.name, UInt32(i))) }
            }
            for field in m.info.fields where field.key == "softdep" {
                softdeps += "softdep \(m.name) \(field.value)\n"
            }
            if let line = devnameLine(m) {
                if devnames.isEmpty { devnames = "# Device nodes to trigger on-demand module loading.\n" }
                devnames += line
            }
        }
        files["modules.alias"] = Array(aliases.utf8)
        files["modules.alias.bin"] = KmodIndex.write(aliasEntries)
        files["modules.softdep"] = Array(softdeps.utf8)
        files["modules.devname"] = Array(devnames.utf8)

        var symbols = "# Aliases for symbols, used by symbol_request().\n"
        var symbolEntries: [(key: String, value: String, priority: UInt32)] = []
        for (name, owner) in graph.symbolsInHashOrder() {
            symbols += "alias symbol:\(name) \(graph.modules[owner].name)\n"
            symbolEntries.append(("symbol:" + name, graph.modules[owner].name, UInt32(owner)))
        }
        files["modules.symbols"] = Array(symbols.utf8)
        files["modules.symbols.bin"] = KmodIndex.write(symbolEntries)

        if let builtin {
            // depmod reports and skips lines that do not start with a letter.
            let entries = builtin.filter { $0.first?.isASCII == true && $0.first?.isLetter == true }
                .map { (key: ModuleName.fromPath($0), value: "", priority: UInt32(0)) }
            files["modules.builtin.bin"] = KmodIndex.write(entries)
        } else {
            files["modules.builtin.bin"] = []
        }
        files["modules.builtin.alias.bin"] = builtinModinfo.map { KmodIndex.write(builtinAliases($0)) } ?? []
        return files
    }

    /// The modules.dep depmod would write (module order and dependency order as described above).
    public static func modulesDep(modules: [(path: String, info: ModuleInfo)], order: [String]? = nil) -> ModulesDep {
        DependencyGraph(modules: modules, order: order).modulesDep()
    }

    /// kmod's `alias_normalize`: '-' becomes '_' outside `[...]` ranges; nil for an unmatched bracket.
    public static func normalizedAlias(_ alias: String) -> String? {
        var out: [UInt8] = []
        var inRange = false
        for byte in alias.utf8 {
            if inRange {
                out.append(byte)
                if byte == UInt8(ascii: "]") { inRange = false }
                continue
            }
            switch byte {
            case UInt8(ascii: "-"): out.append(UInt8(ascii: "_"))
            case UInt8(ascii: "]"): return nil
            case UInt8(ascii: "["): inRange = true; out.append(byte)
            default: out.append(byte)
            }
        }
        return inRange ? nil : String(decoding: out, as: UTF8.self)
    }

    /// A modules.devname line for a module with `alias=devname:NAME` and a `char-major-M-N` or
    /// `block-major-M-N` alias (the first of each kind up to the point both are known).
    static func devnameLine(_ m: DependencyGraph.Module) -> String? {
        var devname: String?
        var device: (type: Character, major: UInt32, minor: UInt32)?
        for field in m.info.fields where field.key == "alias" {
            let value = field.value
            if value.hasPrefix("devname:") {
                devname = String(value.dropFirst(8))
            } else if let numbers = majorMinor(value, prefix: "char-major-") {
                device = ("c", numbers.0, numbers.1)
            } else if let numbers = majorMinor(value, prefix: "block-major-") {
                device = ("b", numbers.0, numbers.1)
            }
            if device != nil && devname != nil { break }
        }
        guard let devname, let device else { return nil }
        return "\(m.name) \(devname) \(device.type)\(device.major):\(device.minor)\n"
    }

    /// sscanf(value, "PREFIX%u-%u") == 2, for the decimal numbers aliases carry.
    static func majorMinor(_ value: String, prefix: String) -> (UInt32, UInt32)? {
        guard value.hasPrefix(prefix) else { return nil }
        let rest = Array(value.utf8.dropFirst(prefix.utf8.count))
        var i = 0
        func number() -> UInt32? {
            let start = i
            var n: UInt32 = 0
            while i < rest.count, rest[i] >= 0x30, rest[i] <= 0x39 {
                n = n &* 10 &+ UInt32(rest[i] - 0x30)
                i += 1
            }
            return i > start ? n : nil
        }
        guard let major = number(), i < rest.count, rest[i] == UInt8(ascii: "-") else { return nil }
        i += 1
        guard let minor = number() else { return nil }
        return (major, minor)
    }

    /// The `alias` records of modules.builtin.modinfo: `module.alias=value` strings separated by NULs.
    static func builtinAliases(_ bytes: [UInt8]) -> [(key: String, value: String, priority: UInt32)] {
        var entries: [(key: String, value: String, priority: UInt32)] = []
        for record in bytes.split(separator: 0) {
            guard let dot = record.firstIndex(of: UInt8(ascii: ".")), dot > record.startIndex else { continue }
            let rest = record[(dot + 1)...]
            guard let equals = rest.firstIndex(of: UInt8(ascii: "=")),
                  rest[..<equals].elementsEqual("alias".utf8), equals + 1 < rest.endIndex else { continue }
            let value = String(decoding: rest[(equals + 1)...], as: UTF8.self)
            guard let key = normalizedAlias(value) else { continue }
            entries.append((key, String(decoding: record[..<dot], as: UTF8.self), 0))
        }
        return entries
    }
}

/// The modules in depmod's order, their direct dependencies, and depmod's topological numbering.
struct DependencyGraph {
    struct Module {
        var path: String
        var name: String
        var info: ModuleInfo
    }

    var modules: [Module] = []
    /// Direct dependencies (indices), in depmod's order before the final sort.
    var direct: [[Int]] = []
    /// depmod's `dep_sort_idx`: users get lower numbers than what they use.
    var rank: [Int] = []
    /// Exported symbol -> owning module index.
    var owners: [String: Int] = [:]

    init(modules input: [(path: String, info: ModuleInfo)], order: [String]?) {
        // One module per name (depmod's modules_by_name), keyed by the name the path gives, as
        // depmod does; the first path wins.
        var byName: [String: Module] = [:]
        for (path, info) in input {
            let name = ModuleName.fromPath(path)
            if byName[name] == nil { byName[name] = Module(path: path, name: name, info: info) }
        }
        var ordered = KmodHash.iterationOrder(Array(byName.keys), buckets: 512).map { byName[$0]! }

        if let order {
            // sort_idx: modules in modules.order get (line - lines - 1) < 0, the rest keep 1.
            // depmod's uncrelpath: the path cut after its directory, one byte per name byte, and
            // ".ko" (so "dm-mod.ko.xz" matches the line "…/dm-mod.ko").
            var uncompressedPath: [String: Int] = [:]
            for (i, m) in ordered.enumerated() {
                let bytes = Array(m.path.utf8)
                let directoryLength = bytes.lastIndex(of: UInt8(ascii: "/")) ?? -1
                let length = min(bytes.count, directoryLength + 1 + m.name.utf8.count + 3)
                uncompressedPath[String(decoding: bytes[..<length], as: UTF8.self)] = i
            }
            var sortKey = [Int](repeating: 1, count: ordered.count)
            for (line, text) in order.enumerated() {
                if let i = uncompressedPath[text] { sortKey[i] = line + 1 - (order.count + 1) }
            }
            let indices = ordered.indices.sorted { (sortKey[$0], $0) < (sortKey[$1], $1) }
            ordered = indices.map { ordered[$0] }
        }
        modules = ordered
        let index = Dictionary(modules.enumerated().map { ($1.name, $0) }, uniquingKeysWith: { a, _ in a })

        // Exported symbols, later modules replacing earlier owners (kmod's hash_add).
        for (i, m) in modules.enumerated() {
            for symbol in m.info.exportedSymbols { owners[symbol] = i }
        }

        // Direct dependencies.
        var users = [Int](repeating: 0, count: modules.count)
        direct = modules.map { m in
            var found: [Int] = []
            var seen = Set<Int>()
            let declared = m.info.fields.contains { $0.key == "depends" }
            let allowed = Set(m.info.depends.compactMap { index[ModuleName.normalized($0)] })
            for symbol in m.info.requiredSymbols {
                var name = Substring(symbol)
                if name.first == "." { name = name.dropFirst() }   // PPC64 function descriptors: .foo is foo
                guard let owner = owners[String(name)], !declared || allowed.contains(owner) else { continue }
                if seen.insert(owner).inserted { found.append(owner) }
            }
            if declared {
                for name in m.info.depends {
                    if let d = index[ModuleName.normalized(name)], seen.insert(d).inserted { found.append(d) }
                }
            }
            return found
        }
        for deps in direct { for d in deps { users[d] += 1 } }

        // depmod_calculate_dependencies: a stack seeded with the unused modules in order.
        rank = [Int](repeating: Int.max, count: modules.count)
        var stack = users.indices.filter { users[$0] == 0 }
        var next = 0
        while let source = stack.popLast() {
            rank[source] = next
            next += 1
            for d in direct[source] {
                users[d] -= 1
                if users[d] == 0 { stack.append(d) }
            }
        }
        // Modules in a loop keep Int.max (depmod would stop here); the stable sorts below keep them usable.
    }

    /// All modules `i` needs, transitively, ordered by rank (depmod's
    /// `mod_get_all_sorted_dependencies`: collected depth-first over rank-sorted direct
    /// dependencies, then sorted by rank; the sort is stable for the loop case).
    func sortedDependencies(of i: Int) -> [Int] {
        var collected: [Int] = []
        var seen = Set<Int>()
        var stack = sortedDirect(i).reversed().map { $0 }
        while let d = stack.popLast() {
            guard seen.insert(d).inserted else { continue }
            collected.append(d)
            stack += sortedDirect(d).reversed()
        }
        return collected.enumerated().sorted { (rank[$0.element], $0.offset) < (rank[$1.element], $1.offset) }.map(\.element)
    }

    private func sortedDirect(_ i: Int) -> [Int] {
        direct[i].enumerated().sorted { (rank[$0.element], $0.offset) < (rank[$1.element], $1.offset) }.map(\.element)
    }

    func modulesDep() -> ModulesDep {
        var dep = ModulesDep(entries: modules.indices.map { i in
            ModulesDep.Entry(path: modules[i].path, dependencies: sortedDependencies(of: i).map { modules[$0].path })
        }, softdepPre: Dictionary(modules.compactMap { m in m.info.softdepPre.isEmpty ? nil : (m.name, m.info.softdepPre) },
                                  uniquingKeysWith: { a, _ in a }))
        dep.aliases = modules.flatMap { m in m.info.aliases.compactMap { a in Depmod.normalizedAlias(a).map { ($0, m.name) } } }
        return dep
    }

    /// (symbol, owner) in the iteration order of depmod's 2048-bucket symbol table.
    func symbolsInHashOrder() -> [(String, Int)] {
        KmodHash.iterationOrder(Array(owners.keys), buckets: 2048).map { ($0, owners[$0]!) }
    }
}

/// kmod's `shared/hash.c` table, reduced to what decides depmod's output order: the bucket of
/// each key (SuperFastHash masked to a power-of-two bucket count) and strcmp order within a bucket.
enum KmodHash {
    static func iterationOrder(_ keys: [String], buckets: UInt32) -> [String] {
        keys.map { key -> (UInt32, [UInt8], String) in
            let bytes = Array(key.utf8)
            return (superFastHash(bytes) & (buckets - 1), bytes, key)
        }
        .sorted { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1.lexicographicallyPrecedes($1.1) }
        .map(\.2)
    }

    /// Paul Hsieh's SuperFastHash as kmod computes it on x86: 16-bit loads little-endian, and
    /// single bytes sign-extended (C `char` is signed there), which only matters for non-ASCII keys.
    static func superFastHash(_ key: [UInt8]) -> UInt32 {
        var hash = UInt32(truncatingIfNeeded: key.count)
        let remainder = key.count & 3
        var i = 0
        func u16(_ at: Int) -> UInt32 { UInt32(key[at]) | UInt32(key[at + 1]) << 8 }
        func signed(_ at: Int) -> UInt32 { UInt32(bitPattern: Int32(Int8(bitPattern: key[at]))) }
        for _ in 0..<(key.count / 4) {
            hash &+= u16(i)
            let tmp = (u16(i + 2) << 11) ^ hash
            hash = (hash << 16) ^ tmp
            i += 4
            hash &+= hash >> 11
        }
        switch remainder {
        case 3:
            hash &+= u16(i)
            hash ^= hash << 16
            hash ^= signed(i + 2) << 18
            hash &+= hash >> 11
        case 2:
            hash &+= u16(i)
            hash ^= hash << 11
            hash &+= hash >> 17
        case 1:
            hash &+= signed(i)
            hash ^= hash << 10
            hash &+= hash >> 1
        default: break
        }
        hash ^= hash << 3
        hash &+= hash >> 5
        hash ^= hash << 4
        hash &+= hash >> 17
        hash ^= hash << 25
        hash &+= hash >> 6
        return hash
    }
}
