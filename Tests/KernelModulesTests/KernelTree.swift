import Foundation
import KernelModules
import Synchronization
import TestSupport

/// A few hundred modules of Debian's kernel (block, virtio, ATA, SCSI, ext4 and what they need)
/// laid out as `DIR/lib/modules/<version>/` for depmod and modprobe, with modules.order,
/// modules.builtin and modules.builtin.modinfo copied from the package.
struct KernelTree {
    static let subsetDirectories = [
        "kernel/drivers/block", "kernel/drivers/virtio", "kernel/drivers/ata", "kernel/drivers/scsi",
        "kernel/fs/ext4", "kernel/fs/jbd2", "kernel/fs/mbcache.ko", "kernel/lib", "kernel/crypto", "kernel/drivers/xen",
    ]

    let kernel: DebianKernel
    let directory: TemporaryDirectory
    /// Relative to the modules directory, sorted.
    let modulePaths: [String]

    var base: String { directory.path }
    var version: String { kernel.version }
    var modulesDirectory: String { "\(directory.path)/lib/modules/\(kernel.version)" }

    /// Hard links (copies across filesystems) of the subset into a fresh directory.
    static func subset(_ parts: [String] = subsetDirectories) throws -> KernelTree {
        let kernel = try DebianKernel.current()
        let directory = try TemporaryDirectory(prefix: "rehost-kmod")
        let target = "\(directory.path)/lib/modules/\(kernel.version)"
        let fm = FileManager.default
        var paths: [String] = []
        for part in parts {
            let source = "\(kernel.modulesDirectory)/\(part)"
            var isDirectory: ObjCBool = false
            guard fm.fileExists(atPath: source, isDirectory: &isDirectory) else { continue }
            let files = isDirectory.boolValue
                ? (fm.enumerator(atPath: source)?.compactMap { $0 as? String } ?? []).filter(ModuleName.isModulePath).map { "\(part)/\($0)" }
                : [part]
            for file in files {
                let destination = "\(target)/\(file)"
                try fm.createDirectory(atPath: (destination as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                do { try fm.linkItem(atPath: "\(kernel.modulesDirectory)/\(file)", toPath: destination) }
                catch { try fm.copyItem(atPath: "\(kernel.modulesDirectory)/\(file)", toPath: destination) }
                paths.append(file)
            }
        }
        for name in ["modules.order", "modules.builtin", "modules.builtin.modinfo"] {
            try fm.copyItem(atPath: "\(kernel.modulesDirectory)/\(name)", toPath: "\(target)/\(name)")
        }
        return KernelTree(kernel: kernel, directory: directory, modulePaths: paths.sorted())
    }

    /// Parsed modules, cached per path of the package tree (they never change).
    private static let infoCache = Mutex<[String: ModuleInfo]>([:])

    func modules() throws -> [(path: String, info: ModuleInfo)] {
        try modulePaths.map { path in
            let key = "\(kernel.modulesDirectory)/\(path)"
            if let known = Self.infoCache.withLock({ $0[key] }) { return (path, known) }
            let info = try ModuleInfo.read(elf: try readBytes(key), path: path)
            Self.infoCache.withLock { $0[key] = info }
            return (path, info)
        }
    }

    func file(_ name: String) throws -> [UInt8] { try readBytes("\(modulesDirectory)/\(name)") }

    func text(_ name: String) throws -> String { String(decoding: try file(name), as: UTF8.self) }

    /// What Depmod.generate needs besides the modules, from this tree's files.
    func generateOutputs() throws -> [String: [UInt8]] {
        Depmod.generate(modules: try modules(),
                        order: try text("modules.order").split(separator: "\n").map(String.init),
                        builtin: try text("modules.builtin").split(separator: "\n").map(String.init),
                        builtinModinfo: try file("modules.builtin.modinfo"))
    }
}

struct TestFileError: Error, CustomStringConvertible {
    let description: String
}

func readBytes(_ path: String) throws -> [UInt8] {
    guard let data = FileManager.default.contents(atPath: path) else { throw TestFileError(description: "\(path): cannot read") }
    return Array(data)
}

func writeBytes(_ bytes: [UInt8], to path: String) throws {
    guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else { throw TestFileError(description: "\(path): cannot write") }
}
