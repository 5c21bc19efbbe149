import Cloud
import DiskLayout
import Foundation
import GuestFixups
import ImageCore
import ImageFormats
import Pipeline

/// One upload of a run (`upload`, `convert --upload`, `export --upload`): the output it needs,
/// the writer it adds to the streaming read, and what it sends once the outputs are complete.
///
/// - EBS takes the disk's blocks as they stream past.
/// - A streamOptimized VMDK (S3, Glance) and a qcow2 planned from a raw disk (Glance) are sent
///   as they are written, through the same read.
/// - Otherwise Glance and S3 take a file: a local output of that format when the user asked for
///   one, the input itself when `rehost upload` is given a file already in it, else an output
///   written into a temporary directory in the same pass and removed at the end.
///
/// Whatever fails, the half-made image, snapshot or upload is deleted from the cloud.
/// Used from the command's thread only; the stream consumers it makes are called there too.
final class UploadRun: @unchecked Sendable {
    let target: UploadTarget
    let options: UploadOptions
    let progress: ProgressSink
    /// For names when none is given: the input's file name.
    let inputPath: String
    /// Glance properties from the guest (`hw_disk_bus`, `os_distro`, ...), under the user's.
    var guestProperties: [String: String] = [:]
    /// The cloud network drivers of the kernel the converted disk boots (AMI flags).
    var guestDrivers: [String] = []
    /// The firmware the converted disk boots under; nil for an existing disk (taken as BIOS).
    var guestFirmware: Firmware?

    /// AWS's boot mode for the disk: uefi-preferred when it boots both ways, so that instance
    /// types with UEFI use it and the others fall back to BIOS.
    var awsBootMode: EC2Client.BootMode {
        switch guestFirmware {
        case .uefi?: .uefi
        case .both?: .uefiPreferred
        case .bios?, nil: .legacyBIOS
        }
    }
    let retries = RetryCounter()
    private(set) var temporaryDirectory: String?
    /// The file sent to Glance or S3, once known.
    private(set) var file: String?
    private var fileRequest: OutputRequest?
    /// Outputs written only for the upload, removed at the end.
    private var temporaryOutputs: [String] = []
    private var ebs: EBSUpload?
    /// The S3 upload fed as the VMDK is written, when one is streamed.
    private var s3Stream: S3PartStream?
    private var streamStarted = monotonicSeconds()
    /// The format options of the run's outputs (a streamed VMDK is written with them).
    var writerOptions = WriterOptions()

    init(target: UploadTarget, options: UploadOptions, inputPath: String, progress: ProgressSink) {
        self.target = target
        self.options = options
        self.inputPath = inputPath
        self.progress = progress
    }

    var imageName: String {
        if let name = options.imageName { return name }
        var name = inputPath.split(separator: "/").last.map(String.init) ?? "rehost-image"
        for suffix in [".gz", ".raw", ".img", ".qcow2", ".vmdk", ".vdi", ".vhd", ".vhdx", ".ova"] where name.hasSuffix(suffix) {
            name.removeLast(suffix.count)
        }
        return name.isEmpty ? "rehost-image" : name
    }

    /// The format of the file this upload sends; nil for EBS.
    func fileFormat(defaultFormat: ImageFormat) -> ImageFormat? {
        switch target {
        case .glance: return options.diskFormat ?? defaultFormat
        case .awsS3: return options.diskFormat ?? .vmdk
        case .awsEBS: return nil
        }
    }

    lazy var client: HTTPClient = { [retries, progress] in
        // A note is one write(2) of one line: safe from the sending threads.
        nonisolated(unsafe) let progress = progress
        return HTTPClient(retry: RetryPolicy()) { error, attempt in
            retries.note()
            progress.note("retrying after: \(error) (attempt \(attempt + 1))")
        }
    }()

    /// The outputs to write: `requests`, plus a temporary one of `format` when none of them is
    /// of it (Glance, S3), or a temporary raw disk when the run must build one and nothing is
    /// kept (`convert --upload aws-ebs` with no -o).
    func outputs(_ requests: [OutputRequest], format: ImageFormat?, scratchDirectory: String?,
                 needsADisk: Bool = false, sourceIsRaw: Bool) throws -> [OutputRequest] {
        if let format, !requests.contains(where: { $0.format == format }) { streamedFormat = streamable(format, sourceIsRaw: sourceIsRaw) }
        guard let format, streamedFormat == nil else {
            guard needsADisk, requests.isEmpty else { return requests }
            return [try temporaryOutput(.raw, in: scratchDirectory)]
        }
        if let existing = requests.first(where: { $0.format == format }) {
            fileRequest = existing
            return requests
        }
        let request = try temporaryOutput(format, in: scratchDirectory)
        fileRequest = request
        return requests + [request]
    }

    /// An output in the temporary directory, removed at the end (and on an interrupt).
    private func temporaryOutput(_ format: ImageFormat, in scratchDirectory: String?) throws -> OutputRequest {
        let directory = try makeTemporaryDirectory(in: scratchDirectory)
        let request = OutputRequest(path: directory + "/" + imageName + "." + format.rawValue, format: format)
        TemporaryFiles.shared.register(request.path)
        temporaryOutputs.append(request.path)
        return request
    }

    /// The format sent as it is written, when no local file of it is kept: a streamOptimized VMDK
    /// (to S3 or Glance), or a qcow2 to Glance when the disk is a raw file (its allocated ranges
    /// plan the tables, which go first).
    private var streamedFormat: ImageFormat?

    private func streamable(_ format: ImageFormat, sourceIsRaw: Bool) -> ImageFormat? {
        switch (target, format) {
        case (.awsS3, .vmdk), (.glance, .vmdk): return writerOptions.vmdkSubformat == .streamOptimized ? format : nil
        case (.glance, .qcow2): return sourceIsRaw ? format : nil
        default: return nil
        }
    }

    /// Sends an existing file (`rehost upload` of a file already in the format asked for).
    func useFile(_ path: String) { file = path }

    /// The writers the upload adds to the streaming read; nil when it sends a file afterwards.
    func streamConsumers() throws -> StreamConsumers? {
        if target == .glance, let format = streamedFormat, file == nil {
            let upload = glanceUpload(format: format)
            let cloud = try OpenStackCloud.load(name: options.osCloud)
            let options = writerOptions
            return { [self] size, ranges in
                let name = imageName + "." + format.rawValue
                let stream = GlanceStream(upload: upload, cloud: cloud, client: client)
                let sink = OutputSink(stream: stream, name: name)
                let writer: any DiskImageWriter
                if format == .qcow2 {
                    guard let ranges else { throw CloudError.configuration("internal: a streamed qcow2 needs a raw disk's allocation") }
                    writer = try QCOW2StreamWriter(sink: sink, virtualSize: size, dataRanges: ranges)
                } else {
                    writer = try WriterFactory.make(format, sink: sink, virtualSize: size, options: options, fileName: name)
                }
                glanceStream = stream
                return [StreamedUploadWriter(writer) { [self] in streamedReport = try stream.finish(retries: retries) }]
            }
        }
        if target == .awsS3, streamedFormat == .vmdk, file == nil {
            let upload = try s3Upload(format: .vmdk, key: options.s3Key ?? imageName + ".vmdk")
            let s3 = S3Client(configuration: try awsConfiguration(), http: client)
            let options = writerOptions
            return { [self] size, _ in
                // A streamOptimized VMDK is at most the disk plus its markers and tables.
                let stream = upload.stream(client: s3, expectedSize: size + size / 32 + (64 << 20))
                s3Stream = stream
                streamStarted = monotonicSeconds()
                let sink = OutputSink(stream: stream, name: upload.key)
                let writer = try WriterFactory.make(.vmdk, sink: sink, virtualSize: size, options: options, fileName: upload.key)
                return [StreamedUploadWriter(writer) { [self] in streamedETag = try stream.finish() }]
            }
        }
        guard target == .awsEBS else { return nil }
        let configuration = try awsConfiguration()
        let upload = EBSUpload(configuration: configuration, client: client, description: description,
                               parallelism: options.parallelism ?? 16, pollInterval: pollInterval)
        ebs = upload
        return { size, _ in [upload.makeWriter(virtualSize: size)] }
    }

    var description: String { options.imageDescription ?? "\(imageName), converted by Rehost" }

    func awsConfiguration() throws -> AWSConfiguration {
        var environment = ProcessInfo.processInfo.environment
        if let region = options.awsRegion { environment["AWS_REGION"] = region }
        return try AWSConfiguration.load(environment: environment, profile: options.awsProfile)
    }

    /// Sends what the outputs hold, or registers what the stream sent; after the outputs are complete.
    func finish() throws -> UploadReport {
        do {
            let report: UploadReport
            switch target {
            case .glance: report = try sendToGlance()
            case .awsS3: report = try sendToS3()
            case .awsEBS:
                var registration = EBSUpload.Registration(name: imageName, description: description)
                registration.enaSupport = options.ena ?? guestDrivers.contains("ena")
                registration.sriovNetSupport = options.sriov ?? guestDrivers.contains("ixgbevf")
                registration.register = !options.noRegister
                registration.bootMode = awsBootMode
                guard let ebs else { throw CloudError.configuration("internal: no EBS upload was started") }
                report = try ebs.register(registration, retries: retries, progress: progress)
            }
            removeTemporaryDirectory()
            return report
        } catch {
            abandon()
            throw error
        }
    }

    /// After a failure anywhere in the run: cloud leftovers deleted, temporary outputs removed.
    func abandon() {
        ebs?.abandon()
        s3Stream?.abort()
        if streamedReport == nil { glanceStream?.abort() }
        removeTemporaryDirectory()
    }

    private var sentFile: String {
        get throws {
            if let file { return file }
            guard let fileRequest else { throw CloudError.configuration("internal: no file to upload") }
            return fileRequest.path
        }
    }

    private func glanceUpload(format: ImageFormat) -> GlanceUpload {
        var upload = GlanceUpload(name: imageName, diskFormat: format == .ova ? "vmdk" : format.rawValue)
        if format == .ova { upload.containerFormat = "ova" }
        upload.visibility = options.visibility
        upload.properties = guestProperties.merging(options.parsedProperties) { _, user in user }
        upload.method = options.glanceMethod
        return upload
    }

    private var glanceStream: GlanceStream?
    private var streamedReport: UploadReport?

    private func sendToGlance() throws -> UploadReport {
        if let glanceStream {
            guard let report = streamedReport else { throw CloudError.configuration("internal: the streamed Glance upload never finished") }
            // The image was made at the first byte, before the run knew the guest: its
            // properties follow now (the user's own were set at creation and stay).
            let user = options.parsedProperties
            try glanceStream.setProperties(guestProperties.filter { user[$0.key] == nil })
            return report
        }
        let path = try sentFile
        let format = fileRequest?.format ?? ImageFormat.fromExtension(of: path) ?? .raw
        let upload = glanceUpload(format: format)
        let cloud = try OpenStackCloud.load(name: options.osCloud)
        return try upload.run(file: path, cloud: cloud, client: client, retries: retries, progress: progress)
    }

    private var streamedETag: String?

    private func s3Upload(format: ImageFormat, key: String) throws -> S3Import {
        let importFormat: EC2Client.DiskFormat = switch format {
        case .vhd: .vhd
        case .ova: .ova
        case .raw: .raw
        default: .vmdk
        }
        var upload = S3Import(bucket: options.s3Bucket ?? "", key: key, format: importFormat)
        upload.kind = S3Import.Kind(rawValue: options.awsImport) ?? .image
        upload.description = description
        upload.roleName = options.awsRoleName
        upload.bootMode = awsBootMode
        upload.concurrency = options.parallelism ?? 4
        upload.createBucket = options.createBucket
        upload.pollInterval = pollInterval
        return upload
    }

    private func sendToS3() throws -> UploadReport {
        if let stream = s3Stream {
            guard let etag = streamedETag else { throw CloudError.configuration("internal: the streamed S3 upload never finished") }
            let upload = try s3Upload(format: .vmdk, key: stream.key)
            return try upload.importUploaded(etag: etag, size: stream.bytes, started: streamStarted, configuration: try awsConfiguration(),
                                             client: client, retries: retries, progress: progress)
        }
        let path = try sentFile
        let format = fileRequest?.format ?? ImageFormat.fromExtension(of: path) ?? .raw
        let upload = try s3Upload(format: format, key: options.s3Key ?? (path.split(separator: "/").last.map(String.init) ?? imageName + "." + format.rawValue))
        return try upload.run(file: path, configuration: try awsConfiguration(), client: client, retries: retries, progress: progress)
    }

    /// Seconds between polls of AWS's slow states (snapshots, AMIs, import tasks):
    /// REHOST_AWS_POLL_SECONDS for test servers that answer at once.
    var pollInterval: Double {
        ProcessInfo.processInfo.environment["REHOST_AWS_POLL_SECONDS"].flatMap(Double.init) ?? 10
    }

    private func makeTemporaryDirectory(in scratchDirectory: String?) throws -> String {
        if let temporaryDirectory { return temporaryDirectory }
        let base = scratchDirectory ?? ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp"
        var template = Array((base + "/rehost-upload-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else {
            throw FileError.open(path: base + "/rehost-upload-XXXXXX", errno: errno)
        }
        temporaryDirectory = String(cString: made)
        return temporaryDirectory!
    }

    private func removeTemporaryDirectory() {
        guard let directory = temporaryDirectory else { return }
        for path in temporaryOutputs {
            unlink(path)
            TemporaryFiles.shared.unregister(path)
        }
        temporaryOutputs = []
        rmdir(directory)
        temporaryDirectory = nil
    }
}

extension UploadRun {
    /// What Nova needs to know about a converted guest: the buses its initrd now drives, and
    /// what it is (for os_distro, the names libosinfo uses).
    /// A disk that boots both ways stays `bios` for Nova, whose BIOS machines are the common case.
    static func glanceProperties(for report: ConvertReport) -> [String: String] {
        let guest = report.operatingSystem
        var properties = ["hw_firmware_type": report.firmware == .uefi ? "uefi" : "bios", "hw_disk_bus": "virtio", "hw_vif_model": "virtio"]
        switch report.target {
        case "vmware":
            properties["hw_disk_bus"] = "scsi"
            properties["hw_scsi_model"] = "virtio-scsi"
            properties["hw_vif_model"] = "e1000"
        case "virtualbox":
            properties["hw_disk_bus"] = "sata"
            properties["hw_vif_model"] = "e1000"
        default:
            break
        }
        if let guest {
            let name = guest.name.lowercased()
            let distro = name.contains("centos") ? "centos" : name.contains("red hat") ? "rhel" : name.contains("fedora") ? "fedora"
                : name.contains("ubuntu") ? "ubuntu" : name.contains("debian") ? "debian" : name.contains("suse") ? "sles"
                : name.contains("scientific") ? "scientificlinux" : nil
            if let distro { properties["os_distro"] = distro }
            if let version = guest.version { properties["os_version"] = version }
            properties["os_type"] = "linux"
        }
        return properties
    }
}

/// The outputs written only for an upload (in its temporary directory, removed) leave the report.
func droppingUploadOutputs(_ outputs: [OutputReport], in directory: String?) -> [OutputReport] {
    guard let directory else { return outputs }
    return outputs.filter { !$0.path.hasPrefix(directory + "/") }
}

extension ConvertReport {
    func droppingOutputs(in directory: String?) -> ConvertReport {
        var report = self
        report.outputs = droppingUploadOutputs(outputs, in: directory)
        return report
    }
}

extension ExportReport {
    func droppingOutputs(in directory: String?) -> ExportReport {
        var report = self
        report.outputs = droppingUploadOutputs(outputs, in: directory)
        return report
    }
}
