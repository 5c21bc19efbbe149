import ArgumentParser
import Cloud
import Foundation
import ImageCore
import ImageFormats
import Pipeline

struct UploadCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "upload",
        abstract: "Upload a disk image to OpenStack Glance or AWS (an EBS snapshot and AMI, or S3 and VM Import).",
        discussion: """
            Targets:
            - glance: creates the image (disk_format, container_format bare, or ova for an OVA), sends the file by \
            PUT /file or by the glance-direct import, waits for `active`, and checks the MD5 checksum and SHA-512 \
            os_hash_value Glance reports against the file's. Auth: Keystone v3 (password, application credential \
            or token) from clouds.yaml (--os-cloud, OS_CLOUD) or the OS_* environment, as the openstack client \
            reads them.
            - aws-ebs: the EBS direct APIs, as coldsnap uses them: StartSnapshot, PutSnapshotBlock for every \
            512 KiB block holding data (with its SHA-256; zero blocks are never sent), CompleteSnapshot with the \
            block count and the linear checksum, then RegisterImage (hvm, /dev/xvda, BIOS boot) once the \
            snapshot is completed.
            - aws-s3: S3 multipart upload (parts sized from the file, in parallel, resumed by listing the parts \
            already there), then VM Import's ImportImage or ImportSnapshot, polled to its end.
            AWS credentials and region: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN, AWS_PROFILE with \
            ~/.aws/credentials and ~/.aws/config; endpoints from AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_EBS/_EC2/_S3. \
            Every request is signed with Signature Version 4; no secret is printed or written to a report.

            The input is read once. A file already in the format the cloud is sent (--disk-format; default the \
            input's own) goes as it is; any other is converted on the way and sent as it is written: EBS takes \
            the disk's blocks straight from the read, a streamOptimized VMDK goes to S3 part by part or to \
            Glance, and a qcow2 made from a raw disk goes to Glance front to back (tables first). Other cases \
            (a qcow2 from another format, VHD, VDI) are written to a temporary directory, sent and removed. On \
            any failure the half-made image, snapshot or multipart upload is deleted. Throttling, 5xx answers \
            and dropped connections are retried with backoff; a fault that outlives the retries exits with \
            status 75 (try again later), every other error with 1.

            Examples:
              rehost upload centos5.qcow2 --to glance --os-cloud mycloud --image-name centos5 --property hw_disk_bus=virtio
              rehost upload centos5.raw --to glance --disk-format qcow2 --glance-method glance-direct
              rehost upload centos5.raw --to aws-ebs --aws-profile prod --image-name centos5-kvm --ena
              rehost upload centos5.raw --to aws-s3 --s3-bucket imports --disk-format vmdk --json
            """)

    @Argument(help: ArgumentHelp("The disk image to upload: raw, qcow2, VMDK, VDI, VHD or OVA.", valueName: "disk"))
    var input: String

    @Option(help: ArgumentHelp("Where the image goes.", valueName: "glance|aws-ebs|aws-s3"))
    var to: UploadTarget

    @OptionGroup(title: "The upload") var upload: UploadOptions

    @OptionGroup(title: "Reading the input") var access: ImageAccessOptions

    @Flag(help: "Print a JSON report on standard output instead of text.")
    var json = false

    @Flag(name: .shortAndLong, help: "No progress bar.")
    var quiet = false

    func validate() throws { try upload.validate(target: to) }

    func run() throws {
        try runReportingErrors {
            let progress: ProgressSink = (quiet || json) ? SilentProgress() : TerminalProgress()
            let run = UploadRun(target: to, options: upload, inputPath: input, progress: progress)
            do {
                let reader = try DiskImageReaders.open(path: input, scratchDirectory: access.scratchDirectory,
                                                       externalFiles: access.externalFiles, maxOutputSize: access.maxOutputBytes)
                let inputFormat = reader.format
                // Not a compressed input (read from its expanded scratch copy): that is sent decompressed.
                let sendsInputAsIs = reader.inputFiles == [input] && reader.path == input
                var exported: ExportReport?
                if let format = run.fileFormat(defaultFormat: inputFormat), format == inputFormat, sendsInputAsIs {
                    run.useFile(input)
                } else {
                    let outputs = try run.outputs([], format: run.fileFormat(defaultFormat: inputFormat),
                                                  scratchDirectory: access.scratchDirectory, sourceIsRaw: reader is RawDiskReader)
                    let exporter = Exporter(input: input, outputs: outputs, options: WriterOptions(), digests: .none,
                                            scratchDirectory: access.scratchDirectory, externalFiles: access.externalFiles,
                                            maxOutputSize: access.maxOutputBytes, progress: progress)
                    exporter.streamConsumers = try run.streamConsumers()
                    exported = try exporter.run()
                }
                let report = try run.finish()
                if json {
                    try printJSON(UploadCommandReport(input: input, inputFormat: inputFormat, converted: exported?.outputs.first,
                                                      upload: report))
                } else {
                    print(TextReport.upload(report), terminator: "")
                }
            } catch {
                run.abandon()
                throw error
            }
        }
    }
}

/// `rehost upload --json`.
struct UploadCommandReport: Encodable {
    var input: String
    var inputFormat: ImageFormat
    /// The file written on the way when the input was not sent as it is (removed afterwards).
    var converted: OutputReport?
    var upload: UploadReport
}
