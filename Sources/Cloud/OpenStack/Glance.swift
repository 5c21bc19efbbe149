import Digests
import Foundation
import ImageCore

/// Glance's image API v2: the calls an upload makes.
public struct GlanceClient: Sendable {
    public let endpoint: URL
    let token: String
    let client: HTTPClient

    public init(session: KeystoneSession, client: HTTPClient) {
        var root = session.imageEndpoint.absoluteString
        while root.hasSuffix("/") { root.removeLast() }
        // Catalogs name Glance's root; some add the version. The API paths below add `/v2`.
        if let range = root.range(of: "/v2(\\.[0-9]+)?$", options: .regularExpression) { root.removeSubrange(range) }
        endpoint = URL(string: root)!
        token = session.token
        self.client = client
    }

    func url(_ path: String) -> URL { URL(string: endpoint.absoluteString + path)! }

    var headers: [String: String] { ["X-Auth-Token": token, "Accept": "application/json"] }

    /// `POST /v2/images`: a `queued` image record; returns its id.
    public func createImage(_ fields: [String: Any]) throws -> String {
        var headers = self.headers
        headers["Content-Type"] = "application/json"
        let body = try JSONSerialization.data(withJSONObject: fields)
        let response = try client.send(HTTPRequest("POST", url("/v2/images"), headers: headers, body: .bytes(body),
                                                   service: "glance", operation: "create image"),
                                       retryable: false, errorMessage: openStackMessage)
        guard let image = try? JSONSerialization.jsonObject(with: response.body) as? [String: Any], let id = image["id"] as? String else {
            throw CloudError.badResponse(service: "glance", operation: "create image", what: "no image id in the answer")
        }
        return id
    }

    /// `PUT /v2/images/{id}/file` (or `/stage` for the import workflow), without its body.
    func dataRequest(imageID: String, stage: Bool, body: HTTPRequest.Body) -> HTTPRequest {
        var headers = self.headers
        headers["Content-Type"] = "application/octet-stream"
        let path = "/v2/images/\(imageID)/" + (stage ? "stage" : "file")
        return HTTPRequest("PUT", url(path), headers: headers, body: body, service: "glance",
                           operation: stage ? "stage image data" : "upload image data")
    }

    /// The image data from a file, streamed from disk.
    public func upload(imageID: String, file: String, stage: Bool, sent: ((Int64) -> Void)?) throws {
        _ = try client.send(dataRequest(imageID: imageID, stage: stage, body: .file(file)), retryable: false, sent: sent,
                            errorMessage: openStackMessage)
    }

    /// The image data written through the returned stream as it is made.
    public func startUpload(imageID: String, stage: Bool) throws -> HTTPStream {
        try client.stream(dataRequest(imageID: imageID, stage: stage, body: .none))
    }

    /// `POST /v2/images/{id}/import` with `glance-direct`: the staged data becomes the image.
    public func importStaged(imageID: String) throws {
        var headers = self.headers
        headers["Content-Type"] = "application/json"
        let body = try JSONSerialization.data(withJSONObject: ["method": ["name": "glance-direct"]])
        _ = try client.send(HTTPRequest("POST", url("/v2/images/\(imageID)/import"), headers: headers, body: .bytes(body),
                                        service: "glance", operation: "import image"),
                            retryable: false, errorMessage: openStackMessage)
    }

    /// `PATCH /v2/images/{id}`: adds or replaces `properties`, removes `removing` (JSON patch).
    public func setProperties(imageID: String, _ properties: [String: String], removing: [String] = []) throws {
        guard !properties.isEmpty || !removing.isEmpty else { return }
        var headers = self.headers
        headers["Content-Type"] = "application/openstack-images-v2.1-json-patch"
        let patch = properties.sorted { $0.key < $1.key }.map { ["op": "add", "path": "/" + $0.key, "value": $0.value] }
            + removing.map { ["op": "remove", "path": "/" + $0] }
        _ = try client.send(HTTPRequest("PATCH", url("/v2/images/\(imageID)"), headers: headers,
                                        body: .bytes(try JSONSerialization.data(withJSONObject: patch)),
                                        service: "glance", operation: "set image properties"), errorMessage: openStackMessage)
    }

    public func image(_ imageID: String) throws -> [String: Any] {
        let response = try client.send(HTTPRequest("GET", url("/v2/images/\(imageID)"), headers: headers,
                                                   service: "glance", operation: "show image"), errorMessage: openStackMessage)
        guard let image = try? JSONSerialization.jsonObject(with: response.body) as? [String: Any] else {
            throw CloudError.badResponse(service: "glance", operation: "show image", what: "not a JSON object")
        }
        return image
    }

    /// The messages of the image's import tasks that failed: why an import ended in nothing.
    public func failedTaskMessages(_ imageID: String) -> [String] {
        guard let response = try? client.send(HTTPRequest("GET", url("/v2/images/\(imageID)/tasks"), headers: headers,
                                                          service: "glance", operation: "list image tasks")),
              let document = try? JSONSerialization.jsonObject(with: response.body) as? [String: Any] else { return [] }
        return (document["tasks"] as? [[String: Any]] ?? []).compactMap { task in
            guard task["status"] as? String == "failure" else { return nil }
            return task["message"] as? String
        }
    }

    /// The images whose `property` is `value` (Glance filters on any image property).
    public func imageIDs(marked value: String, property: String = GlanceUpload.markProperty) -> [String] {
        var components = URLComponents(url: url("/v2/images"), resolvingAgainstBaseURL: false)!
        components.queryItems = [URLQueryItem(name: property, value: value)]
        guard let response = try? client.send(HTTPRequest("GET", components.url!, headers: headers, service: "glance", operation: "list images")),
              let document = try? JSONSerialization.jsonObject(with: response.body) as? [String: Any] else { return [] }
        return (document["images"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
    }

    public func deleteImage(_ imageID: String) throws {
        _ = try client.send(HTTPRequest("DELETE", url("/v2/images/\(imageID)"), headers: headers,
                                        service: "glance", operation: "delete image"),
                            accept: [404], errorMessage: openStackMessage)
    }
}

/// One image into Glance: create the record with the guest's properties, send the file (by
/// `PUT /file`, or staged and imported with `glance-direct`), wait for `active`, and check that
/// the MD5 `checksum` and the `os_hash_value` Glance computed equal the file's. Any failure
/// deletes the half-made image; a dropped connection or a 5xx starts again with a new image.
public struct GlanceUpload: Sendable {
    public enum Method: String, Sendable, CaseIterable {
        case put
        case glanceDirect = "glance-direct"
    }

    public var name: String
    /// Glance's `disk_format`: raw, qcow2, vmdk, vdi, vhd, vhdx, iso.
    public var diskFormat: String
    /// Glance's `container_format`: bare, or ova for an OVA.
    public var containerFormat: String = "bare"
    /// private, shared, community or public; nil leaves Glance's default.
    public var visibility: String?
    /// `hw_disk_bus`, `os_distro` and the rest; always strings.
    public var properties: [String: String] = [:]
    public var method: Method = .put
    /// Whole attempts (create, send, wait) after transient faults.
    public var attempts: Int = 3
    /// How long to wait for `active` after the data is in.
    public var activeTimeout: Double = 600

    public init(name: String, diskFormat: String) {
        self.name = name
        self.diskFormat = diskFormat
    }

    public func run(file: String, cloud: OpenStackCloud, client: HTTPClient, retries: RetryCounter,
                    progress: ProgressSink) throws -> UploadReport {
        let started = monotonicSeconds()
        let size = try RawFile(path: file, mode: .readOnly).size
        // The digests Glance will report, computed meanwhile from the page cache.
        let md5 = try BackgroundDigest(path: file, .md5)
        let sha512 = try BackgroundDigest(path: file, .sha512)
        let session = try Keystone.authenticate(cloud, client: client)
        let glance = GlanceClient(session: session, client: client)
        // A create that got no clear answer may still have made an image: each attempt marks its
        // image, and a failed attempt deletes whatever carries its mark.
        var attempt = 0
        while true {
            attempt += 1
            let mark = UUID().uuidString.lowercased()
            var imageID: String?
            do {
                let created = try glance.createImage(fields(mark: mark))
                imageID = created
                progress.begin(stage: "uploading \(diskFormat) to glance image \(created)", totalBytes: size)
                try glance.upload(imageID: created, file: file, stage: method == .glanceDirect) { progress.advance(to: UInt64(max(0, $0))) }
                progress.end()
                if method == .glanceDirect { try glance.importStaged(imageID: created) }
                let image = try waitForActive(glance, created)
                // The attempt's mark has done its work; a failure to drop it costs nothing.
                try? glance.setProperties(imageID: created, [:], removing: [Self.markProperty])
                var report = UploadReport(target: "glance", diskFormat: diskFormat)
                report.imageID = created
                report.name = name
                report.location = glance.url("/v2/images/\(created)").absoluteString
                report.bytesSent = size
                try check(image, md5: md5.wait(), sha512: sha512.wait(), size: size, into: &report)
                report.retries = retries.count
                report.seconds = monotonicSeconds() - started
                return report
            } catch {
                progress.end()
                // The half-made image goes, whatever happened; a failed delete must not hide why.
                for leftover in Set([imageID].compactMap { $0 } + glance.imageIDs(marked: mark)) { try? glance.deleteImage(leftover) }
                guard let cloudError = error as? CloudError, cloudError.isTransient, attempt < attempts else { throw error }
                retries.note()
            }
        }
    }

    /// The property that marks the image an attempt made.
    public static let markProperty = "rehost_upload_attempt"

    func fields(mark: String) -> [String: Any] {
        var fields: [String: Any] = ["name": name, "disk_format": diskFormat, "container_format": containerFormat,
                                     Self.markProperty: mark]
        if let visibility { fields["visibility"] = visibility }
        for (key, value) in properties { fields[key] = value }
        return fields
    }

    func waitForActive(_ glance: GlanceClient, _ imageID: String) throws -> [String: Any] {
        let deadline = monotonicSeconds() + activeTimeout
        var delay = 0.1
        while true {
            let image = try glance.image(imageID)
            let status = image["status"] as? String ?? "?"
            switch status {
            case "active":
                return image
            case "killed", "deleted", "deactivated":
                let reasons = glance.failedTaskMessages(imageID)
                throw CloudError.state(service: "glance", resource: "image \(imageID)", state: status, reason: reasons.joined(separator: "; "))
            case "queued" where method == .glanceDirect:
                // A failed import sends the image back to queued and records why in its task.
                let reasons = glance.failedTaskMessages(imageID)
                if !reasons.isEmpty {
                    throw CloudError.state(service: "glance", resource: "image \(imageID)", state: "queued after a failed import",
                                           reason: reasons.joined(separator: "; "))
                }
            default:
                break
            }
            guard monotonicSeconds() < deadline else {
                throw CloudError.state(service: "glance", resource: "image \(imageID)", state: status,
                                       reason: "still not active after \(Int(activeTimeout)) s")
            }
            Thread.sleep(forTimeInterval: delay)
            delay = min(delay * 2, 2)
        }
    }

    func check(_ image: [String: Any], md5: String, sha512: String, size: UInt64, into report: inout UploadReport) throws {
        if let reported = image["size"] as? Int, UInt64(reported) != size {
            throw CloudError.mismatch(service: "glance", what: "the size of image \(report.imageID ?? "")", sent: "\(size) bytes",
                                      reported: "\(reported) bytes")
        }
        guard let checksum = image["checksum"] as? String else {
            throw CloudError.badResponse(service: "glance", operation: "show image", what: "an active image without a checksum")
        }
        guard checksum == md5 else {
            throw CloudError.mismatch(service: "glance", what: "the MD5 checksum of image \(report.imageID ?? "")", sent: md5, reported: checksum)
        }
        report.checksums["md5"] = md5
        // Glance computes os_hash_value with its configured algorithm (sha512 by default).
        if let algorithm = image["os_hash_algo"] as? String, let value = image["os_hash_value"] as? String {
            guard algorithm == "sha512" else { return }
            guard value == sha512 else {
                throw CloudError.mismatch(service: "glance", what: "the SHA-512 os_hash_value of image \(report.imageID ?? "")",
                                          sent: sha512, reported: value)
            }
            report.checksums["sha512"] = sha512
        }
    }
}
