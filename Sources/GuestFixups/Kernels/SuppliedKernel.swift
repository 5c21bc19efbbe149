import ImageCore
import KernelModules
import KernelPackages

/// A kernel package the user supplies with `--add-kernel`, read and checked before anything is
/// written: its files, and the module index its package manager's scriptlet (depmod) would have
/// written, computed from the modules' own `.modinfo` (no guest or package code runs).
public struct SuppliedKernel: Sendable {
    public let packagePath: String
    public let package: KernelPackage
    public let kernel: PackagedKernel
    /// modules.dep, modules.alias, ... and their .bin forms, as depmod writes them.
    public let indexFiles: [String: [UInt8]]
    /// Bytes the package puts in the guest, for sizing the disk.
    public let installedBytes: UInt64

    public var release: String { kernel.release }

    /// The largest module file read when building the index.
    static let moduleLimit = 64 << 20

    public static func prepare(path: String) throws -> SuppliedKernel {
        let package = try KernelPackage.read(path: path)
        guard let kernel = package.kernels.last else {
            throw SuppliedKernelError.noKernel(path: path)
        }
        guard kernel.image.bootsOnBIOS else {
            throw SuppliedKernelError.doesNotBoot(path: path, release: kernel.release, because: kernel.image.detail)
        }
        let root = kernel.modulesDirectory.hasSuffix("/") ? kernel.modulesDirectory : kernel.modulesDirectory + "/"
        var modules: [(path: String, info: ModuleInfo)] = []
        var order: [String]?, builtin: [String]?, builtinModinfo: [UInt8]?
        for file in package.files where file.kind == .regular && file.path.hasPrefix(root) {
            let relative = String(file.path.dropFirst(root.count))
            switch relative {
            case "modules.order": order = lines(file.data)
            case "modules.builtin": builtin = lines(file.data)
            case "modules.builtin.modinfo": builtinModinfo = file.data
            default:
                guard ModuleName.isModulePath(relative) else { continue }
                let elf = try ModuleName.plainModule(file.data, path: file.path, limit: moduleLimit)
                let info = try ModuleInfo.read(elf: elf, path: file.path)
                if let built = info.vermagic?.split(separator: " ").first, built != kernel.release {
                    throw SuppliedKernelError.moduleForAnotherKernel(path: path, module: file.path, builtFor: String(built),
                                                                     release: kernel.release)
                }
                modules.append((relative, info))
            }
        }
        guard !modules.isEmpty else { throw SuppliedKernelError.noModules(path: path, directory: kernel.modulesDirectory) }
        let index = Depmod.generate(modules: modules, order: order, builtin: builtin, builtinModinfo: builtinModinfo)
        let bytes = package.files.reduce(UInt64(0)) { $0 + UInt64($1.data.count) }
            + index.values.reduce(UInt64(0)) { $0 + UInt64($1.count) }
        return SuppliedKernel(packagePath: path, package: package, kernel: kernel, indexFiles: index, installedBytes: bytes)
    }

    private static func lines(_ data: [UInt8]) -> [String] {
        String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
    }
}

public enum SuppliedKernelError: RehostError, Equatable {
    case noKernel(path: String)
    case doesNotBoot(path: String, release: String, because: String)
    case noModules(path: String, directory: String)
    case noInitrdToDeriveFrom(path: String, release: String)
    case moduleForAnotherKernel(path: String, module: String, builtFor: String, release: String)

    public var description: String {
        switch self {
        case let .noKernel(path):
            return "\(path): --add-kernel needs a kernel package; this one installs no kernel"
        case let .doesNotBoot(path, release, because):
            return "\(path): its kernel \(release) does not boot off Xen: \(because)"
        case let .noModules(path, directory):
            return "\(path): no kernel modules in \(directory); the target's disk drivers could not be loaded"
        case let .moduleForAnotherKernel(path, module, builtFor, release):
            return "\(path): \(module) is built for kernel \(builtFor), not the package's \(release)"
        case let .noInitrdToDeriveFrom(path, release):
            return "\(path): the guest has no readable initrd of a known family (initramfs-tools, dracut, mkinitrd) to build one for \(release) from"
        }
    }
}
