import Foundation
import ImageCore

/// A disk into an AMI by the EBS direct APIs: the snapshot is written as the disk streams past
/// (`EBSSnapshotWriter`), then, once EC2 reports it `completed`, registered as an HVM image that
/// boots the way Rehost built the disk (BIOS, GRUB in the MBR). A failure anywhere deletes what
/// was made: the AMI, then the snapshot.
public final class EBSUpload: @unchecked Sendable {
    /// How the AMI is registered.
    public struct Registration: Sendable {
        public var name: String
        public var description: String
        public var architecture: EC2Client.Architecture = .x86_64
        public var bootMode: EC2Client.BootMode = .legacyBIOS
        public var enaSupport = false
        public var sriovNetSupport = false
        /// false: leave the snapshot without an AMI.
        public var register = true

        public init(name: String, description: String) {
            self.name = name
            self.description = description
        }
    }

    let ebs: EBSDirectClient
    let ec2: EC2Client
    let description: String
    let parallelism: Int
    /// Seconds between polls of the snapshot and the image.
    let pollInterval: Double
    public private(set) var writer: EBSSnapshotWriter?
    private var imageID: String?
    private var started = monotonicSeconds()

    public init(configuration: AWSConfiguration, client: HTTPClient, description: String, parallelism: Int = 16,
                pollInterval: Double = 5) {
        ebs = EBSDirectClient(configuration: configuration, client: client)
        ec2 = EC2Client(configuration: configuration, http: client)
        self.description = description
        self.parallelism = parallelism
        self.pollInterval = pollInterval
    }

    /// The writer the streaming read feeds; made once the disk's size is known.
    public func makeWriter(virtualSize: UInt64) -> EBSSnapshotWriter {
        started = monotonicSeconds()
        let writer = EBSSnapshotWriter(virtualSize: virtualSize, ebs: ebs, description: description, parallelism: parallelism)
        self.writer = writer
        return writer
    }

    /// After the stream: waits for the snapshot, registers the AMI and waits for it.
    public func register(_ registration: Registration, retries: RetryCounter, progress: ProgressSink) throws -> UploadReport {
        guard let writer, let snapshotID = writer.snapshotID else {
            throw CloudError.configuration("internal: the EBS snapshot was never written")
        }
        do {
            progress.begin(stage: "waiting for snapshot \(snapshotID)", totalBytes: nil)
            let snapshot = try ec2.waitForSnapshot(snapshotID, interval: pollInterval)
            progress.end()
            guard snapshot.state == "completed" else {
                throw CloudError.state(service: "ec2", resource: "snapshot \(snapshotID)", state: snapshot.state,
                                       reason: snapshot.stateMessage ?? "")
            }
            var report = UploadReport(target: "aws-ebs", diskFormat: "raw")
            report.snapshotID = snapshotID
            report.name = registration.name
            report.bytesSent = writer.blocksSent * UInt64(EBSDirectClient.blockSize)
            report.blocksSent = writer.blocksSent
            report.blocksSkipped = writer.blocksTotal - writer.blocksSent
            report.checksums["sha256-linear"] = writer.aggregateChecksum
            if registration.register {
                var request = EC2Client.RegisterImageRequest(name: registration.name, description: registration.description,
                                                             architecture: registration.architecture, snapshotID: snapshotID,
                                                             enaSupport: registration.enaSupport,
                                                             sriovNetSupport: registration.sriovNetSupport, bootMode: registration.bootMode)
                request.volumeSize = Int(writer.volumeSizeGiB)
                progress.begin(stage: "registering the AMI", totalBytes: nil)
                let id = try ec2.registerImage(request)
                imageID = id
                let image = try ec2.waitForImage(id, interval: pollInterval)
                progress.end()
                guard image.state == "available" else {
                    throw CloudError.state(service: "ec2", resource: "image \(id)", state: image.state, reason: image.stateReason ?? "")
                }
                report.imageID = id
            }
            report.retries = retries.count
            report.seconds = monotonicSeconds() - started
            return report
        } catch {
            progress.end()
            abandon()
            throw error
        }
    }

    /// Deletes what this upload made; a cleanup that fails must not hide why the upload failed.
    public func abandon() {
        writer?.waitForSends()
        if let imageID { try? ec2.deregisterImage(imageID) }
        imageID = nil
        if let snapshotID = writer?.snapshotID { try? ec2.deleteSnapshot(snapshotID) }
        writer = nil
    }
}
