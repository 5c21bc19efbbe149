import Digests
import DiskLayout
import Ext2
import FAT
import Foundation
import FilesystemBuilder
import GuestFixups
import ImageCore
import ImageFormats

#if canImport(Glibc)
import Glibc
#endif

public enum ConvertError: RehostError {
    case dataDoesNotFit(output: String, diskSize: UInt64, underlying: String)
    case sameFile(path: String)
    case swapFileExists(path: String)
    case noEFIStub(firmware: String, kernel: String, detail: String)
    case diskTooSmallForFirmware(firmware: String, diskSize: UInt64, bootBytes: UInt64, reason: String)

    public var description: String {
        switch self {
        case let .dataDoesNotFit(output, diskSize, underlying):
            return "\(output): the data does not fit in a disk of \(ByteCount.format(diskSize)) (\(underlying)); choose a larger --size"
        case let .sameFile(path):
            return "\(path): the output would overwrite the input"
        case let .swapFileExists(path):
            return "\(path): the guest has this path already; --swap-file would replace it"
        case let .diskTooSmallForFirmware(firmware, diskSize, bootBytes, reason):
            return "--size \(ByteCount.format(diskSize)) is too small for --firmware \(firmware): the EFI System Partition"
                + (firmware == "both" ? ", the BIOS boot partition" : "") + " and the backup GPT take \(ByteCount.format(bootBytes)), "
                + (reason.isEmpty ? "leaving nothing for the filesystems" : "and what is left is too little (\(reason))")
        case let .noEFIStub(firmware, kernel, detail):
            return "--firmware \(firmware): the boot kernel \(kernel) cannot boot under UEFI: it has no EFI stub (\(detail)); use --firmware bios"
        }
    }
}

/// `rehost convert`: input -> partitioned raw disk with a copy of the guest, repaired for the
/// target, with GRUB in the MBR. Nothing is written until the plan (including every repair,
/// computed on an overlay of the input) has succeeded; the output appears at its final path only
/// when complete.
public final class Converter {
    let options: ConvertOptions
    let progress: ProgressSink

    public init(options: ConvertOptions, progress: ProgressSink = SilentProgress()) {
        self.options = options
        self.progress = progress
    }

    public func run() throws -> ConvertReport {
        let startedWall = monotonicSeconds()
        let source = try SourceGuest(path: options.input, moreDisks: options.moreDisks, partition: options.partition,
                                     scratchDirectory: options.scratchDirectory, externalFiles: options.externalFiles,
                                     maxOutputSize: options.maxOutputSize, progress: progress)
        // Kernel packages are read and checked before anything else: a bad one fails at once.
        let supplied = try options.addKernels.map(SuppliedKernel.prepare(path:))
        let overlay = source.overlay()
        let guest = try GuestInspector.inspect(overlay, target: options.target, rootFilesystemType: options.format.flavor.rawValue,
                                               kernel: supplied.isEmpty ? options.kernel : nil)
        if options.swapFileSize != nil, try overlay.entry(at: Self.swapFilePath) != nil {
            throw ConvertError.swapFileExists(path: Self.swapFilePath)
        }
        let layout = GuestLayout(source: source, keepLayout: options.keepLayout, swapPartition: options.swapPartitionSize,
                                 noSwap: options.noSwap, kernelBytes: supplied.reduce(0) { $0 + $1.installedBytes },
                                 rootAddedBytes: (options.swapFileSize ?? 0) + options.customize.addedBytes)
        // A GPT disk (--firmware uefi|both) is the MBR plan's partitions behind the boot
        // partitions: with --size, the plan gets what those leave.
        let (firmware, firmwareReason) = options.firmware.resolve(bootKernel: FirmwareChoice.bootKernel(supplied: supplied, guest: guest))
        var espSize: UInt64 = 0
        let plan: DiskPlan
        if firmware != .bios, let requested = options.diskSize {
            espSize = GPTDiskLayout.espSize(planDiskSize: requested)
            let extra = GPTDiskLayout.extraBytes(firmware: firmware, espSize: espSize)
            // The MBR plan's own 1 MiB gap becomes the GPT's first MiB.
            let tooSmall = ConvertError.diskTooSmallForFirmware(firmware: firmware.rawValue, diskSize: requested, bootBytes: extra,
                                                                 reason: "")
            guard requested > extra else { throw tooSmall }
            do {
                plan = try layout.plan(requestedSize: requested - extra)
            } catch let error as DiskLayoutError {
                switch error {
                case .diskTooSmall, .diskTooSmallForPartitions:
                    throw ConvertError.diskTooSmallForFirmware(firmware: firmware.rawValue, diskSize: requested, bootBytes: extra,
                                                               reason: error.description)
                default: throw error
                }
            }
        } else {
            plan = try layout.plan(requestedSize: options.diskSize)
            if firmware != .bios { espSize = GPTDiskLayout.espSize(planDiskSize: plan.diskSize) }
        }
        // The disk GUID, then one per partition: each its own purpose, so --reproducible keeps them apart.
        var guidCount = 0
        let gptLayout = firmware == .bios ? nil
            : try GPTDiskLayout.make(plan: plan, firmware: firmware, espSize: espSize) {
                defer { guidCount += 1 }
                return UUIDBytes.random(for: guidCount == 0 ? "gpt disk guid" : "gpt partition guid \(guidCount)")
            }
        let diskSize = gptLayout?.diskSize ?? plan.diskSize
        // The label and UUID of each new filesystem (the source's unless asked otherwise; --label
        // names the root) are known before it exists, so fstab and root= can name them.
        // Cloned sources can share a UUID or a label, and the guest would then mount one for the
        // other: a repeated UUID is replaced, and a repeated label names none of them.
        var layoutWarnings: [String] = []
        var formats: [Ext2FormatParameters] = []
        for filesystem in layout.filesystems {
            var format = options.format
            if filesystem.mountPoint != "/" { format.label = nil }
            var parameters = FormatPlanner.parameters(for: filesystem.source, capacity: plan.partition(for: filesystem.mountPoint)!.size,
                                                      options: format, mergedUsedInodes: filesystem.mergedUsedInodes)
            if formats.contains(where: { $0.uuid == parameters.uuid }) {
                parameters.uuid = UUIDBytes.random(for: "filesystem uuid \(filesystem.mountPoint)")
                layoutWarnings.append("\(filesystem.mountPoint) has the UUID of another filesystem of the guest; its copy gets a new one, \(UUIDBytes.format(parameters.uuid))")
            }
            formats.append(parameters)
        }
        let partitions = zip(layout.filesystems, formats).map { filesystem, parameters in
            var partition = plan.partition(for: filesystem.mountPoint)!
            if let gptLayout {
                partition.offset = gptLayout.partition(planNumber: partition.number).offset
                partition.number = gptLayout.number(planNumber: partition.number)
            }
            let unique = formats.filter { $0.label == parameters.label }.count == 1
            let reference = RootReference.resolve(choice: options.rootReference, label: unique ? parameters.label : nil,
                                                  uuid: UUIDBytes.format(parameters.uuid), target: options.target, report: guest,
                                                  partition: partition.number)
            return NewPartition(filesystem: filesystem, partition: partition, parameters: parameters, reference: reference)
        }
        let root = partitions.first { $0.filesystem.mountPoint == "/" }!
        let swapPartition = plan.partitions.first(where: \.isSwap).map { planned in
            var partition = planned
            if let gptLayout {
                partition.offset = gptLayout.partition(planNumber: planned.number).offset
                partition.number = gptLayout.number(planNumber: planned.number)
            }
            return partition
        }
        // The ESP's FAT volume ID, which fstab names it by (UUID=XXXX-XXXX).
        let espVolumeID = try EFISystemPartition.volumeID(for: overlay)
        let espReference = EFISystemPartition.fstabDevice(volumeID: espVolumeID)
        let swapUUID = UUIDBytes.random(for: "swap partition uuid")
        let rootReference = root.reference
        var repairOptions = RepairOptions(target: options.target, rootReference: rootReference,
                                          rootFilesystemType: options.format.flavor.rawValue, skip: options.skip,
                                          kernel: options.kernel)
        repairOptions.selinux = options.selinux
        repairOptions.mergedMountPoints = layout.mergedMountPoints
        repairOptions.volumeGroups = source.volumeGroupNames
        repairOptions.droppedDevices = source.droppedDevices
        repairOptions.swapFile = options.swapFileSize == nil ? nil : Self.swapFilePath
        repairOptions.keptMounts = Dictionary(uniqueKeysWithValues: partitions.filter { $0.filesystem.mountPoint != "/" }
            .map { ($0.filesystem.mountPoint, $0.reference) })
        repairOptions.swapPartition = swapPartition == nil ? nil : "UUID=\(UUIDBytes.format(swapUUID))"
        if firmware.bootsUEFI { repairOptions.efiSystemPartition = espReference }
        if gptLayout != nil {
            let boot = partitions.first { $0.filesystem.mountPoint == "/boot" } ?? root
            repairOptions.grubBootPartition = "hd0,gpt\(boot.partition.number)"
        }
        // Plan every repair first: a guest that cannot be repaired (only Xen kernels) fails before any output exists.
        let planned = try GuestRepairs.apply(to: overlay, options: repairOptions, kernels: supplied, report: guest)
        if firmware.bootsUEFI, let kernel = planned.report.bootableKernel, !kernel.image.efiStub {
            throw ConvertError.noEFIStub(firmware: firmware.rawValue, kernel: kernel.path, detail: kernel.image.detail)
        }
        // --clean and the customize options: planned on the same overlay, after the repairs.
        var customize = options.customize
        let randomPassword = customize.resolveRandomPassword()
        let wantsPrep = !options.clean.isEmpty || !customize.isEmpty
        let prepContext = try CleanContext.of(overlay)
        var plannedEdits: [GuestEdit]?
        if wantsPrep {
            try customize.checkPaths()
            let editor = GuestEditor(fs: overlay, metadata: nil, dryRun: true)
            _ = try GuestPrep.apply(clean: options.clean, customize: customize, to: editor, context: prepContext)
            plannedEdits = editor.edits
        }
        // --cloud-init: the NoCloud seed is planned on the overlay too, after the repairs.
        let seeded = try options.cloudInit?.apply(to: overlay, options: repairOptions, report: planned.report)
        var warnings = planned.warnings + (seeded?.warnings ?? []) + layoutWarnings
        if source.filesystem.inodeSize > 128 && options.format.inodeSize <= 128 {
            warnings.append("the source has \(source.filesystem.inodeSize)-byte inodes; the copy uses 128-byte inodes, so sub-second timestamps are rounded down to whole seconds (use --inode-size 256 to keep them)")
        }
        var report = ConvertReport(input: source.report, outputs: [], dryRun: options.dryRun,
                                   target: options.target.rawValue, rootReference: rootReference, disk: plan,
                                   newFilesystem: nil, copy: nil, changes: planned.changes + (seeded?.changes ?? []), bootloader: nil,
                                   warnings: warnings, seconds: 0)
        report.guestEdits = plannedEdits
        report.operatingSystem = planned.report.os
        report.bootKernel = planned.report.bootableKernel
        report.randomRootPassword = randomPassword
        report.firmware = firmware
        report.firmwareReason = firmwareReason
        report.partitions = plan.partitions.map { partition in
            let filesystem = partitions.first { $0.filesystem.mountPoint == partition.use }?.parameters
            let gptPartition = gptLayout?.partition(planNumber: partition.number)
            return PartitionReport(number: gptLayout?.number(planNumber: partition.number) ?? partition.number,
                                   mountPoint: partition.use, start: gptPartition?.offset ?? partition.offset, size: partition.size,
                                   type: gptPartition.map { GPTDiskLayout.shortCode($0.type) } ?? "0x" + String(partition.type, radix: 16),
                                   bootable: gptLayout == nil && partition.bootable,
                                   filesystem: filesystem?.flavor.rawValue ?? (partition.isSwap ? "swap" : "?"),
                                   uuid: UUIDBytes.format(filesystem?.uuid ?? swapUUID), label: filesystem?.label ?? "")
        }
        if let gptLayout {
            report.diskSize = diskSize
            report.diskGUID = UUIDBytes.format(gptLayout.gpt.diskGUID)
            var boot: [PartitionReport] = []
            if let biosBoot = gptLayout.biosBoot {
                boot.append(PartitionReport(number: 1, mountPoint: "BIOS boot", start: biosBoot.offset, size: biosBoot.size,
                                            type: "EF02", bootable: false, filesystem: "GRUB core.img", uuid: "", label: ""))
            }
            boot.append(PartitionReport(number: gptLayout.espIndex + 1, mountPoint: EFISystemPartition.mountPoint,
                                        start: gptLayout.esp.offset, size: gptLayout.esp.size, type: "EF00", bootable: false,
                                        filesystem: "vfat", uuid: String(espReference.dropFirst(5)), label: EFISystemPartition.label))
            report.partitions = boot + report.partitions
        }
        if options.dryRun {
            report.seconds = monotonicSeconds() - startedWall
            return report
        }
        try refuseOverwritingInput(source)

        // The GRUB images are built before the long copy, so a missing grub-mkimage fails fast.
        // GRUB reads /boot/grub from partition 1: the root's, or /boot's own /grub.
        // On GPT, /boot/grub is on the partition of / (or /boot), numbered after the boot partitions.
        let bootPartition = partitions.first { $0.filesystem.mountPoint == "/boot" } ?? root
        let grubDirectory = layout.separateBoot ? "/grub" : "/boot/grub"
        var coreImage: [UInt8] = []
        var embedded: (mbr: [UInt8], gap: [UInt8])?
        if firmware.bootsBIOS {
            let bootImage = try GrubBootImage.load()
            if let gptLayout, let biosBoot = gptLayout.biosBoot {
                coreImage = try GrubCoreImage.build(prefix: "(hd0,gpt\(bootPartition.partition.number))\(grubDirectory)",
                                                    extraModules: ["part_gpt"])
                let result = try BiosBootInstaller.embed(bootImage: bootImage, coreImage: coreImage,
                                                         protectiveMBR: gptLayout.gpt.protectiveMBR(), biosBootPartition: biosBoot)
                embedded = (result.mbr, result.core)
            } else {
                coreImage = try GrubCoreImage.build(prefix: layout.separateBoot ? GrubCoreImage.separateBootPrefix
                                                                                : GrubCoreImage.defaultPrefix)
                embedded = try BiosBootInstaller.embed(bootImage: bootImage, coreImage: coreImage, mbr: plan.mbr(),
                                                       partitionStartSector: plan.partitionStartSector)
            }
        }
        var espImage: FAT32Writer?
        var efiImageBytes = 0
        if let gptLayout {
            let efiImage = try GrubEFIImage.build(bootFilesystemUUID: UUIDBytes.format(bootPartition.parameters.uuid),
                                                  bootGrubDirectory: grubDirectory)
            efiImageBytes = efiImage.count
            espImage = try EFISystemPartition.make(size: gptLayout.esp.size, volumeID: espVolumeID, efiImage: efiImage)
        }

        // The bootable disk is built as raw: into the raw output if one was asked for, else into
        // a scratch file beside the first output, removed at the end. Every other output is
        // written from it in one streaming read.
        let rawRequest = options.outputs.first { $0.isPlainRaw }
        let streamed = options.outputs.filter { $0.path != rawRequest?.path }
        let rawDisk = try AtomicOutput(finalPath: rawRequest?.path ?? options.outputs[0].path + ".raw-scratch")
        let outputs = try OutputSet(streamed, virtualSize: diskSize, options: options.writerOptions,
                                    consumers: options.streamConsumers)
        try rawDisk.file.truncate(to: diskSize)
        if let gptLayout {
            try gptLayout.gpt.write(to: rawDisk.file)
            if let embedded, let biosBoot = gptLayout.biosBoot {
                try rawDisk.file.write(embedded.mbr, at: 0)
                try rawDisk.file.write(embedded.gap, at: biosBoot.offset)
            }
            try espImage?.write(to: rawDisk.file, at: gptLayout.esp.offset)
        } else if let embedded {
            try BiosBootInstaller.write(mbr: embedded.mbr, gap: embedded.gap, to: rawDisk.file)
        }
        if let swapPartition {
            try SwapArea.write(to: rawDisk.file, at: swapPartition.offset, size: swapPartition.size, uuid: swapUUID)
        }

        // The disk digest is taken as the filesystems are written (the copy leaves a core idle).
        let writtenDigest = options.digests.disk ? try WrittenDiskDigest(path: rawDisk.temporaryPath, size: diskSize) : nil

        progress.begin(stage: "copying files", totalBytes: layout.filesystems.reduce(0) { $0 + $1.usedBytes })
        var statistics = TreeCopier.Statistics()
        var destinations: [(mountPoint: String, filesystem: Ext2Filesystem)] = []
        do {
            // Writeback starts as the copy goes (libext2fs writes through its own descriptor, but
            // the page cache is the file's), so the final fsync finds the disk almost clean.
            var writebackAt: UInt64 = 0
            for new in partitions {
                let destination = try Ext2Filesystem.format(path: rawDisk.temporaryPath, offset: new.partition.offset,
                                                            parameters: new.parameters)
                destinations.append((new.filesystem.mountPoint, destination))
                if let writtenDigest { try destination.observeWrites(writtenDigest) }
                let prefix = new.filesystem.mountPoint == "/" ? "" : new.filesystem.mountPoint + ": "
                var base = statistics.bytesCopied
                let copier = TreeCopier(from: new.filesystem.source, to: destination) { [progress, rawDisk, base] copied in
                    progress.advance(to: base + copied)
                    if base + copied >= writebackAt + OutputSink.writebackInterval {
                        rawDisk.file.startWriteback(0..<diskSize)
                        writebackAt = base + copied
                    }
                }
                statistics.add(try copier.copy())
                report.warnings += copier.warnings.map { prefix + $0 }
                // Each filesystem merged into this one goes into its mount point, shallowest first.
                let merged = Ext2GuestFilesystem(destination)
                for mount in new.filesystem.merged {
                    // The mount point normally exists in the root (an empty directory); if not, it is made.
                    try merged.createDirectories(mount.mountPoint, mode: 0o755)
                    base = statistics.bytesCopied
                    let mountCopier = TreeCopier(from: mount.filesystem, to: destination) { [progress, base] in progress.advance(to: base + $0) }
                    statistics.add(try mountCopier.copy(into: mount.mountPoint))
                    report.warnings += mountCopier.warnings.map { "\(mount.mountPoint): \($0)" }
                }
                if new.filesystem.mountPoint == "/", let size = options.swapFileSize {
                    try SwapFile.create(in: destination, name: String(Self.swapFilePath.dropFirst()), size: size,
                                        uuid: UUIDBytes.random(for: "swap file uuid"), time: UInt32(clamping: Reproducibility.now()))
                }
            }
            // A kept filesystem's mount point must exist in the one above it, or the guest cannot mount it.
            for (mountPoint, _) in destinations where mountPoint != "/" {
                let parent = destinations.filter { $0.mountPoint == "/" || mountPoint.hasPrefix($0.mountPoint + "/") }
                    .max { $0.mountPoint.count < $1.mountPoint.count }!
                let relative = parent.mountPoint == "/" ? mountPoint : String(mountPoint.dropFirst(parent.mountPoint.count))
                try Ext2GuestFilesystem(parent.filesystem).createDirectories(relative, mode: 0o755)
            }
        } catch let error as Ext2Error where error.isOutOfSpace {
            throw ConvertError.dataDoesNotFit(output: rawDisk.finalPath, diskSize: diskSize, underlying: error.message)
        }
        progress.end()
        if statistics.truncatedTimestamps > 0 {
            report.warnings.append("\(statistics.truncatedTimestamps) files had sub-second timestamps, rounded down to whole seconds")
        }

        progress.begin(stage: "repairing the guest", totalBytes: nil)
        // The new filesystems hold the source's files, so the plan's inspection holds for them
        // too; they are repaired as the guest will mount them.
        let rootDestination = destinations.first { $0.mountPoint == "/" }!.filesystem
        let others = destinations.filter { $0.mountPoint != "/" }
        let repaired: any GuestFilesystem = others.isEmpty ? Ext2GuestFilesystem(rootDestination)
            : MountedGuestFilesystem(root: Ext2GuestFilesystem(rootDestination),
                                     mounts: others.map { ($0.mountPoint, Ext2GuestFilesystem($0.filesystem) as any GuestFilesystem) })
        report.changes = try GuestRepairs.apply(to: repaired, options: repairOptions, kernels: supplied,
                                                report: planned.report).changes
        if wantsPrep {
            let editor = GuestEditor(fs: repaired, metadata: repaired as? any GuestMetadataEditing, dryRun: false)
            _ = try GuestPrep.apply(clean: options.clean, customize: customize, to: editor, context: prepContext)
            report.guestEdits = editor.edits
        }
        if let seed = options.cloudInit {
            report.changes += try seed.apply(to: repaired, options: repairOptions, report: planned.report).changes
        }
        progress.end()
        for destination in destinations { try destination.filesystem.close() }

        // A raw output is kept: the rest of its writeback runs while the other outputs are written,
        // and so does its file digest, on another thread.
        var rawFileDigest: BackgroundDigest?
        if rawRequest != nil {
            rawDisk.file.startWriteback(0..<diskSize)
            if options.digests.files { rawFileDigest = try BackgroundDigest(path: rawDisk.temporaryPath) }
        }
        // The rest of the disk digest (what libext2fs wrote last, and blocks written through its
        // cache) runs while the other outputs are written and the raw one is fsynced.
        var diskDigest: BackgroundWork<String>?
        if let writtenDigest {
            // Opened (mapped) now, so the file can be renamed into place while it is read.
            nonisolated(unsafe) let reader = try RawDiskReader(path: rawDisk.temporaryPath)
            diskDigest = BackgroundWork { writtenDigest.finish(reading: reader) }
        }
        try outputs.stream(from: rawDisk.temporaryPath, diskDigest: false, progress: progress)
        if let rawRequest {
            try rawDisk.commit()
            let summary = WriterSummary(format: .raw, variant: "raw, sparse", virtualSize: diskSize, fileSize: diskSize,
                                        allocatedUnits: 0, unitSize: 0)
            report.outputs.append(try Pipeline.report(path: rawRequest.path, summary: summary, seconds: monotonicSeconds() - startedWall,
                                                      sha256: try rawFileDigest?.wait(), diskDigest: try diskDigest?.wait()))
        }
        outputs.diskDigest = try diskDigest?.wait()
        report.outputs += try outputs.commit(fileDigests: options.digests.files)
        report.copy = statistics
        let parameters = root.parameters
        report.newFilesystem = NewFilesystemReport(
            type: parameters.flavor.rawValue, label: parameters.label, uuid: UUIDBytes.format(parameters.uuid),
            sizeBytes: parameters.blocksCount * UInt64(parameters.blockSize), blockSize: parameters.blockSize,
            inodeSize: parameters.inodeSize, inodes: parameters.inodesCount)
        let kind: String
        switch firmware {
        case .bios: kind = "GRUB 2 (i386-pc) in the MBR and the gap before the partition"
        case .uefi: kind = "GRUB 2 (x86_64-efi) at /\(GrubEFIImage.removablePath) and /\(GrubEFIImage.vendorPath) in the ESP"
        case .both: kind = "GRUB 2 (x86_64-efi) at /\(GrubEFIImage.removablePath) and /\(GrubEFIImage.vendorPath) in the ESP; GRUB 2 (i386-pc) in the protective MBR and the BIOS boot partition"
        }
        report.bootloader = BootloaderReport(
            kind: kind, coreImageBytes: coreImage.count,
            gapBytes: gptLayout?.biosBoot?.size ?? (gptLayout == nil ? plan.partitionOffset - 512 : 0),
            kernel: planned.report.bootableKernel?.path, initrd: planned.report.bootableKernel?.initrd)
        report.bootloader?.efiImageBytes = gptLayout == nil ? nil : efiImageBytes
        report.seconds = monotonicSeconds() - startedWall
        return report
    }

    /// A filesystem of the new disk: what goes into it, where, formatted how, and how fstab names it.
    struct NewPartition {
        var filesystem: GuestLayout.Filesystem
        var partition: DiskPlan.Partition
        var parameters: Ext2FormatParameters
        var reference: String
    }

    /// Where `--swap-file` puts the swap file.
    static let swapFilePath = "/swapfile"

    private func refuseOverwritingInput(_ source: SourceGuest) throws {
        for output in options.outputs {
            for input in [options.input] + options.moreDisks where isSameFile(input, output.path) {
                throw ConvertError.sameFile(path: output.path)
            }
        }
    }
}

func isSameFile(_ a: String, _ b: String) -> Bool {
    var first = stat(), second = stat()
    guard stat(a, &first) == 0, stat(b, &second) == 0 else { return false }
    return first.st_dev == second.st_dev && first.st_ino == second.st_ino
}
