import Cloud
import DiskLayout
import GuestFixups
import ImageCore
import Pipeline

/// The reports as people read them. Scripts use `--json`.
///
/// Every line is built by `line(...)`, whose interpolations are escaped for the terminal: values
/// come from the image (labels, names, paths, descriptor fields, fstab and config lines, kernel
/// version strings) and must not reach it raw, nor break a line in two.
enum TextReport {
    struct Line: ExpressibleByStringInterpolation {
        var text = ""
        init(stringLiteral value: String) { text = value }
        init(stringInterpolation: Interpolation) { text = stringInterpolation.text }

        struct Interpolation: StringInterpolationProtocol {
            var text = ""
            init(literalCapacity: Int, interpolationCount: Int) { text.reserveCapacity(literalCapacity * 2) }
            mutating func appendLiteral(_ literal: String) { text += literal }
            mutating func appendInterpolation(_ value: some CustomStringConvertible) {
                text += value.description.escapedForTerminal(keepingTabs: true)
            }
        }
    }

    static func line(_ line: Line) -> String { line.text }

    static func inspect(_ r: InspectReport) -> String {
        var out = input(r.input)
        let g = r.guest
        out += line("Guest\n")
        out += line("  OS:           \(g.os.name)\(g.os.version.map { " \($0)" } ?? "") (\(g.os.family.rawValue))\n")
        out += line("  init:         \(g.initSystem.rawValue)\n")
        out += line("  kernels:      \(g.kernels.isEmpty ? "none in /boot" : "")\n")
        for k in g.kernels { out += kernel(k, target: g.target) }
        if let k = g.bootableKernel { out += line("  will boot:    \(k.path) on \(g.target.rawValue)\n") }
        if let problem = g.kernelProblem { out += line("  problem:      \(problem)\n") }
        out += line("  bootloader:   \(g.bootloaderConfigs.isEmpty ? "no configuration" : g.bootloaderConfigs.joined(separator: ", "))\n")
        out += line("  Xen traits:   \(g.xenTraits.isEmpty ? "none found" : "")\n")
        for t in g.xenTraits {
            func padding(_ text: String, _ width: Int) -> String { text + String(repeating: " ", count: max(0, width - text.count)) }
            let at = t.line.map { "\(t.file):\($0)" } ?? t.file
            out += line("    \(padding(t.kind.rawValue, 22)) \(at)\(t.text.map { "  \($0)" } ?? "")\n")
        }
        out += line("Plan for `rehost convert --target \(r.target)`\n")
        if let g = r.plannedGPT {
            let boot = (g.biosBootPartition ? "BIOS boot partition (1 MiB), " : "") + "EFI System Partition (\(ByteCount.format(g.espSize)), FAT32)"
            out += line("  disk:         \(ByteCount.format(g.diskSize)) raw, GPT: \(boot), partition \(g.rootPartition) (\(ByteCount.format(g.rootSize)), ext3)\n")
        } else if let d = r.plannedDisk {
            out += line("  disk:         \(ByteCount.format(d.diskSize)) raw, MBR, partition 1 at \(ByteCount.format(d.partitionOffset)) (\(ByteCount.format(d.partitionSize)), bootable, ext3)\n")
        }
        if let firmware = r.plannedFirmware {
            out += line("  firmware:     \(r.plannedFirmwareReason ?? firmware.rawValue) (--firmware chooses otherwise)\n")
        }
        if let p = r.plannedDiskProblem { out += line("  disk problem: \(p)\n") }
        out += line("  root:         \(r.rootReference)\n")
        if let p = r.plannedChangesProblem { out += line("  problem:      \(p)\n") }
        for w in r.plannedWarnings { out += line("  warning:      \(w)\n") }
        out += changes(r.plannedChanges)
        return out
    }

    /// A kernel, what its bytes say, and for each target whether it boots and why; the drivers
    /// of each bus only for the target asked about.
    static func kernel(_ k: Kernel, target: Target) -> String {
        var out = line("    \(k.path)  \(ByteCount.format(k.size))\n")
        var image = "\(k.image.format.rawValue): \(k.image.detail)"
        if let release = k.image.release { image += " (release \(release))" }
        out += line("      image:        \(image)\n")
        out += line("      firmware:     \(firmwareLine(k))\n")
        out += line("      modules:      \(k.modulesDirectory ?? "none (/lib/modules/\(k.release) is missing)")\n")
        if let i = k.initrdDetails {
            var what = i.family.map { "\($0.rawValue), \(i.layout ?? "?"), \(i.moduleCount) modules" } ?? "unreadable"
            if let problem = i.problem { what += ": \(problem)" }
            out += line("      initrd:       \(i.path) (\(what))\n")
        } else {
            out += line("      initrd:       none\n")
        }
        for v in k.verdicts {
            let label = v.target.rawValue + ":"
            out += line("      \(label.padding(toLength: 13, withPad: " ", startingAt: 0)) \(v.outcome.rawValue): \(v.because)\n")
            guard v.target == target, k.image.bootsOnBIOS else { continue }
            for bus in v.buses + [v.filesystem].compactMap({ $0 }) {
                let drivers = bus.drivers.map { "\($0.name) (\($0.state.rawValue))" }.joined(separator: ", ")
                out += line("        \(bus.bus): \(drivers.isEmpty ? "nothing needed" : drivers)\n")
            }
        }
        return out
    }

    /// Which firmware a kernel image boots under: BIOS through GRUB's `linux` (a bzImage of boot
    /// protocol 2.03 or later), UEFI when it has an EFI stub (a PE header GRUB x86_64-efi and
    /// firmware can start); so which `--firmware` convert accepts for it.
    static func firmwareLine(_ kernel: Kernel) -> String {
        let image = kernel.image
        let protocolText = image.bootProtocol.map { "boot protocol \($0)" } ?? "no x86 boot protocol"
        switch (image.bootsOnBIOS, image.efiStub) {
        case (true, true): return "BIOS and UEFI (\(protocolText), EFI stub): --firmware bios, uefi or both"
        case (true, false): return "BIOS only (\(protocolText), no EFI stub): --firmware bios"
        case (false, true): return "UEFI only (\(protocolText), EFI stub): --firmware uefi"
        case (false, false) where image.format == .xenPV: return "neither (a Xen PV image: it boots only under Xen)"
        case (false, false): return "neither (\(protocolText), no EFI stub)"
        }
    }

    static func convert(_ r: ConvertReport) -> String {
        var out = input(r.input, partitions: r.partitions)
        if let d = r.disk {
            out += r.dryRun ? "Would build a bootable disk\n" : "Built a bootable disk\n"
            if let size = r.diskSize, let guid = r.diskGUID {
                out += line("  disk:         \(ByteCount.format(size)) raw (sparse), GPT, disk GUID \(guid), firmware \(r.firmware?.rawValue ?? "?")\n")
            } else {
                out += line("  disk:         \(ByteCount.format(d.diskSize)) raw (sparse), MBR signature \(String(d.diskSignature, radix: 16)), firmware bios\n")
            }
            for p in r.partitions {
                let label = p.label.isEmpty ? "" : ", label \"\(p.label)\""
                out += line("  partition \(p.number):  \(p.mountPoint) at \(ByteCount.format(p.start)), \(ByteCount.format(p.size))\(p.bootable ? ", bootable" : ""), type \(p.type), \(p.filesystem) UUID \(p.uuid)\(label)\n")
            }
        }
        if let f = r.newFilesystem {
            out += line("  filesystem:   \(f.type), label \"\(f.label)\", UUID \(f.uuid), \(f.inodeSize)-byte inodes, \(f.inodes) inodes\n")
        }
        if let c = r.copy {
            out += line("  copied:       \(c.regularFiles) files (\(ByteCount.format(c.bytesCopied))), \(c.directories) directories, \(c.symlinks) symlinks, \(c.hardLinks) hard links, \(c.specialFiles) special files, \(c.extendedAttributes) xattrs\n")
        }
        if let b = r.bootloader {
            out += line("  bootloader:   \(b.kind), core.img \(b.coreImageBytes) bytes\n")
            if let kernel = b.kernel { out += line("  boots:        \(kernel)\(b.initrd.map { " with \($0)" } ?? "")\n") }
            if let k = r.bootKernel {
                let chosen = r.firmwareReason ?? "\(r.firmware?.rawValue ?? "bios") asked"
                out += line("  firmware:     \(chosen); the kernel boots under \(firmwareLine(k))\n")
            }
        }
        out += line("  target:       \(r.target), root=\(r.rootReference)\n")
        out += outputs(r.outputs)
        for w in r.warnings { out += line("  warning:      \(w)\n") }
        out += changes(r.changes)
        out += guestEdits(r.guestEdits, randomRootPassword: r.randomRootPassword)
        if !r.dryRun { out += line("Done in \(String(format: "%.1f", r.seconds)) s.\n") }
        return out
    }

    static func upload(_ r: UploadReport) -> String {
        var out = line("Uploaded to \(r.target): \(r.name ?? "") (\(r.diskFormat))\n")
        if let id = r.imageID { out += line("  image:        \(id)\n") }
        if let snapshot = r.snapshotID { out += line("  snapshot:     \(snapshot)\n") }
        if let location = r.location { out += line("  location:     \(location)\n") }
        let rate = r.seconds > 0 ? " (\(ByteCount.format(UInt64(Double(r.bytesSent) / r.seconds)))/s)" : ""
        out += line("  sent:         \(ByteCount.format(r.bytesSent))\(rate)\n")
        if let sent = r.blocksSent, let skipped = r.blocksSkipped {
            out += line("  blocks:       \(sent) sent, \(skipped) all-zero blocks skipped\n")
        }
        for (name, value) in r.checksums.sorted(by: { $0.key < $1.key }) {
            out += line("  \(name + ":")\(String(repeating: " ", count: max(1, 13 - name.count)))\(value)\n")
        }
        if r.retries > 0 { out += line("  retries:      \(r.retries)\n") }
        return out + "Done in \(String(format: "%.1f", r.seconds)) s.\n"
    }

    static func export(_ r: ExportReport) -> String {
        line("Read \(r.input) (\(r.inputVariant), \(ByteCount.format(r.virtualSize)))\n") + extentFiles(r.inputFiles)
            + outputs(r.outputs)
            + "Done in \(String(format: "%.1f", r.seconds)) s.\n"
    }

    private static func outputs(_ list: [OutputReport]) -> String {
        var out = ""
        for o in list {
            out += line("Wrote \(o.path)\n")
            out += line("  format:       \(o.variant), virtual size \(ByteCount.format(o.virtualSize)) (\(o.virtualSize) bytes)\n")
            out += line("  file:         \(ByteCount.format(o.fileSize)), \(ByteCount.format(o.allocatedBytes)) allocated\n")
            if let digest = o.sha256 { out += line("  sha256:       \(digest)\n") }
            if let digest = o.diskDigest { out += line("  disk digest:  blk-sha256 \(digest)\n") }
        }
        return out
    }

    /// The files an image pulled in besides itself, one per line; nothing for a single file.
    private static func extentFiles(_ files: [String]) -> String {
        files.dropFirst().map { line("  also read:    \($0)\n") }.joined()
    }

    /// `partitions`: the converted disk's, which says where each mounted filesystem went.
    private static func input(_ i: InputReport, partitions: [PartitionReport] = []) -> String {
        let f = i.filesystem
        var out = line("Input \(i.path)\n")
        out += line("  container:    \(i.kind)\(i.partition.map { ", partition \($0)" } ?? "")\(i.partitionReason.map { " (\($0))" } ?? "")\n")
        out += extentFiles(i.files)
        out += line("  filesystem:   \(f.type), label \"\(f.label)\", UUID \(f.uuid)\n")
        out += line("  size:         \(ByteCount.format(f.sizeBytes)), \(ByteCount.format(f.usedBytes)) used, \(f.inodesUsed) of \(f.inodesTotal) inodes, \(f.blockSize)-byte blocks, \(f.inodeSize)-byte inodes\n")
        out += line("  features:     \(f.features.joined(separator: " "))\n")
        for d in i.moreDisks { out += line("  more disk:    \(d)\n") }
        if let root = i.rootVolume, i.partition == nil { out += line("  root on:      \(root)\n") }
        for g in i.volumeGroups {
            out += line("  LVM2 VG:      \(g.name) (\(g.uuid)), extents of \(ByteCount.format(g.extentSize)), seqno \(g.seqno)\n")
            for pv in g.physicalVolumes {
                out += line("    PV \(pv.name):      \(pv.uuid), \(pv.extents) extents, \(pv.found.map { "on \($0)" } ?? "MISSING (was \(pv.device ?? "?"))")\n")
            }
            for lv in g.logicalVolumes {
                let layout = lv.segments.map { s in
                    s.type == "striped" ? "striped \(s.stripes.joined(separator: " ")) (\(ByteCount.format(s.stripeSize)) stripes)"
                                        : "\(s.type) \(s.stripes.joined(separator: " "))+\(s.extents)"
                }.joined(separator: ", ")
                out += line("    LV \(lv.name):  \(ByteCount.format(lv.sizeBytes))\(lv.visible ? "" : ", hidden"), \(layout)\(lv.unsupported.map { " (cannot be read: \($0))" } ?? "")\n")
            }
        }
        for m in i.mounts {
            out += line("  mounts:       \(m.mountPoint) from \(m.device) = \(m.volume): \(m.type), label \"\(m.label)\", \(ByteCount.format(m.usedBytes)) used of \(ByteCount.format(m.sizeBytes)); \(partitions.first { $0.mountPoint == m.mountPoint }.map { "kept as partition \($0.number)" } ?? "merged into the new root")\n")
        }
        for n in i.notes { out += line("  note:         \(n)\n") }
        return out
    }

    /// What --clean and the customize options changed, one line per file.
    private static func guestEdits(_ list: [GuestEdit]?, randomRootPassword: String?) -> String {
        guard let list else { return "" }
        var out = list.isEmpty ? "Clean and customize: nothing to change.\n" : "Clean and customize (\(list.count) changes):\n"
        for edit in list { out += line("  [\(edit.operation)] \(edit.action.rawValue) \(edit.path)\(edit.detail.map { " (\($0))" } ?? "")\n") }
        if let randomRootPassword { out += line("  root password: \(randomRootPassword)\n") }
        return out
    }

    private static func changes(_ list: [GuestChange]) -> String {
        guard !list.isEmpty else { return "Repairs: nothing to change.\n" }
        var out = "Repairs (\(list.count) changes):\n"
        for c in list {
            let target = c.target.map { " -> \($0)" } ?? ""
            out += line("  [\(c.repair)] \(c.action.rawValue) \(c.path)\(target)\n")
            for lineChange in c.lines {
                if let before = lineChange.before { out += line("      - \(before)\n") }
                if let after = lineChange.after { out += line("      + \(after)\n") }
            }
        }
        return out
    }
}
