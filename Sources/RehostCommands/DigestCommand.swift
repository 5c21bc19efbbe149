import ArgumentParser
import ImageCore
import ImageFormats
import Pipeline

struct DigestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "digest",
        abstract: "Print the blk-sha256 digest of the disk an image holds, in any format.",
        discussion: """
            The digest is of the disk's contents, what a guest reads, not of the file: a raw, qcow2, VMDK, \
            VDI, VHD or OVA image of the same disk gives the same value, and it is the value `convert` and \
            `export` report as the disk digest of their outputs (README "Digests"). Only the image's data is \
            read; holes, unallocated clusters and zero blocks cost nothing, and blocks hash in parallel.

            The output has the form sha256sum uses, one line per image. To check a conversion:
              rehost export centos5.raw -o centos5.qcow2 --json | jq -r '.outputs[0].diskDigest'
              rehost digest centos5.raw centos5.qcow2
            """)

    @Argument(help: ArgumentHelp("Disk images: raw, qcow2, VMDK, VDI, VHD or OVA.", valueName: "disk"))
    var inputs: [String]

    @Option(name: .customLong("scratch-dir"),
            help: ArgumentHelp("Where the disk of an OVA input is copied out for reading, removed at the end (default: $TMPDIR or /tmp).", valueName: "dir"))
    var scratchDirectory: String?

    @Flag(name: .customLong("allow-external-files"),
          help: ArgumentHelp("Let a VMDK descriptor's extents name files outside its own directory. For trusted local images only."))
    var allowExternalFiles = false

    @Option(name: .customLong("max-output-size"),
            help: ArgumentHelp("The most data an image may expand to, e.g. 200G (default: \(ExpansionLimit.defaultFactor) times its size on disk, at least \(ByteCount.format(ExpansionLimit.defaultFloor))).",
                               valueName: "size"))
    var maxOutputSize: String?

    @Flag(help: "Print a JSON array of reports instead of text.")
    var json = false

    func validate() throws {
        guard !inputs.isEmpty else { throw ValidationError("name at least one disk image") }
        try validateMaxOutputSize(maxOutputSize)
    }

    func run() throws {
        try runReportingErrors {
            var reports: [DiskDigestReport] = []
            for input in inputs {
                let report = try diskDigest(ofImage: input, scratchDirectory: scratchDirectory,
                                            externalFiles: allowExternalFiles ? .allowed : .contained,
                                            maxOutputSize: maxOutputSize.flatMap(ByteCount.parse))
                if json { reports.append(report) } else { print("\(report.diskDigest)  \(input.escapedForTerminal())") }
            }
            if json { try printJSON(reports) }
        }
    }
}
