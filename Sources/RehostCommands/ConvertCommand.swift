import ArgumentParser
import Cloud
import DiskLayout
import Ext2
import FilesystemBuilder
import GuestFixups
import ImageCore
import Pipeline

struct ConvertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Build a bootable partitioned raw disk from a Xen instance copy.",
        discussion: """
            Builds a sparse raw disk that boots under the firmware the guest's kernel allows (--firmware \
            auto): for a kernel with an EFI stub, a GPT disk with a BIOS boot partition (GRUB 2's core.img, \
            boot.img in the protective MBR), an EFI System Partition (GRUB 2 x86_64-efi) and the Linux \
            partition, so it boots under BIOS and UEFI; for an older kernel, an MBR with one bootable Linux \
            partition at 1 MiB and GRUB 2 in the MBR and the gap after it (one partition per filesystem with \
            --keep-layout, and a swap partition if asked). Writes a new ext3 filesystem straight into the \
            partition with libext2fs; \
            copies every file of the source (holes, links, device nodes, owners, modes, times, xattrs, flags); \
            and repairs the copy for the target hypervisor. The input is never modified, and the output \
            appears at its path only when complete. The disk is built once and streamed, in one read, to \
            every output asked for: raw, qcow2, VMDK, VDI, VHD, VHDX or OVA, by extension (a trailing .gz, .xz or \
            .zst compresses the whole file as one stream).

            Repairs (skip any with --skip NAME):
            \(GuestRepairs.names.map { "- \($0.name): \($0.description)" }.joined(separator: "\n"))

            Examples:
              rehost convert centos5.img -o centos5.raw
              rehost convert centos5.img -o vm.qcow2 -o vm.ova -o vm.vdi
              rehost convert centos5.img.gz -o vm.raw --size 10G --target virtualbox
              rehost convert old-esxi.vmdk -o vm.qcow2
              rehost convert centos5.img -o vm.raw --dry-run
              rehost convert centos5-lvm.img -o vm.qcow2 --swap-file 1G
              rehost convert centos5-lvm.img -o vm.qcow2 --keep-layout       # /boot, /, /var, swap as partitions
              rehost convert centos5.img -o vm.raw --swap-partition 1G
              rehost convert disk.raw --partition 2 -o new.raw --root-ref uuid --skip network
              rehost convert rhel5-xen.img --add-kernel kernel-2.6.18-398.el5.x86_64.rpm -o vm.qcow2
              rehost convert debian.img -o vm.vmdk --target vmware --kernel 6.1.0-28-amd64
              rehost convert centos5.img --upload glance --os-cloud mycloud   # nothing kept locally
              rehost convert centos5.img -o vm.raw --upload aws-ebs --image-name centos5-hvm
            """)

    @OptionGroup var guest: GuestOptions

    @OptionGroup(title: "Outputs") var outputs: OutputOptions

    @OptionGroup(title: "Cloud-init") var cloudInit: CloudInitOptions

    @OptionGroup(title: "Upload (with --upload)") var upload: UploadOptions

    @Option(help: ArgumentHelp("The disk's size, e.g. 10G or 8192M (binary units). Default: the data plus a quarter plus 256 MiB, and never less than the source filesystem (for each filesystem with --keep-layout). With --keep-layout it is still the whole disk: the swap partition and the other filesystems get what they would have had, and / the rest; if that is too little for /, the others shrink to what their data needs.",
                               valueName: "size"))
    var size: String?

    @Flag(name: .customLong("keep-layout"),
          help: "Give each filesystem the guest's fstab mounts (/boot, /, /var, /home...; on partitions or LVM2 LVs) an ext3 partition of its own, keeping its UUID and label, instead of merging them all into one root. Order: /boot first (partition 1, bootable; GRUB then reads (hd0,msdos1)/grub and the menus say /vmlinuz-...), then /, then the rest by mount point, then swap. fstab names each the way --root-ref names the root. The guest's first swap device is recreated as a swap partition of its size unless --no-swap. An MBR holds four primary partitions and no extended ones are made: a guest that needs more is refused (add --no-swap, or leave --keep-layout out to merge).")
    var keepLayout = false

    @Option(name: .customLong("swap-partition"),
            help: ArgumentHelp("Add a swap partition of this size (e.g. 512M, 2G; rounded up to a whole MiB) at the end of the disk, formatted as mkswap does, mounted from fstab by UUID. With --keep-layout it replaces the guest's own swap size.",
                               valueName: "size"))
    var swapPartition: String?

    @Flag(name: .customLong("no-swap"), help: "With --keep-layout, do not recreate the guest's swap device.")
    var noSwap = false

    @Option(help: ArgumentHelp("The new filesystem's type.", valueName: "ext2|ext3|ext4"))
    var fs: Ext2FormatParameters.Flavor = .ext3

    @Option(name: .customLong("inode-size"),
            help: ArgumentHelp("Inode size in bytes. 128 is what GRUB legacy and old kernels read; 256 keeps sub-second timestamps.",
                               valueName: "128|256"))
    var inodeSize: Int = 128

    @Option(name: .customLong("swap-file"),
            help: ArgumentHelp("Create /swapfile of this size (e.g. 512M, 2G; whole 4 KiB pages) in the new root, formatted as swap, and add it to /etc/fstab. The guest's swap partitions and LVs are not copied; this replaces them. For a swap partition instead, see --swap-partition.",
                               valueName: "size"))
    var swapFile: String?

    @Flag(name: .customLong("new-uuid"), help: "Give the new filesystem a fresh UUID instead of the source's.")
    var newUUID = false

    @Option(help: ArgumentHelp("A new filesystem label instead of the source's.", valueName: "label"))
    var label: String?

    @Option(name: .customLong("skip"), help: ArgumentHelp("Do not make this repair (repeatable).", valueName: "name"))
    var skip: [String] = []

    @Option(help: ArgumentHelp("In a guest that uses SELinux, how files Rehost creates get their labels: label (from the guest's file_contexts, else their neighbours) or relabel (touch /.autorelabel so the guest relabels itself at first boot).",
                               valueName: "label|relabel"))
    var selinux: SELinuxMode = .label

    @Option(help: ArgumentHelp("The firmware the disk boots under: bios (an MBR disk, GRUB i386-pc in the MBR), uefi (a GPT disk with an EFI System Partition holding GRUB x86_64-efi at /EFI/BOOT/BOOTX64.EFI, mounted by the guest on /boot/efi), or both (the uefi disk plus a BIOS boot partition and GRUB's boot.img in the protective MBR). uefi and both need a boot kernel with an EFI stub. auto (the default): both when the boot kernel has an EFI stub, else bios; the report says which and why.",
                               valueName: "bios|uefi|both|auto"))
    var firmware: FirmwareChoice = .auto

    @Flag(name: .customLong("dry-run"), help: "Show the plan and every change, and write nothing.")
    var dryRun = false

    @Flag(name: .shortAndLong, help: "No progress bar.")
    var quiet = false

    // --clean and the customize options (see `rehost help clean`, `rehost help customize`):
    // applied to the new guest after the repairs, planned with them.
    @Flag(name: .customLong("clean"), help: "Run the default clean operations of `rehost clean` on the new guest, after the repairs.")
    var clean = false

    @Option(name: .customLong("clean-operations"), help: ArgumentHelp("With --clean: the clean operations, as `rehost clean --operations` takes them.", valueName: "list"))
    var cleanOperations: [String] = []

    @Flag(name: .customLong("keep-user-ssh"), help: "With --clean: keep root's and users' ~/.ssh (a private migration).")
    var keepUserSSH = false

    @OptionGroup(title: "Customizations (as rehost customize, applied after the repairs and --clean)") var customizations: CustomizeOptionGroup

    func validate() throws {
        try upload.validate(target: outputs.upload)
        if let size, ByteCount.parse(size) == nil {
            throw ValidationError("--size \(size): expected a size such as 10G, 512M or 4294967296")
        }
        if let swapFile {
            guard let bytes = ByteCount.parse(swapFile) else {
                throw ValidationError("--swap-file \(swapFile): expected a size such as 512M, 2G or 1073741824")
            }
            if let problem = SwapArea.problem(withSize: bytes) { throw ValidationError("--swap-file \(swapFile): \(problem)") }
        }
        if let swapPartition {
            guard let bytes = ByteCount.parse(swapPartition) else {
                throw ValidationError("--swap-partition \(swapPartition): expected a size such as 512M, 2G or 1073741824")
            }
            if let problem = SwapArea.problem(withSize: bytes) { throw ValidationError("--swap-partition \(swapPartition): \(problem)") }
            if swapFile != nil { throw ValidationError("--swap-file and --swap-partition: choose one place for swap") }
        }
        if noSwap && !keepLayout { throw ValidationError("--no-swap: only --keep-layout recreates the guest's swap") }
        if noSwap && swapPartition != nil { throw ValidationError("--no-swap and --swap-partition: choose one") }
        guard [128, 256, 512, 1024].contains(inodeSize) else {
            throw ValidationError("--inode-size \(inodeSize): expected 128, 256, 512 or 1024")
        }
        let known = Set(GuestRepairs.names.map(\.name))
        for name in skip where !known.contains(name) {
            throw ValidationError("--skip \(name): no such repair; the repairs are \(known.sorted().joined(separator: ", "))")
        }
    }

    func run() throws {
        try runReportingErrors {
            try outputs.configureReproducibility(inputs: [guest.input] + guest.moreDisks)
            var options = ConvertOptions(input: guest.input, outputs: try outputs.requests())
            options.moreDisks = guest.moreDisks
            options.writerOptions = outputs.writerOptions
            options.digests = outputs.digests
            options.diskSize = size.flatMap(ByteCount.parse)
            options.format = FormatOptions(flavor: fs, inodeSize: inodeSize, newUUID: newUUID, label: label)
            options.target = guest.target
            options.rootReference = guest.rootReference
            options.firmware = firmware
            // A disk that boots only through UEFI: an OVA's machine must say so.
            if firmware == .uefi { options.writerOptions.firmware = .efi }
            options.skip = Set(skip)
            options.kernel = guest.kernel
            options.addKernels = guest.addKernel
            options.selinux = selinux
            options.dryRun = dryRun
            options.partition = guest.partition
            options.scratchDirectory = guest.scratchDirectory
            options.externalFiles = guest.externalFiles
            options.maxOutputSize = guest.maxOutputBytes
            options.swapFileSize = swapFile.flatMap(ByteCount.parse)
            options.keepLayout = keepLayout
            options.swapPartitionSize = swapPartition.flatMap(ByteCount.parse)
            options.noSwap = noSwap
            if clean || !cleanOperations.isEmpty {
                options.clean = try CleanOperations.select(cleanOperations)
                if keepUserSSH { options.clean.removeAll { $0.name == "ssh-userdir" } }
            }
            options.customize = try customizations.options()
            options.cloudInit = try cloudInit.seed()
            let progress: ProgressSink = (quiet || guest.json) ? SilentProgress() : TerminalProgress()
            let uploadRun = outputs.upload.map { UploadRun(target: $0, options: upload, inputPath: guest.input, progress: progress) }
            uploadRun?.writerOptions = outputs.writerOptions
            var uploads: [UploadReport] = []
            do {
                if let uploadRun {
                    // The disk is built as raw first (libext2fs writes where it likes): with no
                    // output kept, in the upload's temporary directory.
                    options.outputs = try uploadRun.outputs(options.outputs, format: uploadRun.fileFormat(defaultFormat: .qcow2),
                                                            scratchDirectory: guest.scratchDirectory, needsADisk: true,
                                                            sourceIsRaw: true)
                    options.streamConsumers = try uploadRun.streamConsumers()
                }
                let report = try Converter(options: options, progress: progress).run()
                    .droppingOutputs(in: uploadRun?.temporaryDirectory)
                if let uploadRun {
                    if dryRun {
                        uploadRun.abandon()
                    } else {
                        uploadRun.guestProperties = UploadRun.glanceProperties(for: report)
                        uploadRun.guestDrivers = report.bootKernel?.cloudNetworkDrivers ?? []
                        uploadRun.guestFirmware = report.firmware
                        uploads.append(try uploadRun.finish())
                    }
                }
                if guest.json {
                    try printJSON(report, uploads: uploads)
                } else {
                    print(TextReport.convert(report), terminator: "")
                    for upload in uploads { print(TextReport.upload(upload), terminator: "") }
                }
            } catch {
                uploadRun?.abandon()
                throw error
            }
        }
    }
}

extension Ext2FormatParameters.Flavor: ExpressibleByArgument {}
extension FirmwareChoice: ExpressibleByArgument {}

