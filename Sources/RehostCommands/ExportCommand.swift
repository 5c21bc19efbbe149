import ArgumentParser
import ImageCore
import Pipeline

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write an existing raw disk as qcow2, VMDK, VDI, VHD or OVA, all in one read.",
        discussion: """
            The qemu-img convert job, without repairs: reads a raw disk once (holes and all-zero blocks cost \
            nothing) and writes every output asked for. Formats come from the extensions or --format.

            Examples:
              rehost export centos5.raw -o centos5.qcow2 -o centos5.ova
              rehost export centos5.raw -o azure.vhd --vhd-variant fixed
              rehost export centos5.raw -o small.qcow2 --compress deflate --json
            """)

    @Argument(help: ArgumentHelp("The raw disk to read.", valueName: "disk.raw"))
    var input: String

    @OptionGroup(title: "Outputs") var outputs: OutputOptions

    @Flag(help: "Print a JSON report on standard output instead of text.")
    var json = false

    @Flag(name: .shortAndLong, help: "No progress bar.")
    var quiet = false

    func run() throws {
        try runReportingErrors {
            let progress: ProgressSink = (quiet || json) ? SilentProgress() : TerminalProgress()
            let report = try Exporter(input: input, outputs: try outputs.requests(), options: outputs.writerOptions,
                                      digests: !outputs.noDigest, progress: progress).run()
            if json { try printJSON(report) } else { print(TextReport.export(report), terminator: "") }
        }
    }
}
