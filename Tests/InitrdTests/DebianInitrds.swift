import Foundation
import Initrd
import KernelModules
import Synchronization
import Testing
import TestSupport

/// Debian's kernel modules as the oracle sees them: a few directories of the real package indexed
/// by the host's `depmod -b`, whose modules.dep (with modules.softdep and modules.alias) gives the
/// closures and their load order. Computed once per test process; the scratch tree is dropped.
struct DebianModules: Sendable {
    static let directories = [
        "kernel/drivers/block", "kernel/drivers/virtio", "kernel/drivers/ata", "kernel/drivers/scsi",
        "kernel/fs/ext4", "kernel/fs/jbd2", "kernel/fs/mbcache.ko", "kernel/lib", "kernel/crypto",
        "kernel/arch/x86/crypto",
    ]

    let kernel: DebianKernel
    let dep: ModulesDep

    var version: String { kernel.version }

    private static let cached = Mutex<DebianModules?>(nil)

    static func shared() throws -> DebianModules {
        // Held while making, so parallel tests wait for one depmod run.
        try cached.withLock { slot in
            if let slot { return slot }
            let made = try make()
            slot = made
            return made
        }
    }

    private static func make() throws -> DebianModules {
        let kernel = try DebianKernel.current()
        let scratch = try TemporaryDirectory(prefix: "rehost-initrd-oracle")
        let target = "\(scratch.path)/lib/modules/\(kernel.version)"
        let fm = FileManager.default
        for part in directories {
            let source = "\(kernel.modulesDirectory)/\(part)"
            var isDirectory: ObjCBool = false
            guard fm.fileExists(atPath: source, isDirectory: &isDirectory) else { continue }
            let files = isDirectory.boolValue
                ? (fm.enumerator(atPath: source)?.compactMap { $0 as? String } ?? []).filter(ModuleName.isModulePath).map { "\(part)/\($0)" }
                : [part]
            for file in files { try linkOrCopy("\(kernel.modulesDirectory)/\(file)", "\(target)/\(file)") }
        }
        for name in ["modules.order", "modules.builtin", "modules.builtin.modinfo"] {
            try linkOrCopy("\(kernel.modulesDirectory)/\(name)", "\(target)/\(name)")
        }
        try Command.run("depmod", ["-b", scratch.path, kernel.version]).requireSuccess()
        var dep = try ModulesDep.parse(try readText("\(target)/modules.dep"))
        dep.addSoftdeps(try readText("\(target)/modules.softdep"))
        dep.addAliases(try readText("\(target)/modules.alias"))
        return DebianModules(kernel: kernel, dep: dep)
    }

    /// Module paths (relative to lib/modules/<version>) for `names` and everything they need,
    /// soft dependencies included, each after what it needs.
    func closure(_ names: [String]) throws -> [String] {
        let closure = dep.closure(of: names, softdeps: true)
        guard closure.missing.isEmpty else { throw TestFileError("not in the oracle's subset: \(closure.missing)") }
        return closure.paths
    }

    /// Parsed modules by path; the package tree never changes, and parsing ext4.ko in a debug
    /// build is a noticeable part of each test.
    private static let parsed = Mutex<[String: InitrdModule]>([:])

    /// The modules at `paths`, as InitrdPatcher takes them.
    func initrdModules(_ paths: [String]) throws -> [InitrdModule] {
        try paths.map { path in
            if let known = Self.parsed.withLock({ $0[path] }) { return known }
            let elf = try readFile("\(kernel.modulesDirectory)/\(path)")
            let module = InitrdModule(info: try ModuleInfo.read(elf: elf, path: path), relativePath: path, elf: elf)
            Self.parsed.withLock { $0[path] = module }
            return module
        }
    }

    /// The drivers the patch adds in every test: virtio (KVM) and IDE/AHCI (VirtualBox, VMware).
    static let targetDrivers = ["virtio_blk", "virtio_pci", "ata_piix", "ahci", "sd_mod"]
    /// What the guest's initrd already loads (a Xen domU built with MODULES=dep or --hostonly).
    static let guestDrivers = ["xen_blkfront", "ext4"]
}

/// The kinds of image the tests build, each as its tool writes it.
enum InitrdLayout: String, CaseIterable, Sendable, CustomTestStringConvertible {
    /// Debian 12 initramfs-tools: usr-merged, `cpio -o -H newc | zstd -19`.
    case initramfsToolsZstd
    /// The same behind an uncompressed early-microcode cpio.
    case initramfsToolsMicrocodeZstd
    /// initramfs-tools with COMPRESS=lz4 (`lz4 -9 -l`, the legacy frame, no end marker).
    case initramfsToolsLz4
    /// dracut: an early-microcode cpio (with `early_cpio`), then the gzip'd main archive.
    case dracutMicrocodeGzip
    /// initramfs-tools keeping the modules zstd-compressed (`x.ko.zst`), as Ubuntu 24.04 does;
    /// the modules Rehost adds are plain .ko beside them.
    case initramfsToolsZstdModules

    var testDescription: String { rawValue }

    var family: InitrdFamily { rawValue.hasPrefix("dracut") ? .dracut : .initramfsTools }
    var hasMicrocode: Bool { rawValue.contains("Microcode") }
    var compressedModules: Bool { rawValue.hasSuffix("Modules") }
    var compressor: [String] {
        if rawValue.hasSuffix("Lz4") { return ["lz4", "-9", "-l", "-c", "-q"] }
        if rawValue.hasSuffix("Gzip") { return ["gzip", "-9", "-n", "-c"] }
        return ["zstd", "-q", "-19", "-T0", "-c"]
    }
    var compression: String {
        if rawValue.hasSuffix("Lz4") { return "lz4" }
        if rawValue.hasSuffix("Gzip") { return "gzip" }
        return "zstd"
    }
}

/// A test initrd built the way its tool builds it: a staging tree (usr-merged: `lib -> usr/lib`,
/// `bin -> usr/bin`) with the guest's drivers and their closure under usr/lib/modules/<version>,
/// the kernel's modules.order/builtin/builtin.modinfo, an index written by the host's
/// `depmod -b`, packed by GNU cpio (newc) and compressed by the real compressor.
struct BuiltInitrd {
    let layout: InitrdLayout
    let bytes: [UInt8]
    /// Module paths (relative to the modules directory) inside the image.
    let modulePaths: [String]
    /// conf/modules as written, for initramfs-tools.
    static let confModules = "xen-blkfront\next4\n"

    static func make(_ layout: InitrdLayout, modules: DebianModules, scratch: TemporaryDirectory) throws -> BuiltInitrd {
        let stage = scratch.file("stage-\(layout.rawValue)")
        let fm = FileManager.default
        for directory in ["usr/lib", "usr/bin", "etc", "scripts", "conf"] {
            try fm.createDirectory(atPath: "\(stage)/\(directory)", withIntermediateDirectories: true)
        }
        try fm.createSymbolicLink(atPath: "\(stage)/lib", withDestinationPath: "usr/lib")
        try fm.createSymbolicLink(atPath: "\(stage)/bin", withDestinationPath: "usr/bin")
        try writeFile("#!/bin/sh\n", to: "\(stage)/usr/bin/sh")
        switch layout.family {
        case .dracut:
            try fm.createDirectory(atPath: "\(stage)/usr/lib/dracut", withIntermediateDirectories: true)
            try writeFile("bash\nsystemd\nkernel-modules\n", to: "\(stage)/usr/lib/dracut/modules.txt")
            try writeFile("#!/bin/sh\nexec /usr/lib/systemd/systemd\n", to: "\(stage)/init")
        default:
            try writeFile("MODULES=dep\nBUSYBOX=auto\nCOMPRESS=\(layout.compression)\n", to: "\(stage)/conf/initramfs.conf")
            try writeFile(Self.confModules, to: "\(stage)/conf/modules")
            try writeFile("load_modules() { :; }\n", to: "\(stage)/scripts/functions")
            try writeFile("#!/bin/sh\n. /scripts/functions\n", to: "\(stage)/init")
        }
        let version = modules.version
        let root = "\(stage)/usr/lib/modules/\(version)"
        var paths = try modules.closure(DebianModules.guestDrivers)
        for path in paths { try copyFile("\(modules.kernel.modulesDirectory)/\(path)", "\(root)/\(path)") }
        if layout.compressedModules {
            try Command.run("zstd", ["-q", "--rm"] + paths.map { "\(root)/\($0)" }).requireSuccess()
            paths = paths.map { $0 + ".zst" }
        }
        for name in ["modules.order", "modules.builtin", "modules.builtin.modinfo"] {
            try copyFile("\(modules.kernel.modulesDirectory)/\(name)", "\(root)/\(name)")
        }
        // Through the `lib` symlink, as mkinitramfs and dracut run it on their staging directory.
        try Command.run("depmod", ["-b", stage, version]).requireSuccess()

        let main = try Command.run("sh", ["-c", "find . | LC_ALL=C sort | cpio -o -H newc --quiet"],
                                   currentDirectory: stage).requireSuccess().stdoutBytes
        var bytes: [UInt8] = []
        if layout.hasMicrocode {
            let early = scratch.file("early-\(layout.rawValue)")
            try fm.createDirectory(atPath: "\(early)/kernel/x86/microcode", withIntermediateDirectories: true)
            try writeFile(String(repeating: "\u{1}", count: 700), to: "\(early)/kernel/x86/microcode/GenuineIntel.bin")
            if layout.family == .dracut { try writeFile("1\n", to: "\(early)/early_cpio") }
            bytes = try Command.run("sh", ["-c", "find . | LC_ALL=C sort | cpio -o -H newc --quiet"],
                                    currentDirectory: early).requireSuccess().stdoutBytes
            #expect(bytes.count % 512 == 0, "GNU cpio pads the early archive to 512 bytes")
        }
        bytes += try Command.run(layout.compressor[0], Array(layout.compressor.dropFirst()), stdin: main).requireSuccess().stdoutBytes
        return BuiltInitrd(layout: layout, bytes: bytes, modulePaths: paths)
    }

    /// A RHEL 5 mkinitrd-shaped image: `init` (nash), `bin/nash`, `lib/<name>.ko` for `modules`,
    /// a real `lib` directory; `cpio -H newc | gzip -9`.
    static func nash(init script: String, modules: [(file: String, bytes: [UInt8])], scratch: TemporaryDirectory,
                     tag: String) throws -> [UInt8] {
        let stage = scratch.file("nash-\(tag)")
        let fm = FileManager.default
        for directory in ["lib", "bin", "dev", "proc", "sys", "sysroot"] {
            try fm.createDirectory(atPath: "\(stage)/\(directory)", withIntermediateDirectories: true)
        }
        try writeFile(script, to: "\(stage)/init")
        try writeFile("nash\n", to: "\(stage)/bin/nash")
        for module in modules {
            guard fm.createFile(atPath: "\(stage)/lib/\(module.file)", contents: Data(module.bytes)) else {
                throw TestFileError("cannot write \(stage)/lib/\(module.file)")
            }
        }
        let archive = try Command.run("sh", ["-c", "find . | LC_ALL=C sort | cpio -o -H newc --quiet"],
                                      currentDirectory: stage).requireSuccess().stdoutBytes
        return try Command.run("gzip", ["-9", "-n", "-c"], stdin: archive).requireSuccess().stdoutBytes
    }
}

/// The repository's independent walker (Tests/Tools/initramfs-walk.py), run by Debian's python3,
/// which has python3-zstandard and python3-lz4 (install-deps.sh).
enum Walker {
    static let python = "/usr/bin/python3"
    static var script: String { "\(Fixture.repositoryRoot)/Tests/Tools/initramfs-walk.py" }

    struct Member {
        var offset: Int
        var length: Int
        var compression: String
        var entries: [[String: Any]]
        var names: [String] { entries.compactMap { $0["name"] as? String } }
        var json: String
    }

    /// Walks `image` (and unpacks it into `extractTo` when given).
    static func walk(_ image: String, extractTo: String? = nil) throws -> [Member] {
        let arguments = (extractTo.map { ["--extract", $0] } ?? []) + [image]
        let result = try Command.run(python, [script] + arguments).requireSuccess()
        let json = try JSONSerialization.jsonObject(with: Data(result.stdoutBytes)) as? [String: Any]
        return try (json?["members"] as? [[String: Any]] ?? []).map { member in
            let text = try JSONSerialization.data(withJSONObject: member, options: [.sortedKeys])
            return Member(offset: member["offset"] as? Int ?? -1, length: member["length"] as? Int ?? -1,
                          compression: member["compression"] as? String ?? "?",
                          entries: member["entries"] as? [[String: Any]] ?? [],
                          json: String(decoding: text, as: UTF8.self))
        }
    }
}

struct TestFileError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

func readFile(_ path: String) throws -> [UInt8] {
    guard let data = FileManager.default.contents(atPath: path) else { throw TestFileError("\(path): cannot read") }
    return Array(data)
}

func readText(_ path: String) throws -> String { String(decoding: try readFile(path), as: UTF8.self) }

func writeFile(_ text: String, to path: String) throws {
    guard FileManager.default.createFile(atPath: path, contents: Data(text.utf8)) else { throw TestFileError("\(path): cannot write") }
}

func writeFile(_ data: [UInt8], to path: String) throws {
    guard FileManager.default.createFile(atPath: path, contents: Data(data)) else { throw TestFileError("\(path): cannot write") }
}

/// A hard link (a copy across filesystems), parents created.
func linkOrCopy(_ source: String, _ destination: String) throws {
    let fm = FileManager.default
    try fm.createDirectory(atPath: (destination as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    do { try fm.linkItem(atPath: source, toPath: destination) } catch { try fm.copyItem(atPath: source, toPath: destination) }
}

/// A copy, parents created (the staging tree is packed, so hard links would not matter, but the
/// cache must never be written through).
func copyFile(_ source: String, _ destination: String) throws {
    let fm = FileManager.default
    try fm.createDirectory(atPath: (destination as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    try fm.copyItem(atPath: source, toPath: destination)
}
