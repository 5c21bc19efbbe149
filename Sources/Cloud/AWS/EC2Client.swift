import Foundation

/// The EC2 Query API calls that turn uploaded bytes into an AMI: RegisterImage on a snapshot, or
/// ImportImage / ImportSnapshot from an S3 object, with the describe calls to wait for them and
/// the delete calls to clean up after a failure. Each call is a signed POST of a form
/// (`Action=…&Version=2016-11-15&…`); the answers are XML.
public final class EC2Client: Sendable {
    public static let apiVersion = "2016-11-15"

    public let endpoint: URL
    public let signer: SigV4Signer
    public let http: HTTPClient
    /// How long to sleep between polls; a parameter so tests need not wait.
    private let sleep: @Sendable (Double) -> Void

    public init(endpoint: URL, signer: SigV4Signer, http: HTTPClient = HTTPClient(),
                sleep: @escaping @Sendable (Double) -> Void = { Thread.sleep(forTimeInterval: $0) }) {
        self.endpoint = endpoint
        self.signer = signer
        self.http = http
        self.sleep = sleep
    }

    public convenience init(configuration: AWSConfiguration, http: HTTPClient = HTTPClient()) {
        self.init(endpoint: configuration.endpoint(for: "ec2"), signer: configuration.signer(for: "ec2"), http: http)
    }

    public enum Architecture: String, Sendable { case x86_64, arm64 }
    public enum BootMode: String, Sendable { case legacyBIOS = "legacy-bios", uefi, uefiPreferred = "uefi-preferred" }
    /// The disk formats VM Import reads.
    public enum DiskFormat: String, Sendable { case vmdk = "VMDK", vhd = "VHD", vhdx = "VHDX", ova = "OVA", raw = "RAW" }

    /// RegisterImage from one EBS snapshot: the root disk.
    public struct RegisterImageRequest: Sendable {
        public var name: String
        public var description: String?
        public var architecture: Architecture
        public var rootDeviceName: String
        public var snapshotID: String
        public var volumeType: String
        /// GiB; nil: the snapshot's size.
        public var volumeSize: Int?
        public var deleteOnTermination: Bool
        public var enaSupport: Bool
        public var sriovNetSupport: Bool
        public var bootMode: BootMode?

        public init(name: String, description: String? = nil, architecture: Architecture = .x86_64,
                    rootDeviceName: String = "/dev/xvda", snapshotID: String, volumeType: String = "gp3",
                    volumeSize: Int? = nil, deleteOnTermination: Bool = true, enaSupport: Bool = true,
                    sriovNetSupport: Bool = true, bootMode: BootMode? = nil) {
            self.name = name
            self.description = description
            self.architecture = architecture
            self.rootDeviceName = rootDeviceName
            self.snapshotID = snapshotID
            self.volumeType = volumeType
            self.volumeSize = volumeSize
            self.deleteOnTermination = deleteOnTermination
            self.enaSupport = enaSupport
            self.sriovNetSupport = sriovNetSupport
            self.bootMode = bootMode
        }

        /// The form parameters, in the order sent.
        public var parameters: [(String, String)] {
            var p: [(String, String)] = [("Name", name)]
            if let description { p.append(("Description", description)) }
            p += [("Architecture", architecture.rawValue), ("RootDeviceName", rootDeviceName),
                  ("VirtualizationType", "hvm"),
                  ("BlockDeviceMapping.1.DeviceName", rootDeviceName),
                  ("BlockDeviceMapping.1.Ebs.SnapshotId", snapshotID),
                  ("BlockDeviceMapping.1.Ebs.VolumeType", volumeType),
                  ("BlockDeviceMapping.1.Ebs.DeleteOnTermination", deleteOnTermination ? "true" : "false")]
            if let volumeSize { p.append(("BlockDeviceMapping.1.Ebs.VolumeSize", "\(volumeSize)")) }
            if enaSupport { p.append(("EnaSupport", "true")) }
            if sriovNetSupport { p.append(("SriovNetSupport", "simple")) }
            if let bootMode { p.append(("BootMode", bootMode.rawValue)) }
            return p
        }
    }

    /// VM Import of one disk in S3, as an AMI (ImportImage) or a snapshot (ImportSnapshot).
    public struct ImportRequest: Sendable {
        public var bucket: String
        public var key: String
        public var format: DiskFormat
        public var description: String?
        public var bootMode: BootMode?
        public var architecture: Architecture?
        /// The IAM role VM Import assumes to read the bucket; nil: `vmimport`.
        public var roleName: String?
        /// Makes a retried request idempotent.
        public var clientToken: String?

        public init(bucket: String, key: String, format: DiskFormat, description: String? = nil, bootMode: BootMode? = nil,
                    architecture: Architecture? = nil, roleName: String? = nil, clientToken: String? = nil) {
            self.bucket = bucket
            self.key = key
            self.format = format
            self.description = description
            self.bootMode = bootMode
            self.architecture = architecture
            self.roleName = roleName
            self.clientToken = clientToken
        }

        /// ImportImage takes a list of disks (`DiskContainer.1.…`) and a platform.
        public var importImageParameters: [(String, String)] {
            var p: [(String, String)] = []
            if let description { p.append(("Description", description)) }
            p += [("DiskContainer.1.Format", format.rawValue),
                  ("DiskContainer.1.UserBucket.S3Bucket", bucket),
                  ("DiskContainer.1.UserBucket.S3Key", key)]
            if let description { p.append(("DiskContainer.1.Description", description)) }
            p.append(("Platform", "Linux"))
            if let architecture { p.append(("Architecture", architecture.rawValue)) }
            if let bootMode { p.append(("BootMode", bootMode.rawValue)) }
            if let roleName { p.append(("RoleName", roleName)) }
            if let clientToken { p.append(("ClientToken", clientToken)) }
            return p
        }

        /// ImportSnapshot takes one disk (`DiskContainer.…`, no index).
        public var importSnapshotParameters: [(String, String)] {
            var p: [(String, String)] = []
            if let description { p.append(("Description", description)) }
            p += [("DiskContainer.Format", format.rawValue),
                  ("DiskContainer.UserBucket.S3Bucket", bucket),
                  ("DiskContainer.UserBucket.S3Key", key)]
            if let description { p.append(("DiskContainer.Description", description)) }
            if let roleName { p.append(("RoleName", roleName)) }
            if let clientToken { p.append(("ClientToken", clientToken)) }
            return p
        }
    }

    public struct Image: Sendable, Equatable {
        public var id: String
        /// pending, available, invalid, deregistered, transient, failed, error.
        public var state: String
        public var name: String?
        public var description: String?
        public var architecture: String?
        public var rootDeviceName: String?
        public var bootMode: String?
        public var stateReason: String?
    }

    public struct Snapshot: Sendable, Equatable {
        public var id: String
        /// pending, completed, error, recoverable, recovering.
        public var state: String
        /// "0%" to "100%".
        public var progress: String?
        public var stateMessage: String?
        public var volumeSize: Int?
    }

    /// An import task: ImportImage's or ImportSnapshot's.
    public struct ImportTask: Sendable, Equatable {
        public var id: String
        /// active, completed, deleting, deleted.
        public var status: String
        /// The step ("converting", "booting") or, on failure, the reason ("ClientError: …").
        public var statusMessage: String?
        public var progress: String?
        public var imageID: String?
        public var snapshotIDs: [String]
    }

    // MARK: - Operations

    /// RegisterImage: the new AMI's id.
    public func registerImage(_ request: RegisterImageRequest) throws -> String {
        let tree = try call("RegisterImage", request.parameters, operation: "register image")
        return try required(tree.value("imageId"), "imageId", "register image")
    }

    /// DescribeImages of one image; nil when EC2 does not know it (any more).
    public func describeImage(_ id: String) throws -> Image? {
        let tree = try call("DescribeImages", [("ImageId.1", id)], operation: "describe images", notFound: "InvalidAMIID.NotFound")
        guard let item = tree?["imagesSet"]?.all("item").first(where: { $0.value("imageId") == id }) else { return nil }
        return Image(id: id, state: item.value("imageState") ?? "", name: item.value("name"),
                     description: item.value("description"), architecture: item.value("architecture"),
                     rootDeviceName: item.value("rootDeviceName"), bootMode: item.value("bootMode"),
                     stateReason: item.value("stateReason/message"))
    }

    /// Polls until the image is `available`; throws `CloudError.state` when it fails, vanishes
    /// or `timeout` seconds pass.
    public func waitForImage(_ id: String, timeout: Double = 3600, interval: Double = 15) throws -> Image {
        try poll(timeout: timeout, interval: interval, resource: "image \(id)") {
            guard let image = try describeImage(id) else {
                throw CloudError.state(service: "ec2", resource: "image \(id)", state: "missing", reason: "DescribeImages does not list it")
            }
            switch image.state {
            case "available": return (image, image.state)
            case "pending", "transient", "": return (nil, image.state)
            default:
                throw CloudError.state(service: "ec2", resource: "image \(id)", state: image.state, reason: image.stateReason ?? "")
            }
        }
    }

    public func describeSnapshot(_ id: String) throws -> Snapshot? {
        let tree = try call("DescribeSnapshots", [("SnapshotId.1", id)], operation: "describe snapshots",
                            notFound: "InvalidSnapshot.NotFound")
        guard let item = tree?["snapshotSet"]?.all("item").first(where: { $0.value("snapshotId") == id }) else { return nil }
        return Snapshot(id: id, state: item.value("status") ?? "", progress: item.value("progress"),
                        stateMessage: item.value("statusMessage"), volumeSize: item.value("volumeSize").flatMap(Int.init))
    }

    /// Polls until the snapshot is `completed`.
    public func waitForSnapshot(_ id: String, timeout: Double = 3600, interval: Double = 15) throws -> Snapshot {
        try poll(timeout: timeout, interval: interval, resource: "snapshot \(id)") {
            guard let snapshot = try describeSnapshot(id) else {
                throw CloudError.state(service: "ec2", resource: "snapshot \(id)", state: "missing", reason: "DescribeSnapshots does not list it")
            }
            switch snapshot.state {
            case "completed": return (snapshot, snapshot.state)
            case "pending", "": return (nil, "\(snapshot.state) \(snapshot.progress ?? "")")
            default:
                throw CloudError.state(service: "ec2", resource: "snapshot \(id)", state: snapshot.state, reason: snapshot.stateMessage ?? "")
            }
        }
    }

    /// ImportImage: the import task's id.
    public func importImage(_ request: ImportRequest) throws -> String {
        let tree = try call("ImportImage", request.importImageParameters, operation: "import image")
        return try required(tree.value("importTaskId"), "importTaskId", "import image")
    }

    /// ImportSnapshot: the import task's id.
    public func importSnapshot(_ request: ImportRequest) throws -> String {
        let tree = try call("ImportSnapshot", request.importSnapshotParameters, operation: "import snapshot")
        return try required(tree.value("importTaskId"), "importTaskId", "import snapshot")
    }

    public func describeImportImageTask(_ id: String) throws -> ImportTask? {
        let tree = try call("DescribeImportImageTasks", [("ImportTaskId.1", id)], operation: "describe import image tasks")
        guard let item = tree["importImageTaskSet"]?.all("item").first(where: { $0.value("importTaskId") == id }) else { return nil }
        return Self.importImageTask(item)
    }

    public func describeImportSnapshotTask(_ id: String) throws -> ImportTask? {
        let tree = try call("DescribeImportSnapshotTasks", [("ImportTaskId.1", id)], operation: "describe import snapshot tasks")
        guard let item = tree["importSnapshotTaskSet"]?.all("item").first(where: { $0.value("importTaskId") == id }) else { return nil }
        return Self.importSnapshotTask(item)
    }

    /// Polls an ImportImage task until `completed` (with an image id); a task that ends
    /// otherwise throws with its StatusMessage.
    public func waitForImportImage(_ id: String, timeout: Double = 4 * 3600, interval: Double = 30) throws -> ImportTask {
        try waitForImport(id, timeout: timeout, interval: interval, describe: describeImportImageTask)
    }

    public func waitForImportSnapshot(_ id: String, timeout: Double = 4 * 3600, interval: Double = 30) throws -> ImportTask {
        try waitForImport(id, timeout: timeout, interval: interval, describe: describeImportSnapshotTask)
    }

    public func deregisterImage(_ id: String) throws {
        _ = try call("DeregisterImage", [("ImageId", id)], operation: "deregister image")
    }

    public func deleteSnapshot(_ id: String) throws {
        _ = try call("DeleteSnapshot", [("SnapshotId", id)], operation: "delete snapshot")
    }

    // MARK: - Parsing

    static func importImageTask(_ item: XMLTree) -> ImportTask {
        ImportTask(id: item.value("importTaskId") ?? "", status: item.value("status") ?? "",
                   statusMessage: item.value("statusMessage"), progress: item.value("progress"),
                   imageID: item.value("imageId"),
                   snapshotIDs: item["snapshotDetailSet"]?.all("item").compactMap { $0.value("snapshotId") } ?? [])
    }

    static func importSnapshotTask(_ item: XMLTree) -> ImportTask {
        let detail = item["snapshotTaskDetail"]
        return ImportTask(id: item.value("importTaskId") ?? "", status: detail?.value("status") ?? "",
                          statusMessage: detail?.value("statusMessage"), progress: detail?.value("progress"),
                          imageID: nil, snapshotIDs: detail?.value("snapshotId").map { [$0] } ?? [])
    }

    /// The form body: `Action`, `Version`, then the parameters, each name and value encoded by
    /// SigV4's strict rule (which form decoding accepts).
    public static func form(action: String, _ parameters: [(String, String)]) -> String {
        ([("Action", action), ("Version", apiVersion)] + parameters)
            .map { "\(SigV4Signer.uriEncode($0.0))=\(SigV4Signer.uriEncode($0.1))" }.joined(separator: "&")
    }

    // MARK: - Plumbing

    private func waitForImport(_ id: String, timeout: Double, interval: Double,
                               describe: (String) throws -> ImportTask?) throws -> ImportTask {
        try poll(timeout: timeout, interval: interval, resource: "import task \(id)") {
            guard let task = try describe(id) else {
                throw CloudError.state(service: "ec2", resource: "import task \(id)", state: "missing", reason: "not listed")
            }
            switch task.status {
            case "completed": return (task, task.status)
            case "active", "pending", "": return (nil, "\(task.status) \(task.statusMessage ?? "") \(task.progress ?? "")")
            default:
                throw CloudError.state(service: "ec2", resource: "import task \(id)", state: task.status, reason: task.statusMessage ?? "")
            }
        }
    }

    /// Calls `check` until it returns a value, sleeping `interval` between calls, at most `timeout`
    /// seconds in all; `check` also says the last state seen, for the timeout's message.
    private func poll<T>(timeout: Double, interval: Double, resource: String,
                         _ check: () throws -> (T?, String)) throws -> T {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let (value, state) = try check()
            if let value { return value }
            guard Date().addingTimeInterval(interval) <= deadline else {
                throw CloudError.state(service: "ec2", resource: resource, state: state.trimmingCharacters(in: .whitespaces),
                                       reason: "still not ready after \(Int(timeout)) s")
            }
            sleep(interval)
        }
    }

    private func required(_ value: String?, _ what: String, _ operation: String) throws -> String {
        guard let value, !value.isEmpty else {
            throw CloudError.badResponse(service: "ec2", operation: operation, what: "no \(what)")
        }
        return value
    }

    func call(_ action: String, _ parameters: [(String, String)], operation: String) throws -> XMLTree {
        guard let tree = try call(action, parameters, operation: operation, notFound: nil) else {
            throw CloudError.badResponse(service: "ec2", operation: operation, what: "no answer")
        }
        return tree
    }

    /// Sends one action; nil when the error code is `notFound`.
    private func call(_ action: String, _ parameters: [(String, String)], operation: String, notFound: String?) throws -> XMLTree? {
        let body = Data(Self.form(action: action, parameters).utf8)
        let request = HTTPRequest("POST", endpoint, headers: ["Content-Type": "application/x-www-form-urlencoded; charset=utf-8"],
                                  body: .bytes(body), service: "ec2", operation: operation)
        let response: HTTPResponse
        do {
            response = try http.send(request, signer: signer, errorMessage: AWSErrorParser.parse)
        } catch let CloudError.http(_, _, _, code, _) where code != nil && code == notFound {
            return nil
        }
        guard let tree = XMLTree.parse(response.body) else {
            throw CloudError.badResponse(service: "ec2", operation: operation, what: "not XML")
        }
        return tree
    }
}
