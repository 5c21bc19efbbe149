/// What one upload left in a cloud, for the report and `--json`. No credential ever goes here.
public struct UploadReport: Codable, Sendable {
    /// `glance`, `aws-ebs` or `aws-s3`.
    public var target: String
    /// The Glance image id, or the AMI id.
    public var imageID: String?
    public var snapshotID: String?
    /// Where the bytes landed: the Glance image's URL, `s3://bucket/key`.
    public var location: String?
    /// The image name the cloud shows.
    public var name: String?
    /// The format of the bytes sent: `qcow2`, `vmdk`, `raw`, ...
    public var diskFormat: String
    public var bytesSent: UInt64
    /// EBS direct: blocks sent, and the all-zero blocks never sent.
    public var blocksSent: UInt64?
    public var blocksSkipped: UInt64?
    /// Digests of what was sent, as the cloud confirmed them: `md5`, `sha512`, `etag`, `blk-sha256`.
    public var checksums: [String: String]
    /// Requests made again after throttling, a server error or a dropped connection.
    public var retries: Int
    public var seconds: Double

    public init(target: String, diskFormat: String) {
        self.target = target
        self.diskFormat = diskFormat
        bytesSent = 0
        checksums = [:]
        retries = 0
        seconds = 0
    }
}
