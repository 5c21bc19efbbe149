import ArgumentParser
import ImageCore
import ImageFormats
import Pipeline

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Convert an existing disk image to qcow2, VMDK, VDI, VHD, OVA or raw, all in one read.",
        discussion: """
            The qemu-img convert job, without repairs: reads a disk image once (holes, unallocated clusters \
            and all-zero blocks cost nothing) and writes every output asked for. The input format is found \
            by its magic: raw, qcow2 (v2/v3, compressed or not), VMDK (monolithicSparse, streamOptimized, \
            or a descriptor with flat or sparse extents), VDI, VHD (fixed or dynamic), OVA (its first disk, \
            a VMDK copied to $TMPDIR while it is read). Output formats come from the extensions or --format.

            Examples:
              rehost export centos5.raw -o centos5.qcow2 -o centos5.ova
              rehost export centos5.raw -o azure.vhd --vhd-variant fixed
              rehost export vbox.vdi -o kvm.qcow2 --compress deflate --json
              rehost export esxi.vmdk -o disk.raw
              rehost export vm.ova -o disk.qcow2
            """)

    @Argument(help: ArgumentHelp("The disk image to read: raw, qcow2, VMDK, VDI, VHD or OVA.", valueName: "disk"))
    var input: String

    @OptionGroup(title: "Outputs") var outputs: OutputOptions

    @Option(name: .customLong("scratch-dir"),
            help: ArgumentHelp("Where the disk of an OVA input is copied out for reading, removed at the end (default: $TMPDIR or /tmp).", valueName: "dir"))
    var scratchDirectory: String?

    @Flag(name: .customLong("allow-external-files"),
          help: ArgumentHelp("Let a VMDK descriptor's extent lines name files outside its own directory (absolute paths, ../, symlinks leading out) and block devices. Off by default: an image may read only files beside it. For trusted local images only."))
    var allowExternalFiles = false

    @Option(name: .customLong("max-output-size"),
            help: ArgumentHelp("The most data the input may expand to, written to each output, e.g. 200G. Default: \(ExpansionLimit.defaultFactor) times the bytes the input occupies on disk, at least \(ByteCount.format(ExpansionLimit.defaultFloor)). A hostile image that claims more is refused.",
                               valueName: "size"))
    var maxOutputSize: String?

    func validate() throws { try validateMaxOutputSize(maxOutputSize) }

    @Flag(help: "Print a JSON report on standard output instead of text.")
    var json = false

    @Flag(name: .shortAndLong, help: "No progress bar.")
    var quiet = false

    func run() throws {
        try runReportingErrors {
            let progress: ProgressSink = (quiet || json) ? SilentProgress() : TerminalProgress()
            let report = try Exporter(input: input, outputs: try outputs.requests(), options: outputs.writerOptions,
                                      digests: outputs.digests, scratchDirectory: scratchDirectory,
                                      externalFiles: allowExternalFiles ? .allowed : .contained,
                                      maxOutputSize: maxOutputSize.flatMap(ByteCount.parse), progress: progress).run()
            if json { try printJSON(report) } else { print(TextReport.export(report), terminator: "") }
        }
    }
}
