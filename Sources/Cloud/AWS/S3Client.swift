import Foundation

/// The S3 operations an image upload needs, path-style (`endpoint/bucket/key`): path style works
/// with every endpoint (moto, MinIO, a VPC endpoint) and with bucket names that hold dots.
public final class S3Client: Sendable {
    public let endpoint: URL
    public let signer: SigV4Signer
    public let http: HTTPClient

    public init(endpoint: URL, signer: SigV4Signer, http: HTTPClient = HTTPClient()) {
        self.endpoint = endpoint
        self.signer = signer
        self.http = http
    }

    public convenience init(configuration: AWSConfiguration, http: HTTPClient = HTTPClient()) {
        self.init(endpoint: configuration.endpoint(for: "s3"), signer: configuration.signer(for: "s3"), http: http)
    }

    /// What HEAD says about an object.
    public struct ObjectInfo: Sendable, Equatable {
        public var size: Int64
        /// Without quotes.
        public var etag: String
        public init(size: Int64, etag: String) {
            self.size = size
            self.etag = etag
        }
    }

    /// A part as ListParts reports it.
    public struct Part: Sendable, Equatable {
        public var number: Int
        public var size: Int64
        /// Without quotes: the hex MD5 of the part.
        public var etag: String
        public init(number: Int, size: Int64, etag: String) {
            self.number = number
            self.size = size
            self.etag = etag
        }
    }

    /// An unfinished multipart upload.
    public struct Upload: Sendable, Equatable {
        public var key: String
        public var uploadID: String
        /// ISO 8601, as S3 writes it.
        public var initiated: String
        public init(key: String, uploadID: String, initiated: String) {
            self.key = key
            self.uploadID = uploadID
            self.initiated = initiated
        }
    }

    // MARK: - Buckets and objects

    /// HEAD bucket: true when it exists and is ours to use.
    public func bucketExists(_ bucket: String) throws -> Bool {
        let response = try send("HEAD", bucket: bucket, key: nil, operation: "head bucket", accept: [404])
        return response.status != 404
    }

    public func createBucket(_ bucket: String) throws {
        // us-east-1 takes no location constraint; every other region needs one.
        let region = signer.region
        let body: HTTPRequest.Body = region == "us-east-1" ? .none : .bytes(Data("""
            <CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><LocationConstraint>\(region)</LocationConstraint></CreateBucketConfiguration>
            """.utf8))
        _ = try send("PUT", bucket: bucket, key: nil, operation: "create bucket", body: body)
    }

    /// HEAD object: nil when there is none.
    public func headObject(bucket: String, key: String) throws -> ObjectInfo? {
        let response = try send("HEAD", bucket: bucket, key: key, operation: "head object", accept: [404])
        if response.status == 404 { return nil }
        guard let length = response.header("content-length").flatMap(Int64.init), let etag = response.header("etag") else {
            throw CloudError.badResponse(service: "s3", operation: "head object", what: "no Content-Length or ETag")
        }
        return ObjectInfo(size: length, etag: Self.unquote(etag))
    }

    /// GET object, whole or a byte range: for checks and small reads, the answer is in memory.
    public func getObject(bucket: String, key: String, range: ClosedRange<Int64>? = nil) throws -> Data {
        var headers: [String: String] = [:]
        if let range { headers["Range"] = "bytes=\(range.lowerBound)-\(range.upperBound)" }
        return try send("GET", bucket: bucket, key: key, operation: "get object", headers: headers).body
    }

    public func deleteObject(bucket: String, key: String) throws {
        _ = try send("DELETE", bucket: bucket, key: key, operation: "delete object")
    }

    // MARK: - Multipart

    public func createMultipartUpload(bucket: String, key: String) throws -> String {
        let response = try send("POST", bucket: bucket, key: key, query: [("uploads", nil)], operation: "create multipart upload",
                                headers: ["Content-Type": "application/octet-stream"])
        guard let id = XMLTree.parse(response.body)?.value("UploadId"), !id.isEmpty else {
            throw CloudError.badResponse(service: "s3", operation: "create multipart upload", what: "no UploadId")
        }
        return id
    }

    /// Sends one part, signed with its real SHA-256; returns its ETag (unquoted). With `md5`,
    /// S3 also checks the bytes against Content-MD5, which holds even where ETags are not MD5s.
    public func uploadPart(bucket: String, key: String, uploadID: String, number: Int, data: Data, sha256: String,
                           md5: [UInt8]? = nil) throws -> String {
        var headers = ["Content-Type": "application/octet-stream"]
        if let md5 { headers["Content-MD5"] = Data(md5).base64EncodedString() }
        let response = try send("PUT", bucket: bucket, key: key, query: [("partNumber", "\(number)"), ("uploadId", uploadID)],
                                operation: "upload part \(number)", headers: headers, body: .bytes(data), payloadSHA256: sha256)
        guard let etag = response.header("etag") else {
            throw CloudError.badResponse(service: "s3", operation: "upload part \(number)", what: "no ETag")
        }
        return Self.unquote(etag)
    }

    /// Every part uploaded so far, following the pages.
    public func listParts(bucket: String, key: String, uploadID: String) throws -> [Part] {
        var parts: [Part] = []
        var marker: String?
        while true {
            var query: [(String, String?)] = [("uploadId", uploadID)]
            if let marker { query.append(("part-number-marker", marker)) }
            let response = try send("GET", bucket: bucket, key: key, query: query, operation: "list parts")
            guard let tree = XMLTree.parse(response.body) else {
                throw CloudError.badResponse(service: "s3", operation: "list parts", what: "not XML")
            }
            for part in tree.all("Part") {
                guard let number = part.value("PartNumber").flatMap(Int.init), let size = part.value("Size").flatMap(Int64.init),
                      let etag = part.value("ETag") else {
                    throw CloudError.badResponse(service: "s3", operation: "list parts", what: "a part without number, size or ETag")
                }
                parts.append(Part(number: number, size: size, etag: Self.unquote(etag)))
            }
            guard tree.value("IsTruncated") == "true", let next = tree.value("NextPartNumberMarker"), next != marker else { break }
            marker = next
        }
        return parts
    }

    /// Unfinished uploads of exactly `key`, oldest first.
    ///
    /// The listing's prefix is the key up to its first `/`, and the key is matched here: moto
    /// decodes `%2F` in a query value before it checks the signature, so a prefix holding a slash
    /// fails its check even when botocore signs it.
    public func listMultipartUploads(bucket: String, key: String) throws -> [Upload] {
        var uploads: [Upload] = []
        var markers: (String, String)?
        let prefix = String(key.prefix { $0 != "/" })
        while true {
            var query: [(String, String?)] = [("uploads", nil)]
            if !prefix.isEmpty { query.append(("prefix", prefix)) }
            if let markers { query += [("key-marker", markers.0), ("upload-id-marker", markers.1)] }
            let response = try send("GET", bucket: bucket, key: nil, query: query, operation: "list multipart uploads")
            guard let tree = XMLTree.parse(response.body) else {
                throw CloudError.badResponse(service: "s3", operation: "list multipart uploads", what: "not XML")
            }
            for upload in tree.all("Upload") {
                guard let name = upload.value("Key"), let id = upload.value("UploadId") else { continue }
                if name == key { uploads.append(Upload(key: name, uploadID: id, initiated: upload.value("Initiated") ?? "")) }
            }
            guard tree.value("IsTruncated") == "true", let nextKey = tree.value("NextKeyMarker"),
                  let nextID = tree.value("NextUploadIdMarker"), !nextID.isEmpty else { break }
            markers = (nextKey, nextID)
        }
        return uploads.sorted { $0.initiated < $1.initiated }
    }

    /// Completes the upload from `parts` (number, ETag); returns the object's ETag (unquoted).
    public func completeMultipartUpload(bucket: String, key: String, uploadID: String, parts: [(number: Int, etag: String)]) throws -> String {
        let list = parts.sorted { $0.number < $1.number }
            .map { "<Part><PartNumber>\($0.number)</PartNumber><ETag>\"\($0.etag)\"</ETag></Part>" }.joined()
        let body = Data("<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\(list)</CompleteMultipartUpload>".utf8)
        let response = try send("POST", bucket: bucket, key: key, query: [("uploadId", uploadID)], operation: "complete multipart upload",
                                headers: ["Content-Type": "application/xml"], body: .bytes(body))
        // S3 may answer 200 with an <Error> body when the completion failed late.
        guard let tree = XMLTree.parse(response.body) else {
            throw CloudError.badResponse(service: "s3", operation: "complete multipart upload", what: "not XML")
        }
        if tree.name == "Error" {
            throw CloudError.http(service: "s3", operation: "complete multipart upload", status: response.status,
                                  code: tree.value("Code"), message: tree.value("Message") ?? "")
        }
        guard let etag = tree.value("ETag") else {
            throw CloudError.badResponse(service: "s3", operation: "complete multipart upload", what: "no ETag")
        }
        return Self.unquote(etag)
    }

    public func abortMultipartUpload(bucket: String, key: String, uploadID: String) throws {
        _ = try send("DELETE", bucket: bucket, key: key, query: [("uploadId", uploadID)], operation: "abort multipart upload",
                     accept: [404])
    }

    // MARK: - Requests

    /// `endpoint/bucket[/key][?query]`, each piece encoded by SigV4's rule so the URL sent and the
    /// path signed agree.
    public func url(bucket: String, key: String?, query: [(String, String?)] = []) -> URL {
        var text = endpoint.absoluteString
        while text.hasSuffix("/") { text.removeLast() }
        text += "/" + SigV4Signer.uriEncode(bucket)
        if let key { text += "/" + SigV4Signer.uriEncode(key, keepSlash: true) }
        if !query.isEmpty {
            text += "?" + query.map { name, value in
                SigV4Signer.uriEncode(name) + (value.map { "=" + SigV4Signer.uriEncode($0) } ?? "")
            }.joined(separator: "&")
        }
        return URL(string: text)!
    }

    func send(_ method: String, bucket: String, key: String?, query: [(String, String?)] = [], operation: String,
              headers: [String: String] = [:], body: HTTPRequest.Body = .none, payloadSHA256: String? = nil,
              accept: Set<Int> = []) throws -> HTTPResponse {
        let request = HTTPRequest(method, url(bucket: bucket, key: key, query: query), headers: headers, body: body,
                                  service: "s3", operation: operation)
        return try http.send(request, signer: signer, payloadSHA256: payloadSHA256, accept: accept,
                             errorMessage: AWSErrorParser.parse)
    }

    static func unquote(_ etag: String) -> String {
        etag.trimmingCharacters(in: CharacterSet(charactersIn: "\" ")).replacingOccurrences(of: "&quot;", with: "")
    }
}
