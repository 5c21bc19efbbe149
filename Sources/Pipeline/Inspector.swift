import DiskLayout
import GuestFixups
import ImageCore
import ImageFormats

/// `rehost inspect`: what the input is, what is inside, and what `convert` would do with it.
public enum Inspector {
    public static func inspect(path: String, target: Target = .kvm, rootReference: RootReferenceChoice = .auto,
                               partition: Int? = nil, scratchDirectory: String? = nil, kernel: String? = nil,
                               addKernels: [String] = [], moreDisks: [String] = [], externalFiles: ExternalFiles = .contained,
                               maxOutputSize: UInt64? = nil) throws -> InspectReport {
        let supplied = try addKernels.map(SuppliedKernel.prepare(path:))
        let source = try SourceGuest(path: path, moreDisks: moreDisks, partition: partition, scratchDirectory: scratchDirectory,
                                     externalFiles: externalFiles, maxOutputSize: maxOutputSize)
        let overlay = source.overlay()
        let guest = try GuestInspector.inspect(overlay, target: target, kernel: supplied.isEmpty ? kernel : nil)
        let fs = source.report.filesystem
        let (firmware, firmwareReason) = FirmwareChoice.auto.resolve(bootKernel: FirmwareChoice.bootKernel(supplied: supplied, guest: guest))
        let rootNumber = 1 + GPTDiskLayout.numberShift(firmware: firmware)
        let root = RootReference.resolve(choice: rootReference, label: fs.label, uuid: fs.uuid, target: target, report: guest,
                                         partition: rootNumber)
        var report = InspectReport(input: source.report, guest: guest, rootReference: root, target: target.rawValue,
                                   plannedDisk: nil, plannedDiskProblem: nil, plannedChanges: [], plannedWarnings: [], plannedChangesProblem: nil)
        report.plannedFirmware = firmware
        report.plannedFirmwareReason = firmwareReason
        do {
            let plan = try DiskPlan.make(requestedSize: nil, usedBytes: source.usedBytes + supplied.reduce(0) { $0 + $1.installedBytes },
                                         sourceFilesystemSize: source.sizeBytes)
            report.plannedDisk = plan
            if firmware != .bios {
                let espSize = GPTDiskLayout.espSize(planDiskSize: plan.diskSize)
                let gpt = try GPTDiskLayout.make(plan: plan, firmware: firmware, espSize: espSize) { UUIDBytes.random() }
                report.plannedGPT = PlannedGPTDisk(diskSize: gpt.diskSize, espSize: espSize, biosBootPartition: gpt.biosBoot != nil,
                                                   rootPartition: rootNumber, rootSize: plan.partitionSize)
            }
        } catch let error as RehostError {
            report.plannedDiskProblem = error.description
        }
        do {
            var options = RepairOptions(target: target, rootReference: root, rootFilesystemType: "ext3", skip: [], kernel: kernel)
            if firmware.bootsUEFI {
                options.efiSystemPartition = EFISystemPartition.fstabDevice(volumeID: try EFISystemPartition.volumeID(for: overlay))
                options.grubBootPartition = "hd0,gpt\(rootNumber)"
            }
            options.mergedMountPoints = Set(source.mounts.map(\.mountPoint))
            options.volumeGroups = source.volumeGroupNames
            options.droppedDevices = source.droppedDevices
            let outcome = try GuestRepairs.apply(to: overlay, options: options, kernels: supplied)
            report.plannedChanges = outcome.changes
            report.guest = outcome.report
            report.plannedWarnings = outcome.warnings
        } catch let error as RehostError {
            report.plannedChangesProblem = error.description
        }
        return report
    }
}
