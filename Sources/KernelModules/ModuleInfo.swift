import Compression
import ImageCore

/// What depmod and modprobe need from one kernel module (.ko), read from its ELF sections:
///
/// - `.modinfo`: NUL-separated `key=value` strings (zero padding may sit between them):
///   `depends=virtio,virtio_ring` (computed by modpost at build time), `alias=virtio:d00000002v*`,
///   `softdep=pre: crc32c`, `vermagic=6.1.0-57-amd64 SMP preempt mod_unload modversions `,
///   `license=GPL`, `name=virtio_blk` (since 3.x).
/// - exported symbols: the names of `__crc_*` symbols in `.symtab` when the kernel has
///   CONFIG_MODVERSIONS, else the strings of `__ksymtab_strings` (kmod's `kmod_elf_get_symbols`
///   takes them in that order of preference).
/// - required symbols: the undefined (SHN_UNDEF) names of `.symtab`, in table order; depmod orders
///   a module's direct dependencies by the first of these each one provides.
public struct ModuleInfo: Sendable, Equatable {
    /// modinfo `name=` if present, else from the file name; normalized ('-' -> '_').
    public var name: String
    public var depends: [String] = []
    public var aliases: [String] = []
    public var softdepPre: [String] = []
    public var softdepPost: [String] = []
    /// The raw `softdep=` values, in .modinfo order ("pre: a b post: c"), as modules.softdep lists them.
    public var softdeps: [String] = []
    public var vermagic: String?
    public var license: String?
    public var exportedSymbols: [String] = []
    public var requiredSymbols: [String] = []
    /// Every `.modinfo` field in file order (`firmware`, `parm`, `description`, …).
    public var fields: [ModinfoField] = []

    public init(name: String) { self.name = ModuleName.normalized(name) }

    /// Reads a plain (decompressed) module. `path` names it in errors and gives the name when
    /// `.modinfo` has none.
    public static func read(elf bytes: [UInt8], path: String) throws(ModuleError) -> ModuleInfo {
        let elf: ELFFile
        do { elf = try ELFFile(bytes: bytes, name: path) } catch { throw .elf(error) }
        guard let modinfo = elf.section(named: ".modinfo") else { throw .noModinfo(path: path) }
        var info = ModuleInfo(name: ModuleName.fromPath(path))
        info.fields = parseModinfo(elf.data(of: modinfo))
        for field in info.fields {
            switch field.key {
            case "name" where !field.value.isEmpty: info.name = ModuleName.normalized(field.value)
            case "depends": info.depends += field.value.split(separator: ",").map(String.init)
            case "alias": info.aliases.append(field.value)
            // The first of a repeated field, as the kernel's get_modinfo finds it.
            case "vermagic" where info.vermagic == nil: info.vermagic = field.value
            case "license" where info.license == nil: info.license = field.value
            case "softdep":
                info.softdeps.append(field.value)
                let (pre, post) = parseSoftdep(field.value)
                info.softdepPre += pre
                info.softdepPost += post
            default: break
            }
        }

        let symbols: [ELFSymbol]
        do { symbols = try elf.symbols() } catch { throw .elf(error) }
        var crcNames: [String] = []
        var ksymtabNames: [String] = []
        for symbol in symbols {
            if symbol.isUndefined {
                if !symbol.name.isEmpty { info.requiredSymbols.append(symbol.name) }
            } else if symbol.name.hasPrefix("__crc_") {
                crcNames.append(String(symbol.name.dropFirst(6)))
            } else if symbol.name.hasPrefix("__ksymtab_") && symbol.name != "__ksymtab_strings" {
                ksymtabNames.append(String(symbol.name.dropFirst(10)))
            }
        }
        if !crcNames.isEmpty {
            info.exportedSymbols = crcNames
        } else if let strings = elf.section(named: "__ksymtab_strings") {
            info.exportedSymbols = strings.size == 0 ? [] : elf.data(of: strings).split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        } else {
            // Kernels before 2.6.19 have no __ksymtab_strings; their `__ksymtab_NAME` symbols still
            // name each export. (kmod finds none there; this only adds to modules.symbols.)
            info.exportedSymbols = ksymtabNames
        }
        return info
    }

    /// `key=value` strings separated by one or more NULs; a string without '=' is a key with an
    /// empty value, as kmod treats it.
    static func parseModinfo(_ data: ArraySlice<UInt8>) -> [ModinfoField] {
        data.split(separator: 0).map { entry in
            if let equals = entry.firstIndex(of: UInt8(ascii: "=")) {
                return ModinfoField(key: String(decoding: entry[..<equals], as: UTF8.self),
                                    value: String(decoding: entry[(equals + 1)...], as: UTF8.self))
            }
            return ModinfoField(key: String(decoding: entry, as: UTF8.self), value: "")
        }
    }

    /// "pre: a b post: c d" -> ([a, b], [c, d]); libkmod's `kmod_config_parse_softdep` rules:
    /// words go to the list named by the last `pre:`/`post:` seen, words before either are dropped.
    static func parseSoftdep(_ value: String) -> (pre: [String], post: [String]) {
        var pre: [String] = [], post: [String] = []
        var mode = 0
        for word in value.split(whereSeparator: { $0 == " " || $0 == "\t" }) {
            switch word {
            case "pre:": mode = 1
            case "post:": mode = 2
            default:
                if mode == 1 { pre.append(ModuleName.normalized(String(word))) }
                if mode == 2 { post.append(ModuleName.normalized(String(word))) }
            }
        }
        return (pre, post)
    }
}

public struct ModinfoField: Sendable, Equatable {
    public var key: String
    public var value: String
    public init(key: String, value: String) { self.key = key; self.value = value }
}

/// Module names as kmod compares them.
public enum ModuleName {
    /// '-' becomes '_' ("crc-t10dif" and "crc_t10dif" are one module).
    public static func normalized(_ s: String) -> String {
        String(s.map { $0 == "-" ? "_" : $0 })
    }

    /// The module name a path gives: the base name up to its first '.', normalized.
    /// "kernel/drivers/block/xen-blkfront.ko.xz" -> "xen_blkfront".
    public static func fromPath(_ path: String) -> String {
        let base = path.split(separator: "/", omittingEmptySubsequences: false).last.map(String.init) ?? path
        return normalized(String(base.prefix { $0 != "." }))
    }

    public static let compressionSuffixes = [".gz", ".xz", ".zst"]

    /// ".gz", ".xz" or ".zst" for a compressed module (`x.ko.xz`), nil for a plain `.ko`.
    public static func compressionSuffix(_ path: String) -> String? {
        compressionSuffixes.first { path.hasSuffix(".ko" + $0) }
    }

    /// Whether depmod takes the file for a module: `.ko` or `.ko` plus a compression suffix.
    /// The plain ELF of a module file: .ko as it is, .ko.gz/.ko.xz/.ko.zst decompressed (at most
    /// `limit` bytes, since the file comes from an image).
    public static func plainModule(_ data: [UInt8], path: String, limit: Int) throws -> [UInt8] {
        guard let suffix = compressionSuffix(path) else { return data }
        let format: StreamCompression = suffix == ".xz" ? .xz : (suffix == ".zst" ? .zstd : .gzip)
        return try data.withUnsafeBytes { try format.decompressAll($0, name: path, limit: limit) }
    }

    public static func isModulePath(_ path: String) -> Bool {
        path.hasSuffix(".ko") || compressionSuffix(path) != nil
    }
}

public enum ModuleError: RehostError, Equatable {
    case elf(ELFError)
    case noModinfo(path: String)

    public var description: String {
        switch self {
        case let .elf(error): return error.description
        case let .noModinfo(path): return "\(path): not a kernel module: the ELF file has no .modinfo section"
        }
    }
}
