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

    @OptionGroup(title: "Reading the input") var access: ImageAccessOptions

    @Flag(help: "Print a JSON array of reports instead of text.")
    var json = false

    func validate() throws {
        guard !inputs.isEmpty else { throw ValidationError("name at least one disk image") }
    }

    func run() throws {
        try runReportingErrors {
            var reports: [DiskDigestReport] = []
            for input in inputs {
                let report = try diskDigest(ofImage: input, scratchDirectory: access.scratchDirectory,
                                            externalFiles: access.externalFiles, maxOutputSize: access.maxOutputBytes)
                if json { reports.append(report) } else { print("\(report.diskDigest)  \(input.escapedForTerminal())") }
            }
            if json { try printJSON(reports) }
        }
    }
}
