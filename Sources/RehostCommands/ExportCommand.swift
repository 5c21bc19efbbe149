import ArgumentParser
import Cloud
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

    @OptionGroup(title: "Reading the input") var access: ImageAccessOptions

    @OptionGroup(title: "Upload (with --upload)") var upload: UploadOptions

    @Flag(help: "Print a JSON report on standard output instead of text.")
    var json = false

    @Flag(name: .shortAndLong, help: "No progress bar.")
    var quiet = false

    func validate() throws { try upload.validate(target: outputs.upload) }

    func run() throws {
        try runReportingErrors {
            try outputs.configureReproducibility(inputs: [input])
            let progress: ProgressSink = (quiet || json) ? SilentProgress() : TerminalProgress()
            let uploadRun = outputs.upload.map { UploadRun(target: $0, options: upload, inputPath: input, progress: progress) }
            uploadRun?.writerOptions = outputs.writerOptions
            do {
                var requests = try outputs.requests()
                if let uploadRun {
                    requests = try uploadRun.outputs(requests, format: uploadRun.fileFormat(defaultFormat: .qcow2),
                                                     scratchDirectory: access.scratchDirectory,
                                                     sourceIsRaw: (try? DiskImageReaders.isRawDisk(path: input)) == true)
                }
                let exporter = Exporter(input: input, outputs: requests, options: outputs.writerOptions,
                                        digests: outputs.digests, scratchDirectory: access.scratchDirectory,
                                        externalFiles: access.externalFiles, maxOutputSize: access.maxOutputBytes,
                                        progress: progress)
                exporter.streamConsumers = try uploadRun?.streamConsumers()
                let report = try exporter.run().droppingOutputs(in: uploadRun?.temporaryDirectory)
                let uploads = try uploadRun.map { [try $0.finish()] } ?? []
                if json {
                    try printJSON(report, uploads: uploads)
                } else {
                    print(TextReport.export(report), terminator: "")
                    for upload in uploads { print(TextReport.upload(upload), terminator: "") }
                }
            } catch {
                uploadRun?.abandon()
                throw error
            }
        }
    }
}
