import ArgumentParser
import ImageCore
import Pipeline

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Say what an instance copy is, what is inside, and what convert would do.",
        discussion: """
            Reads the input without changing it: the container (bare filesystem, partitioned disk, gzip, qcow2, VMDK, VDI, VHD, OVA), the \
            filesystem (type, label, UUID, size, used space), the guest OS, every kernel in /boot judged by its \
            bytes (a bzImage with an x86 boot header boots under GRUB; a Xen PV ELF does not, whatever its name), \
            its release, modules and initrd (initramfs-tools, dracut or RHEL 5 nash), and for each target whether \
            it boots as it is, boots once the initrd repair adds the drivers it names, or does not boot and why; \
            the Xen traits found (console gettys, xenblk/xennet aliases, Xen \
            device names in fstab, HWADDR lines, blkid caches), the bootloader configuration present, and the \
            plan convert would carry out: the disk layout and every file it would change.

            Examples:
              rehost inspect centos5.img
              rehost inspect --target virtualbox --json centos5.img.gz
              rehost inspect rhel5-xen.img --add-kernel kernel-2.6.18-398.el5.x86_64.rpm
            """)

    @OptionGroup var guest: GuestOptions

    func run() throws {
        try runReportingErrors {
            let report = try Inspector.inspect(path: guest.input, target: guest.target, rootReference: guest.rootReference,
                                               partition: guest.partition, scratchDirectory: guest.scratchDirectory,
                                               kernel: guest.kernel, addKernels: guest.addKernel, moreDisks: guest.moreDisks,
                                               externalFiles: guest.externalFiles, maxOutputSize: guest.maxOutputBytes)
            if guest.json { try printJSON(report) } else { print(TextReport.inspect(report), terminator: "") }
        }
    }
}
