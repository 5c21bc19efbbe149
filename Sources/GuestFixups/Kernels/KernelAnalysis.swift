import ImageCore
import Initrd
import KernelModules
import KernelPackages

/// Everything Rehost learns about one kernel in /boot: the image judged by its bytes, its
/// modules, its initrd, and per target whether it boots and what the initrd lacks.
final class KernelAnalysis {
    let fs: any GuestFilesystem
    /// The part of the file name after "vmlinuz-".
    let version: String
    let path: String
    let size: UInt64
    let image: KernelImage
    /// `uname -r` once running: from the image, else the file name.
    let release: String
    let modules: GuestModuleTree?
    let initrdPath: String?
    let initrdBytes: [UInt8]?
    let initrd: InitrdContents?
    let initrdProblem: String?

    /// The largest kernel image read: real ones are 2–15 MiB.
    static let imageSizeLimit = 256 << 20
    /// The largest initrd read: real ones are up to a few hundred MiB with firmware.
    static let initrdSizeLimit = 1 << 30

    init(fs: any GuestFilesystem, version: String, path: String, size: UInt64, initrdPath: String?) throws {
        self.fs = fs
        self.version = version
        self.path = path
        self.size = size
        if size <= UInt64(Self.imageSizeLimit), let bytes = try fs.readFile(path) {
            image = KernelImage.identify(bytes, path: path)
        } else {
            image = KernelImage.identify([], path: path)
        }
        // The image's own version string names its modules directory; a file name can be anything.
        var release = version
        if let fromImage = image.release, try !fs.listDirectory("/lib/modules/\(fromImage)").isEmpty { release = fromImage }
        self.release = release
        modules = try GuestModuleTree(fs: fs, release: release)

        self.initrdPath = initrdPath
        var bytes: [UInt8]?, contents: InitrdContents?, problem: String?
        if let initrdPath {
            if case .regularFile(let initrdSize)? = try fs.entry(at: initrdPath), initrdSize > UInt64(Self.initrdSizeLimit) {
                problem = "\(initrdPath): \(ByteCount.format(initrdSize)) is larger than an initrd can be here"
            } else if let read = try fs.readFile(initrdPath) {
                bytes = read
                do {
                    contents = try InitrdContents(bytes: read, name: initrdPath)
                } catch let error as RehostError {
                    problem = error.description
                }
            }
        }
        initrdBytes = bytes
        initrd = contents
        initrdProblem = problem
    }

    /// The kernel as `rehost inspect` reports it.
    func report(rootFilesystemType: String) throws -> Kernel {
        var verdicts: [TargetVerdict] = []
        for target in Target.allCases {
            verdicts.append(try verdict(for: target, rootFilesystemType: rootFilesystemType))
        }
        let summary = initrdPath.map { path in
            InitrdSummary(path: path, family: initrd?.family, layout: initrd?.layout, release: initrd?.kernelRelease,
                          moduleCount: initrd?.modules.count ?? 0, problem: initrdProblem)
        }
        var kernel = Kernel(version: version, path: path, initrd: initrdPath, size: size, image: image, release: release,
                            modulesDirectory: modules?.root, initrdDetails: summary, verdicts: verdicts)
        if let modules {
            kernel.cloudNetworkDrivers = Kernel.cloudNetworkDriverNames.filter { modules.paths[$0] != nil || modules.isBuiltIn($0) }
        }
        return kernel
    }

    /// The drivers the kernel needs on `target`, and whether it boots there.
    func verdict(for target: Target, rootFilesystemType: String) throws -> TargetVerdict {
        let buses = try target.diskBuses.map { try busVerdict($0.name, candidates: [$0.drivers] + $0.alternatives) }
        let filesystem = try busVerdict(rootFilesystemType, candidates: Self.filesystemDrivers(rootFilesystemType))
        guard image.bootsOnBIOS else {
            return TargetVerdict(target: target, outcome: .doesNotBoot, because: image.detail, buses: buses, filesystem: filesystem)
        }
        guard let primary = buses.first else {
            return TargetVerdict(target: target, outcome: .doesNotBoot, because: "no disk bus", buses: buses, filesystem: filesystem)
        }
        let needed = [primary, filesystem]
        if needed.allSatisfy(\.ready) {
            let loaded = primary.drivers.last.map { "\($0.name) is \($0.state == .builtIn ? "built in" : "loaded by its initrd")" } ?? ""
            return TargetVerdict(target: target, outcome: .boots, because: "\(image.detail); \(loaded)",
                                 buses: buses, filesystem: filesystem)
        }
        let missing = needed.flatMap(\.missing)
        if !missing.isEmpty {
            let directory = modules?.root ?? "/lib/modules/\(release)"
            return TargetVerdict(target: target, outcome: .doesNotBoot,
                                 because: "\(list(missing)) \(missing.count == 1 ? "is" : "are") neither built in nor in \(directory) (install the kernel's full modules, or supply a kernel with --add-kernel)",
                                 buses: buses, filesystem: filesystem)
        }
        let toAdd = needed.flatMap(\.toAdd)
        guard let initrd else {
            let why = initrdProblem ?? (initrdPath == nil ? "there is no initrd to load them" : "its initrd cannot be read")
            return TargetVerdict(target: target, outcome: .doesNotBoot,
                                 because: "\(list(toAdd)) \(toAdd.count == 1 ? "is a module" : "are modules") and \(why)",
                                 buses: buses, filesystem: filesystem)
        }
        guard initrd.family != .unknown else {
            return TargetVerdict(target: target, outcome: .doesNotBoot,
                                 because: "its initrd does not load \(list(toAdd)), and it was not built by initramfs-tools, dracut or mkinitrd, so Rehost cannot add them",
                                 buses: buses, filesystem: filesystem)
        }
        return TargetVerdict(target: target, outcome: .bootsAfterRepair,
                             because: "the initrd repair adds \(list(toAdd)) to its \(initrd.family.rawValue) initrd",
                             buses: buses, filesystem: filesystem)
    }

    /// The first set of drivers that is ready, else the first that is complete, else the first.
    private func busVerdict(_ name: String, candidates: [[String]]) throws -> BusVerdict {
        var verdicts: [BusVerdict] = []
        for drivers in candidates {
            verdicts.append(BusVerdict(bus: name, requested: drivers, drivers: try statuses(of: drivers)))
        }
        return verdicts.first(where: \.ready) ?? verdicts.first(where: \.complete) ?? verdicts[0]
    }

    /// Each driver and its dependencies, dependencies first.
    func statuses(of drivers: [String]) throws -> [DriverStatus] {
        guard let modules else {
            return drivers.map { DriverStatus(name: $0, state: initrd?.loads($0) == true ? .inInitrd : .missing) }
        }
        let closure = try modules.closure(of: drivers)
        var result = drivers.filter(modules.isBuiltIn).map { DriverStatus(name: $0, state: .builtIn) }
        for name in closure.ordered {
            if initrd?.loads(name) == true {
                result.append(DriverStatus(name: name, state: .inInitrd))
            } else {
                result.append(DriverStatus(name: name, state: .module, path: modules.paths[name].map { modules.root + "/" + $0 }))
            }
        }
        // A driver missing from the guest's tree may still sit in the initrd (a hand-made one).
        result += closure.missing.map { DriverStatus(name: $0, state: initrd?.loads($0) == true ? .inInitrd : .missing) }
        return result
    }

    /// ext3 is served by the ext3 driver or, on kernels built without it, by ext4.
    static func filesystemDrivers(_ type: String) -> [[String]] {
        switch type {
        case "ext2": return [["ext2"], ["ext4"]]
        case "ext3": return [["ext3"], ["ext4"]]
        default: return [[type]]
        }
    }

    private func list(_ names: [String]) -> String {
        names.count <= 1 ? names.joined() : names.dropLast().joined(separator: ", ") + " and " + names[names.count - 1]
    }
}
