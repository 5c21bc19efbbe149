import ImageCore
#if canImport(Glibc)
import Glibc
#endif

/// The text `modules.dep` in /lib/modules/<version>: one line per module,
///
/// ```
/// kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
/// ```
/// the module's path relative to /lib/modules/<version>, a colon, then the paths of all the
/// modules it needs, transitively. depmod lists them so that a module comes before the modules it
/// needs (modprobe loads the list from the end); a hand-written file may list only direct needs,
/// so `closure` does its own ordering and needs neither property.
public struct ModulesDep: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        public var path: String
        public var dependencies: [String]
        public init(path: String, dependencies: [String]) { self.path = path; self.dependencies = dependencies }
        /// The module name its path gives (xen-blkfront.ko -> xen_blkfront).
        public var name: String { ModuleName.fromPath(path) }
    }

    /// A load order and the names that could not be found.
    public struct Closure: Sendable, Equatable {
        /// Module paths, every module after all the modules it needs.
        public var paths: [String]
        /// Requested or needed names with no line in modules.dep (and not built in).
        public var missing: [String]
    }

    public var entries: [Entry]
    /// From modules.softdep (or the modules' own `softdep=`): name -> modules to load before it.
    public var softdepPre: [String: [String]] = [:]
    /// From modules.alias: (pattern normalized as kmod keys it, module name), in file order.
    public var aliases: [(pattern: String, module: String)] = []
    private var byName: [String: Int] = [:]
    private var byPath: [String: Int] = [:]

    public init(entries: [Entry], softdepPre: [String: [String]] = [:]) {
        self.entries = entries
        self.softdepPre = softdepPre
        // The first line for a name wins, as it does for modprobe reading the text file.
        for (i, entry) in entries.enumerated() {
            if byName[entry.name] == nil { byName[entry.name] = i }
            if byPath[entry.path] == nil { byPath[entry.path] = i }
        }
    }

    public static func == (a: ModulesDep, b: ModulesDep) -> Bool {
        a.entries == b.entries && a.softdepPre == b.softdepPre
            && a.aliases.map(\.pattern) == b.aliases.map(\.pattern) && a.aliases.map(\.module) == b.aliases.map(\.module)
    }

    /// Reads `alias PATTERN MODULE` lines of modules.alias, so `closure` can resolve names such as
    /// "crypto-crc32c" (a softdep of ext4) or "fs-ext4" to modules, as modprobe does.
    public mutating func addAliases(_ text: String) {
        for rawLine in text.split(separator: "\n") {
            let words = rawLine.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard words.count == 3, words[0] == "alias", let pattern = Depmod.normalizedAlias(String(words[1])) else { continue }
            aliases.append((pattern, ModuleName.normalized(String(words[2]))))
        }
    }

    /// The entries a module name or an alias stands for: the module of that name, else every
    /// module with a matching alias (fnmatch patterns, as modprobe matches modules.alias).
    func resolve(_ name: String) -> [Int] {
        if let index = byName[ModuleName.fromPath(name)] { return [index] }
        guard let key = Depmod.normalizedAlias(name) else { return [] }
        var found: [Int] = []
        for alias in aliases where fnmatch(alias.pattern, key, 0) == 0 {
            if let index = byName[alias.module], !found.contains(index) { found.append(index) }
        }
        return found
    }

    /// Parses modules.dep text. Blank lines and `#` comments are skipped; a line without a colon
    /// is an error naming its line number. `name` names the file in errors.
    public static func parse(_ text: String, name: String = "modules.dep") throws(ModulesDepError) -> ModulesDep {
        var entries: [Entry] = []
        for (number, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.trimmingTrailingWhitespace()
            if line.isEmpty || line.hasPrefix("#") { continue }
            guard let colon = line.firstIndex(of: ":") else {
                throw .badLine(file: name, line: number + 1, text: String(line.prefix(120)), expected: "PATH: DEPENDENCY...")
            }
            let path = String(line[..<colon]).trimmingTrailingWhitespace()
            guard !path.isEmpty else {
                throw .badLine(file: name, line: number + 1, text: String(line.prefix(120)), expected: "a module path before the colon")
            }
            let dependencies = line[line.index(after: colon)...].split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            entries.append(Entry(path: path, dependencies: dependencies))
        }
        return ModulesDep(entries: entries)
    }

    /// Reads `softdep NAME pre: a b post: c` lines of modules.softdep (or a modprobe.d file) into
    /// `softdepPre`; other lines are ignored.
    public mutating func addSoftdeps(_ text: String) {
        for rawLine in text.split(separator: "\n") {
            let words = rawLine.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard words.count >= 3, words[0] == "softdep" else { continue }
            let (pre, _) = ModuleInfo.parseSoftdep(words.dropFirst(2).joined(separator: " "))
            if !pre.isEmpty { softdepPre[ModuleName.normalized(String(words[1])), default: []] += pre }
        }
    }

    /// The text, one line per entry, as depmod writes it.
    public func encoded() -> [UInt8] {
        var out = ""
        for entry in entries {
            out += entry.path + ":"
            for dependency in entry.dependencies { out += " " + dependency }
            out += "\n"
        }
        return Array(out.utf8)
    }

    public func entry(named name: String) -> Entry? {
        byName[ModuleName.normalized(name)].map { entries[$0] }
    }

    /// The modules to load for `names`, in a valid load order: each module after everything it
    /// needs. Deterministic: requests are taken in the order given, a module's needs in reverse
    /// line order (the order modprobe loads them). With `softdeps`, each module's `pre:` soft
    /// dependencies (and their needs) come before it; soft dependencies that are not in the file
    /// are skipped silently, since modprobe treats them as optional. Names may be aliases (see
    /// `addAliases`). Names in `builtIn` need no
    /// file and are neither listed nor missing. A dependency loop cannot recurse forever: a module
    /// already on the path is skipped.
    public func closure(of names: [String], softdeps: Bool = false, builtIn: Set<String> = []) -> Closure {
        var order: [String] = []
        var missing: [String] = []
        var done = Set<Int>()
        var onPath = Set<Int>()
        // An explicit stack: (entry index, expanded?)
        func visit(_ start: Int) {
            var stack: [(index: Int, expanded: Bool)] = [(start, false)]
            while let (index, expanded) = stack.popLast() {
                if expanded {
                    onPath.remove(index)
                    if done.insert(index).inserted { order.append(entries[index].path) }
                    continue
                }
                if done.contains(index) || onPath.contains(index) { continue }
                onPath.insert(index)
                stack.append((index, true))
                let entry = entries[index]
                var needs: [Int] = []
                for path in entry.dependencies.reversed() {
                    if let d = byPath[path] ?? byName[ModuleName.fromPath(path)] {
                        needs.append(d)
                    } else if !builtIn.contains(ModuleName.fromPath(path)) {
                        let name = ModuleName.fromPath(path)
                        if !missing.contains(name) { missing.append(name) }
                    }
                }
                if softdeps {
                    // Loaded before the module and before its hard dependencies, as modprobe does.
                    needs = (softdepPre[entry.name] ?? []).flatMap(resolve) + needs
                }
                // Pushed in reverse, so the first need is expanded (and loaded) first.
                for d in needs.reversed() where !done.contains(d) && !onPath.contains(d) { stack.append((d, false)) }
            }
        }
        for name in names {
            let normalized = ModuleName.fromPath(name)
            let found = resolve(name)
            if !found.isEmpty {
                found.forEach(visit)
            } else if !builtIn.contains(normalized) && !missing.contains(normalized) {
                missing.append(normalized)
            }
        }
        return Closure(paths: order, missing: missing)
    }
}

public enum ModulesDepError: RehostError, Equatable {
    case badLine(file: String, line: Int, text: String, expected: String)

    public var description: String {
        switch self {
        case let .badLine(file, line, text, expected):
            return "\(file):\(line): \(text.debugDescription) is not a modules.dep line, expected \(expected)"
        }
    }
}

extension StringProtocol {
    func trimmingTrailingWhitespace() -> String {
        var s = Substring(self)
        while let last = s.last, last == " " || last == "\t" || last == "\r" { s.removeLast() }
        return String(s)
    }
}
