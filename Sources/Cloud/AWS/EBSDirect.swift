import Digests
import Foundation

/// The EBS direct APIs (`ebs.REGION.amazonaws.com`): a snapshot written block by block, with no
/// volume, no instance and no S3 bucket in between (how awslabs/coldsnap uploads).
public struct EBSDirectClient: Sendable {
    /// AWS's only block size for these APIs.
    public static let blockSize = 524_288

    let endpoint: URL
    let signer: SigV4Signer
    let client: HTTPClient

    public init(configuration: AWSConfiguration, client: HTTPClient) {
        endpoint = configuration.endpoint(for: "ebs")
        signer = configuration.signer(for: "ebs")
        self.client = client
    }

    func url(_ path: String) -> URL {
        var root = endpoint.absoluteString
        while root.hasSuffix("/") { root.removeLast() }
        return URL(string: root + path)!
    }

    func json(_ response: HTTPResponse, _ operation: String) throws -> [String: Any] {
        guard let object = try? JSONSerialization.jsonObject(with: response.body) as? [String: Any] else {
            throw CloudError.badResponse(service: "ebs", operation: operation, what: "not a JSON object")
        }
        return object
    }

    /// `StartSnapshot`: a `pending` snapshot of `volumeSizeGiB`. The same `clientToken` makes a
    /// retried start return the snapshot the first attempt made.
    public func startSnapshot(volumeSizeGiB: UInt64, clientToken: String, description: String,
                              tags: [String: String], timeoutMinutes: Int) throws -> String {
        var fields: [String: Any] = ["VolumeSize": volumeSizeGiB, "ClientToken": clientToken, "Description": description,
                                     "Timeout": timeoutMinutes]
        if !tags.isEmpty { fields["Tags"] = tags.sorted { $0.key < $1.key }.map { ["Key": $0.key, "Value": $0.value] } }
        let body = try JSONSerialization.data(withJSONObject: fields)
        let request = HTTPRequest("POST", url("/snapshots"), headers: ["Content-Type": "application/json"], body: .bytes(body),
                                  service: "ebs", operation: "StartSnapshot")
        let response = try client.send(request, signer: signer, errorMessage: AWSErrorParser.parse)
        guard let id = try json(response, "StartSnapshot")["SnapshotId"] as? String else {
            throw CloudError.badResponse(service: "ebs", operation: "StartSnapshot", what: "no SnapshotId")
        }
        return id
    }

    /// `PutSnapshotBlock`: one block with its SHA-256, which EBS checks.
    public func putBlock(snapshotID: String, index: UInt64, data: Data, sha256: [UInt8]) throws {
        let checksum = Data(sha256).base64EncodedString()
        let request = HTTPRequest("PUT", url("/snapshots/\(snapshotID)/blocks/\(index)"),
                                  headers: ["Content-Type": "application/octet-stream", "x-amz-Data-Length": "\(data.count)",
                                            "x-amz-Checksum": checksum, "x-amz-Checksum-Algorithm": "SHA256"],
                                  body: .bytes(data), service: "ebs", operation: "PutSnapshotBlock \(index)")
        _ = try client.send(request, signer: signer, payloadSHA256: Digest.hex(sha256), errorMessage: AWSErrorParser.parse)
    }

    /// `CompleteSnapshot`: the count of blocks written and their linear SHA-256 aggregate (the
    /// SHA-256 of every block's SHA-256, in block order), which EBS checks before sealing.
    public func completeSnapshot(snapshotID: String, changedBlocks: UInt64, aggregateSHA256: [UInt8]) throws -> String {
        let request = HTTPRequest("POST", url("/snapshots/completion/\(snapshotID)"),
                                  headers: ["x-amz-ChangedBlocksCount": "\(changedBlocks)",
                                            "x-amz-Checksum": Data(aggregateSHA256).base64EncodedString(),
                                            "x-amz-Checksum-Algorithm": "SHA256", "x-amz-Checksum-Aggregation-Method": "LINEAR"],
                                  service: "ebs", operation: "CompleteSnapshot")
        let response = try client.send(request, signer: signer, errorMessage: AWSErrorParser.parse)
        return try json(response, "CompleteSnapshot")["Status"] as? String ?? "?"
    }

    /// `ListSnapshotBlocks`: every written block's index and token, following `NextToken`.
    public func listBlocks(snapshotID: String) throws -> [(index: UInt64, token: String)] {
        var blocks: [(UInt64, String)] = []
        var next: String?
        repeat {
            var components = URLComponents(url: url("/snapshots/\(snapshotID)/blocks"), resolvingAgainstBaseURL: false)!
            components.queryItems = [URLQueryItem(name: "maxResults", value: "10000")] + (next.map { [URLQueryItem(name: "pageToken", value: $0)] } ?? [])
            let response = try client.send(HTTPRequest("GET", components.url!, service: "ebs", operation: "ListSnapshotBlocks"),
                                           signer: signer, errorMessage: AWSErrorParser.parse)
            let page = try json(response, "ListSnapshotBlocks")
            for block in page["Blocks"] as? [[String: Any]] ?? [] {
                guard let index = (block["BlockIndex"] as? NSNumber)?.uint64Value, let token = block["BlockToken"] as? String else { continue }
                blocks.append((index, token))
            }
            next = page["NextToken"] as? String
        } while next != nil
        return blocks
    }

    /// `GetSnapshotBlock`: one block's data.
    public func getBlock(snapshotID: String, index: UInt64, token: String) throws -> Data {
        var components = URLComponents(url: url("/snapshots/\(snapshotID)/blocks/\(index)"), resolvingAgainstBaseURL: false)!
        components.queryItems = [URLQueryItem(name: "blockToken", value: token)]
        return try client.send(HTTPRequest("GET", components.url!, service: "ebs", operation: "GetSnapshotBlock \(index)"),
                               signer: signer, errorMessage: AWSErrorParser.parse).body
    }
}
