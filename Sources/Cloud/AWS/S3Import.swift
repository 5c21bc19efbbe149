import Foundation
import ImageCore

/// A disk file into AWS by S3 and VM Import: a multipart upload (resumed when an unfinished one
/// of the same key is there), then ImportImage or ImportSnapshot polled to its end. When the
/// import fails, the object made for it is deleted; a failed upload is aborted.
public struct S3Import: Sendable {
    public enum Kind: String, Sendable, CaseIterable {
        case image, snapshot, none
    }

    public var bucket: String
    public var key: String
    public var format: EC2Client.DiskFormat
    public var kind: Kind = .image
    public var description: String?
    public var roleName: String?
    /// The firmware the imported image boots with (uefi-preferred for a disk that boots both ways).
    public var bootMode: EC2Client.BootMode = .legacyBIOS
    public var concurrency = 4
    public var createBucket = false
    /// Seconds between polls of the import task.
    public var pollInterval: Double = 30

    public init(bucket: String, key: String, format: EC2Client.DiskFormat) {
        self.bucket = bucket
        self.key = key
        self.format = format
    }

    public func run(file: String, configuration: AWSConfiguration, client: HTTPClient, retries: RetryCounter,
                    progress: ProgressSink) throws -> UploadReport {
        let started = monotonicSeconds()
        let size = try RawFile(path: file, mode: .readOnly).size
        let s3 = S3Client(configuration: configuration, http: client)
        progress.begin(stage: "uploading \(format.rawValue.lowercased()) to s3://\(bucket)/\(key)", totalBytes: size)
        // Progress comes from the sending threads; the bar is drawn from one of them at a time.
        nonisolated(unsafe) let sink = progress
        let lock = NSLock()
        let upload = try S3MultipartUpload(client: s3).upload(file: file, bucket: bucket, key: key,
                                                              options: .init(concurrency: concurrency, createBucket: createBucket)) { done in
            lock.withLock { sink.advance(to: UInt64(max(0, done))) }
        }
        progress.end()
        return try importUploaded(etag: upload.etag, size: size, started: started, configuration: configuration, client: client,
                                  retries: retries, progress: progress)
    }

    /// The multipart upload that `S3PartStream` fed as the output was written.
    public func stream(client: S3Client, expectedSize: UInt64) -> S3PartStream {
        S3PartStream(client: client, bucket: bucket, key: key, expectedSize: expectedSize, concurrency: concurrency,
                     createBucket: createBucket)
    }

    /// After the object is in S3 (sent whole, or streamed): the import, and the report.
    public func importUploaded(etag: String, size: UInt64, started: Double, configuration: AWSConfiguration, client: HTTPClient,
                               retries: RetryCounter, progress: ProgressSink) throws -> UploadReport {
        let s3 = S3Client(configuration: configuration, http: client)
        var report = UploadReport(target: "aws-s3", diskFormat: format.rawValue.lowercased())
        report.location = "s3://\(bucket)/\(key)"
        report.name = key
        report.bytesSent = size
        report.checksums["etag"] = etag
        do {
            let ec2 = EC2Client(configuration: configuration, http: client)
            let request = EC2Client.ImportRequest(bucket: bucket, key: key, format: format, description: description,
                                                  bootMode: bootMode, architecture: .x86_64, roleName: roleName,
                                                  clientToken: UUID().uuidString)
            switch kind {
            case .none:
                break
            case .image:
                progress.begin(stage: "VM Import: ImportImage", totalBytes: nil)
                let task = try ec2.waitForImportImage(try ec2.importImage(request), interval: pollInterval)
                report.imageID = task.imageID
                report.snapshotID = task.snapshotIDs.first
            case .snapshot:
                progress.begin(stage: "VM Import: ImportSnapshot", totalBytes: nil)
                let task = try ec2.waitForImportSnapshot(try ec2.importSnapshot(request), interval: pollInterval)
                report.snapshotID = task.snapshotIDs.first
            }
            progress.end()
        } catch {
            progress.end()
            try? s3.deleteObject(bucket: bucket, key: key)
            throw error
        }
        report.retries = retries.count
        report.seconds = monotonicSeconds() - started
        return report
    }
}
