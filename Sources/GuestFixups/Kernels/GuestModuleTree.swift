import ImageCore
import Initrd
import KernelModules

/// One kernel's modules inside the guest, `/lib/modules/<release>/`: where each module is, what
/// it depends on, and which drivers the kernel has built in.
///
/// Dependencies come from the guest's modules.dep and modules.softdep when it has them (written
/// by its depmod), else from each module's own `.modinfo`, which modpost fills at build time.
final class GuestModuleTree {
    let fs: any GuestFilesystem
    let release: String
    let root: String
    /// Module name -> path relative to `root`, as on disk (with any .xz/.zst/.gz suffix).
    let paths: [String: String]
    private let dependencyLists: [String: [String]]?
    private let softdepLists: [String: [String]]
    private let builtin: Set<String>?
    private let config: KernelConfig?
    private var loaded: [String: InitrdModule] = [:]
    private var exactAliases: [String: [String]]?

    /// The largest module file read: the biggest real ones are a few MiB.
    static let moduleSizeLimit = 64 << 20

    init?(fs: any GuestFilesystem, release: String) throws {
        let root = "/lib/modules/\(release)"
        guard try !fs.listDirectory(root).isEmpty else { return nil }
        self.fs = fs
        self.release = release
        self.root = root

        var paths: [String: String] = [:]
        var dependencies: [String: [String]]?
        if let text = try fs.readText(root + "/modules.dep") {
            var lists: [String: [String]] = [:]
            for line in text.split(separator: "\n") {
                guard let colon = line.firstIndex(of: ":") else { continue }
                let path = String(line[..<colon])
                let name = ModuleName.fromPath(path)
                paths[name] = path
                lists[name] = line[line.index(after: colon)...].split(separator: " ").map { ModuleName.fromPath(String($0)) }
            }
            dependencies = lists.isEmpty ? nil : lists
        }
        if dependencies == nil {
            // No index (a kernel unpacked from a package, or depmod never ran): find the files.
            for top in ["kernel", "extra", "updates"] {
                try Self.walk(fs, directory: root + "/" + top, relative: top, into: &paths, budget: 100_000)
            }
        }
        self.paths = paths
        dependencyLists = dependencies

        var softdeps: [String: [String]] = [:]
        if let text = try fs.readText(root + "/modules.softdep") {
            for line in text.split(separator: "\n") {
                let fields = line.split(separator: " ").map(String.init)
                guard fields.count >= 3, fields[0] == "softdep" else { continue }
                var pre: [String] = []
                var inPre = false
                for field in fields.dropFirst(2) {
                    if field.hasSuffix(":") { inPre = field == "pre:"; continue }
                    if inPre { pre.append(field) }
                }
                softdeps[ModuleName.normalized(fields[1])] = pre
            }
        }
        softdepLists = softdeps
        builtin = try fs.readText(root + "/modules.builtin").map { text in
            Set(text.split(separator: "\n").map { ModuleName.fromPath(String($0)) })
        }
        config = try fs.readText("/boot/config-\(release)").map(KernelConfig.init(text:))
    }

    private static func walk(_ fs: any GuestFilesystem, directory: String, relative: String,
                             into paths: inout [String: String], budget: Int) throws {
        var remaining = budget
        var pending = [(directory, relative)]
        while let (path, rel) = pending.popLast(), remaining > 0 {
            for name in try fs.listDirectory(path) {
                remaining -= 1
                let child = path + "/" + name, childRelative = rel + "/" + name
                switch try fs.entry(at: child) {
                case .directory?: pending.append((child, childRelative))
                case .regularFile?:
                    if ModuleName.isModulePath(name) { paths[ModuleName.fromPath(name)] = childRelative }
                default: break
                }
            }
        }
    }

    /// Built into the kernel image: listed in modules.builtin (2.6.33+), else `=y` in its config.
    func isBuiltIn(_ name: String) -> Bool {
        if let builtin { return builtin.contains(name) }
        guard let config, let symbol = DriverConfigSymbols.byModule[name] else { return false }
        return config.state(of: symbol) == .builtIn
    }

    /// The module read from the guest and decompressed; nil if the guest has no such module.
    func module(_ name: String) throws -> InitrdModule? {
        if let cached = loaded[name] { return cached }
        guard let relative = paths[name] else { return nil }
        let path = root + "/" + relative
        guard let bytes = try fs.readFile(path) else { return nil }
        guard bytes.count <= Self.moduleSizeLimit else { throw KernelAnalysisError.moduleTooLarge(path: path, size: bytes.count) }
        let elf = try ModuleName.plainModule(bytes, path: path, limit: Self.moduleSizeLimit)
        var plainRelative = relative
        if let suffix = ModuleName.compressionSuffix(relative) { plainRelative.removeLast(suffix.count) }
        let info = try ModuleInfo.read(elf: elf, path: path)
        // A module built for another kernel is refused by the kernel at load time; say so now.
        if let vermagic = info.vermagic, let built = vermagic.split(separator: " ").first, built != release {
            throw KernelAnalysisError.moduleForAnotherKernel(path: path, builtFor: String(built), release: release)
        }
        let module = InitrdModule(info: info, relativePath: plainRelative, elf: elf)
        loaded[name] = module
        return module
    }

    /// Direct and soft (pre:) dependencies, by name.
    func dependencies(of name: String) throws -> [String] {
        var result: [String] = []
        if let lists = dependencyLists {
            result = lists[name] ?? []
            result += try (softdepLists[name] ?? []).flatMap(resolve)
        } else if let module = try module(name) {
            result = module.info.depends.map(ModuleName.normalized) + (try module.info.softdepPre.flatMap(resolve))
        }
        return result
    }

    /// A soft dependency may name an alias ("crc32c"): every module that provides it.
    private func resolve(_ nameOrAlias: String) throws -> [String] {
        let name = ModuleName.normalized(nameOrAlias)
        if paths[name] != nil || isBuiltIn(name) { return [name] }
        if exactAliases == nil {
            var aliases: [String: [String]] = [:]
            for line in (try fs.readText(root + "/modules.alias") ?? "").split(separator: "\n") {
                let fields = line.split(separator: " ")
                guard fields.count == 3, fields[0] == "alias", !fields[1].contains("*") else { continue }
                aliases[String(fields[1]), default: []].append(ModuleName.normalized(String(fields[2])))
            }
            exactAliases = aliases
        }
        return exactAliases?[nameOrAlias] ?? []
    }

    /// The modules to load for `names`, dependencies first, leaving out built-in ones; and the
    /// names (requested or needed) the guest does not have. Soft dependencies that the guest
    /// lacks are not missing: they are optional by definition.
    func closure(of names: [String]) throws -> (ordered: [String], missing: [String]) {
        var ordered: [String] = [], missing: [String] = []
        var visited = Set<String>()
        func visit(_ name: String, depth: Int) throws {
            guard depth < 64, visited.insert(name).inserted, !isBuiltIn(name) else { return }
            guard paths[name] != nil else {
                missing.append(name)
                return
            }
            for dependency in try dependencies(of: name) { try visit(dependency, depth: depth + 1) }
            ordered.append(name)
        }
        for name in names { try visit(ModuleName.normalized(name), depth: 0) }
        return (ordered, missing)
    }
}

public enum KernelAnalysisError: RehostError, Equatable {
    case moduleTooLarge(path: String, size: Int)
    case moduleForAnotherKernel(path: String, builtFor: String, release: String)

    public var description: String {
        switch self {
        case let .moduleTooLarge(path, size):
            return "\(path): \(size) bytes is too large for a kernel module (at most \(GuestModuleTree.moduleSizeLimit >> 20) MiB expected)"
        case let .moduleForAnotherKernel(path, builtFor, release):
            return "\(path): built for kernel \(builtFor) (its vermagic), not \(release): the modules tree does not match the kernel"
        }
    }
}
