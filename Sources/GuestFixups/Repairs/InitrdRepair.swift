import ImageCore
import Initrd
import KernelModules

/// Gives the initrd of the kernel that will boot the drivers for every disk bus the target may
/// attach the disk on, taken from the guest's own /lib/modules/<release>/ with their dependency
/// closure, so it finds root off Xen. Nothing in the guest runs: one gzip'd cpio archive is
/// appended to the initrd (the original is kept beside it as `<name>.pre-rehost`), and the
/// drivers are written where the guest's own initrd tool looks next time, so a kernel update
/// does not drop them again.
enum InitrdRepair {
    static func run(_ context: inout RepairContext) throws {
        guard let kernel = context.report.bootableKernel, let initrdPath = kernel.initrd,
              let verdict = kernel.verdict(for: context.options.target) else { return }
        let analysis = try KernelAnalysis(fs: context.fs, version: kernel.version, path: kernel.path,
                                          size: kernel.size, initrdPath: initrdPath)
        guard let modules = analysis.modules, let contents = analysis.initrd, let original = analysis.initrdBytes else { return }

        // Every bus whose drivers the guest has; the primary one is required (the verdict said so).
        var drivers: [String] = []
        for bus in verdict.buses + [verdict.filesystem].compactMap({ $0 }) where bus.complete && !bus.ready {
            for name in bus.requested where !drivers.contains(name) { drivers.append(name) }
        }
        for bus in verdict.buses where !bus.complete {
            context.warnings.append("\(kernel.path): no \(bus.bus) driver in the guest (\(bus.missing.joined(separator: ", ")) missing): the disk must not be attached on \(bus.bus)")
        }
        // The buses' own drivers, loaded explicitly where the family has a list for it, and kept
        // for the guest's initrd tool.
        let busDrivers = uniqued(verdict.buses.filter(\.complete).flatMap(\.driverNames))
        let closure = try modules.closure(of: drivers)
        let toAdd = closure.ordered.filter { !contents.loads($0) }
        if !toAdd.isEmpty {
            var added: [InitrdModule] = []
            for name in toAdd {
                guard let module = try modules.module(name) else { continue }
                added.append(module)
            }
            let patch = try InitrdPatcher.addModules(
                added, forceLoad: busDrivers, to: contents, original: original,
                kernelRelease: analysis.release, name: initrdPath, mtime: 0)
            // Read back as the kernel will, before anything is written.
            let check = try InitrdContents(bytes: patch.bytes, name: initrdPath)
            let notLoaded = toAdd.filter { !check.loads($0) }
            guard notLoaded.isEmpty else { throw InitrdRepairError.notLoadedAfterPatch(path: initrdPath, modules: notLoaded) }

            let backup = initrdPath + ".pre-rehost"
            // An initrd --add-kernel made in this run has no earlier state worth keeping.
            let madeNow = context.changes.contains { $0.path == initrdPath && $0.action == .created }
            if !madeNow, try context.fs.entry(at: backup) == nil {
                try context.fs.writeFile(backup, contents: original, newFileMode: 0o600)
                context.changes.append(GuestChange(repair: context.repair, path: backup, action: .created,
                                                   lines: [.init(before: nil, after: "a copy of \(initrdPath) as it was (\(original.count) bytes)")]))
            }
            try context.fs.writeFile(initrdPath, contents: patch.bytes, newFileMode: 0o600)
            var lines: [GuestChange.LineChange] = [
                .init(before: nil, after: "\(contents.family.rawValue) initrd (\(contents.layout)): appended a gzip cpio archive of \(patch.bytes.count - original.count) bytes loading \(toAdd.joined(separator: " "))"),
            ]
            lines += patch.entries.map { .init(before: nil, after: $0) }
            context.changes.append(GuestChange(repair: context.repair, path: initrdPath, action: .edited, lines: lines))
        }
        try persist(drivers: busDrivers, context: &context)
    }

    /// Writes the drivers where the guest's initrd tool reads them when it next rebuilds the initrd.
    static func persist(drivers: [String], context: inout RepairContext) throws {
        guard !drivers.isEmpty else { return }
        let fs = context.fs
        if try fs.entry(at: "/etc/initramfs-tools") == .directory {
            let path = "/etc/initramfs-tools/modules"
            if try fs.exists(path) {
                try context.edit(path) { lines in
                    let listed = Set(lines.texts.filter { !$0.isCommentOrBlank }.map { ModuleName.normalized($0.trimmingCharacters(in: " \t")) })
                    let missing = drivers.filter { !listed.contains($0) }
                    guard !missing.isEmpty else { return }
                    lines.append("# Added by rehost: the target's disk drivers")
                    for name in missing { lines.append(name) }
                }
            } else {
                try context.writeWholeFile(path, lines: ["# Added by rehost: the target's disk drivers"] + drivers, newFileMode: 0o644)
            }
        }
        if try fs.entry(at: "/etc/dracut.conf.d") == .directory {
            try context.writeWholeFile("/etc/dracut.conf.d/90-rehost.conf", lines: [
                "# Written by rehost: the target's disk drivers, so a rebuilt initrd keeps them.",
                "add_drivers+=\" \(drivers.joined(separator: " ")) \"",
            ], newFileMode: 0o644)
        }
    }

    private static func uniqued(_ names: [String]) -> [String] {
        var seen = Set<String>()
        return names.filter { seen.insert($0).inserted }
    }
}

extension BusVerdict {
    /// The bus's own drivers (not their dependencies) that are modules.
    var driverNames: [String] {
        requested.filter { name in drivers.contains { $0.name == name && $0.state != .builtIn } }
    }
}

public enum InitrdRepairError: RehostError, Equatable {
    case notLoadedAfterPatch(path: String, modules: [String])

    public var description: String {
        switch self {
        case let .notLoadedAfterPatch(path, modules):
            return "\(path): after the patch the initrd still does not load \(modules.joined(separator: ", ")); nothing was written"
        }
    }
}
