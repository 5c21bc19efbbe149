import ArgumentParser
import ImageCore
import Pipeline

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Say what an instance copy is, what is inside, and what convert would do.",
        discussion: """
            Reads the input without changing it: the container (bare filesystem, partitioned disk, gzip, qcow2, VMDK, VDI, VHD, OVA), the \
            filesystem (type, label, UUID, size, used space), the guest OS, the kernels and initrds in /boot \
            (and whether they are Xen-only), the Xen traits found (console gettys, xenblk/xennet aliases, Xen \
            device names in fstab, HWADDR lines, blkid caches), the bootloader configuration present, and the \
            plan convert would carry out: the disk layout and every file it would change.

            Examples:
              rehost inspect centos5.img
              rehost inspect --target virtualbox --json centos5.img.gz
            """)

    @OptionGroup var guest: GuestOptions

    func run() throws {
        try runReportingErrors {
            let report = try Inspector.inspect(path: guest.input, target: guest.target, rootReference: guest.rootReference,
                                               partition: guest.partition, scratchDirectory: guest.scratchDirectory,
                                               kernel: guest.kernel, addKernels: guest.addKernel)
            if guest.json { try printJSON(report) } else { print(TextReport.inspect(report), terminator: "") }
        }
    }
}
