import ImageCore
import Initrd
import KernelModules
import KernelPackages

/// `--add-kernel PACKAGE`: installs a kernel package's payload into a guest that has only Xen PV
/// kernels, the way its package manager would but without its scriptlets: the files, the module
/// index depmod would write, and an initrd derived from the guest's own (see `InitrdDeriver`).
/// The package is left in /var/lib/rehost/packages for the guest's package manager to register
/// at first boot (RPM: `rpm -i --justdb`); the initrd repair then adds the target's drivers.
enum KernelInstall {
    static let repair = "add-kernel"
    static let packagesDirectory = "/var/lib/rehost/packages"
    static let registerScript = "/var/lib/rehost/register-packages.sh"

    static func run(_ supplied: SuppliedKernel, fs: any GuestFilesystem, changes: inout [GuestChange],
                    warnings: inout [String]) throws {
        let kernel = supplied.kernel
        let package = supplied.package
        // The initrd is derived from one of the guest's own, found before the new kernel is in.
        let sources = try GuestInspector.findKernels(fs).filter { $0.initrd != nil && ($0.initrd?.family ?? .unknown) != .unknown }

        if try fs.readFile(kernel.vmlinuzPath) != package.file(at: kernel.vmlinuzPath)?.data {
            try installFiles(package, fs: fs)
            let count = package.files.filter { $0.kind != .directory }.count
            changes.append(GuestChange(repair: repair, path: kernel.vmlinuzPath, action: .created, lines: [
                .init(before: nil, after: "\(package.format.rawValue) \(package.name) \(package.version) (\(package.architecture)) from \(supplied.packagePath): \(count) files, no scriptlets run"),
            ]))
        }
        let modulesRoot = kernel.modulesDirectory
        var indexWritten: [String] = []
        for (file, data) in supplied.indexFiles.sorted(by: { $0.key < $1.key }) {
            let path = "\(modulesRoot)/\(file)"
            guard try fs.readFile(path) != data else { continue }
            try fs.writeFile(path, contents: data, newFileMode: 0o644)
            indexWritten.append(file)
        }
        if !indexWritten.isEmpty {
            changes.append(GuestChange(repair: repair, path: modulesRoot, action: .edited, lines: [
                .init(before: nil, after: "module index computed from the modules' .modinfo: \(indexWritten.joined(separator: " "))"),
            ]))
        }

        try deriveInitrd(supplied, sources: sources, fs: fs, changes: &changes)
        try keepPackageForRegistration(supplied, fs: fs, changes: &changes, warnings: &warnings)
    }

    static func installFiles(_ package: KernelPackage, fs: any GuestFilesystem) throws {
        for file in package.files {
            try makeParents(of: file.path, fs: fs)
            switch file.kind {
            case .directory:
                try fs.createDirectory(file.path, mode: file.mode)
            case .regular, .hardlink:
                if case .symlink? = try fs.entry(at: file.path) { try fs.remove(file.path) }
                try fs.writeFile(file.path, contents: file.data, newFileMode: file.mode)
            case .symlink:
                try fs.createSymlink(file.path, target: file.linkTarget ?? "")
            }
        }
    }

    static func makeParents(of path: String, fs: any GuestFilesystem) throws {
        var prefix = ""
        for component in path.split(separator: "/").dropLast() {
            prefix += "/" + component
            if try fs.entry(at: prefix) == nil { try fs.createDirectory(prefix, mode: 0o755) }
        }
    }

    /// The new kernel's initrd: the newest guest initrd of a known family, with its modules
    /// replaced by the new kernel's builds of the same ones (those that exist: xenblk does not).
    static func deriveInitrd(_ supplied: SuppliedKernel, sources: [KernelAnalysis], fs: any GuestFilesystem,
                             changes: inout [GuestChange]) throws {
        let release = supplied.release
        guard let source = sources.first, let contents = source.initrd, let original = source.initrdBytes,
              let sourcePath = source.initrdPath else {
            throw SuppliedKernelError.noInitrdToDeriveFrom(path: supplied.packagePath, release: release)
        }
        let target = sourcePath.contains(source.version)
            ? sourcePath.replacing(source.version, with: release) : "/boot/initrd-\(release).img"
        if try fs.entry(at: target) != nil { return }
        guard let tree = try GuestModuleTree(fs: fs, release: release) else {
            throw SuppliedKernelError.noModules(path: supplied.packagePath, directory: supplied.kernel.modulesDirectory)
        }
        let wanted = (contents.family == .nash ? contents.loadedByInit : contents.modules.keys.sorted())
            .filter { tree.paths[$0] != nil || tree.isBuiltIn($0) }
        let closure = try tree.closure(of: wanted)
        var modules: [InitrdModule] = []
        for name in closure.ordered {
            if let module = try tree.module(name) { modules.append(module) }
        }
        var lists: [String: [UInt8]] = [:]
        for file in ["modules.order", "modules.builtin", "modules.builtin.modinfo"] {
            if let data = supplied.package.file(at: "\(supplied.kernel.modulesDirectory)/\(file)")?.data { lists[file] = data }
        }
        let bytes = try InitrdDeriver.derive(from: contents, original: original, release: release, modules: modules,
                                             moduleLists: lists, name: target, mtime: 0)
        // Read back as the kernel will before it is written.
        _ = try InitrdContents(bytes: bytes, name: target)
        try fs.writeFile(target, contents: bytes, newFileMode: 0o600)
        let dropped = wanted.count < (contents.family == .nash ? contents.loadedByInit.count : contents.modules.count)
        changes.append(GuestChange(repair: repair, path: target, action: .created, lines: [
            .init(before: nil, after: "\(contents.family.rawValue) initrd derived from \(sourcePath) for \(release): its modules replaced by \(release)'s (\(modules.map(\.name).joined(separator: " ")))"
                  + (dropped ? "; the old kernel's modules this kernel lacks (the Xen drivers) left out" : "")),
        ]))
    }

    /// The package goes into the guest so its package manager can learn about the kernel at first
    /// boot; RPM can record a package without installing it again, dpkg cannot.
    static func keepPackageForRegistration(_ supplied: SuppliedKernel, fs: any GuestFilesystem,
                                           changes: inout [GuestChange], warnings: inout [String]) throws {
        let fileName = String(supplied.packagePath.split(separator: "/").last ?? "kernel.pkg")
        let kept = "\(packagesDirectory)/\(fileName)"
        guard try fs.entry(at: kept) == nil else { return }
        try makeParents(of: kept, fs: fs)
        let file = try MappedFile(path: supplied.packagePath)
        try fs.writeFile(kept, contents: Array(file.bytes), newFileMode: 0o600)
        changes.append(GuestChange(repair: repair, path: kept, action: .created))
        switch supplied.package.format {
        case .rpm:
            let script = [
                "#!/bin/sh",
                "# Written by rehost: records the kernels it installed offline in the RPM database, once.",
                "for package in \(packagesDirectory)/*.rpm; do",
                "    [ -f \"$package\" ] || continue",
                "    rpm -i --justdb --nodeps --noscripts --notriggers \"$package\" && rm -f \"$package\"",
                "done",
            ]
            if try fs.entry(at: registerScript) == nil {
                try fs.writeFile(registerScript, contents: Array((script.joined(separator: "\n") + "\n").utf8), newFileMode: 0o755)
                changes.append(GuestChange(repair: repair, path: registerScript, action: .created,
                                           lines: script.map { .init(before: nil, after: $0) }))
            }
            try hookAtFirstBoot(fs: fs, changes: &changes)
        case .deb:
            warnings.append("\(supplied.packagePath): installed without dpkg, which cannot record a package it did not unpack; to let dpkg manage the kernel, run `dpkg -i \(kept)` in the guest")
        }
    }

    /// rc.local for sysvinit and upstart guests, a oneshot unit for systemd ones.
    static func hookAtFirstBoot(fs: any GuestFilesystem, changes: inout [GuestChange]) throws {
        let line = "[ -x \(registerScript) ] && \(registerScript)"
        if try fs.exists("/lib/systemd/systemd") || fs.exists("/usr/lib/systemd/systemd") {
            let unit = "/etc/systemd/system/rehost-register-packages.service"
            guard try fs.entry(at: unit) == nil else { return }
            let text = "[Unit]\nDescription=Record kernels Rehost installed offline with the package manager\n"
                + "ConditionDirectoryNotEmpty=\(packagesDirectory)\n\n[Service]\nType=oneshot\nExecStart=\(registerScript)\n\n"
                + "[Install]\nWantedBy=multi-user.target\n"
            try fs.writeFile(unit, contents: Array(text.utf8), newFileMode: 0o644)
            try makeParents(of: "/etc/systemd/system/multi-user.target.wants/x", fs: fs)
            try fs.createSymlink("/etc/systemd/system/multi-user.target.wants/rehost-register-packages.service", target: unit)
            changes.append(GuestChange(repair: repair, path: unit, action: .created))
            return
        }
        for path in ["/etc/rc.d/rc.local", "/etc/rc.local"] {
            guard let text = try fs.readText(path) else { continue }
            guard !text.contains(registerScript) else { return }
            try fs.writeFile(path, contents: Array((text + (text.hasSuffix("\n") ? "" : "\n") + line + "\n").utf8), newFileMode: 0o755)
            changes.append(GuestChange(repair: repair, path: path, action: .edited, lines: [.init(before: nil, after: line)]))
            return
        }
    }
}
