import Cloud
import Foundation
import Testing
import TestSupport

/// The signer against AWS's published SigV4 vectors (Fixtures/sigv4/README.md): the canonical
/// request, the string to sign and the Authorization header must match byte for byte.
struct SigV4Tests {
    static let directory = "\(Fixture.repositoryRoot)/Tests/CloudTests/Fixtures/sigv4"

    /// Cases the signer cannot express, on purpose.
    static let skipped: [String: String] = [
        // The token is added after signing and left unsigned; this signer always signs a token
        // it sends, as every AWS service accepts.
        "post-sts-header-after": "unsigned session token",
    ]

    static var cases: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
            .filter { !$0.hasSuffix(".md") && skipped[$0] == nil }.sorted()
    }

    @Test func theFixturesAreThere() {
        #expect(Self.cases.count >= 37)
    }

    @Test(arguments: cases) func vector(_ name: String) throws {
        let vector = try Vector(directory: "\(Self.directory)/\(name)")
        let signer = SigV4Signer(credentials: vector.credentials, region: vector.region, service: vector.service,
                                 now: { [date = vector.date] in date }, signContentHash: vector.signBody,
                                 pathRule: SigV4Signer.PathRule(normalize: vector.normalize, encodeTwice: false))
        let signature = signer.signature(for: vector.request, payloadSHA256: nil)
        #expect(signature.canonicalRequest == vector.canonicalRequest)
        #expect(signature.stringToSign == vector.stringToSign)
        var signed = vector.request
        try signer.sign(&signed, payloadSHA256: nil)
        #expect(signed.headers["Authorization"] == vector.authorization)
        // Where the suite's path needs no encoding, the non-S3 default rule (normalize, encode
        // twice) must give the same answer as well.
        if vector.normalize, vector.service != "s3", !vector.request.url.absoluteString.contains("%") {
            let standard = SigV4Signer(credentials: vector.credentials, region: vector.region, service: vector.service,
                                       now: { [date = vector.date] in date }, signContentHash: vector.signBody)
            #expect(standard.pathRule == .standard)
            #expect(standard.signature(for: vector.request, payloadSHA256: nil).authorization == vector.authorization)
        }
    }

    /// AWS's example of the non-S3 rule: the encoded path is encoded again.
    @Test func nonS3PathsAreEncodedTwice() {
        let credentials = AWSCredentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: "x")
        let request = HTTPRequest("GET", URL(string: "https://example.amazonaws.com/documents%20and%20settings/")!,
                                  service: "t", operation: "t")
        let standard = SigV4Signer(credentials: credentials, region: "us-east-1", service: "ec2").signature(for: request, payloadSHA256: nil)
        #expect(standard.canonicalRequest.split(separator: "\n", omittingEmptySubsequences: false)[1] == "/documents%2520and%2520settings/")
        let s3 = SigV4Signer(credentials: credentials, region: "us-east-1", service: "s3").signature(for: request, payloadSHA256: nil)
        #expect(s3.canonicalRequest.split(separator: "\n", omittingEmptySubsequences: false)[1] == "/documents%20and%20settings/")
        // S3 keeps what other services normalize away.
        let dotted = HTTPRequest("GET", URL(string: "https://s3.amazonaws.com/b//a/../k")!, service: "t", operation: "t")
        #expect(SigV4Signer(credentials: credentials, region: "us-east-1", service: "s3").signature(for: dotted, payloadSHA256: nil)
            .canonicalRequest.split(separator: "\n")[1] == "/b//a/../k")
    }

    @Test func bodiesAreHashedAndFilesAreUnsigned() {
        let credentials = AWSCredentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: "x", sessionToken: "TOKEN")
        let signer = SigV4Signer(credentials: credentials, region: "us-east-1", service: "s3", now: { Date(timeIntervalSince1970: 0) })
        let url = URL(string: "http://127.0.0.1:5000/bucket/key?uploads")!
        let file = signer.signature(for: HTTPRequest("PUT", url, body: .file("/dev/null"), service: "s3", operation: "t"), payloadSHA256: nil)
        #expect(file.addedHeaders["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD")
        #expect(file.addedHeaders["X-Amz-Date"] == "19700101T000000Z")
        let lines = file.canonicalRequest.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines[2] == "uploads=")
        #expect(lines.contains("host:127.0.0.1:5000"))
        #expect(lines.contains("x-amz-security-token:TOKEN"))
        let bytes = signer.signature(for: HTTPRequest("PUT", url, body: .bytes(Data("abc".utf8)), service: "s3", operation: "t"), payloadSHA256: nil)
        #expect(bytes.addedHeaders["x-amz-content-sha256"] == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test func credentialsNeverShowTheSecret() {
        let credentials = AWSCredentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: "SECRETKEY", sessionToken: "TOKENVALUE")
        var dumped = ""
        dump(credentials, to: &dumped)
        let configuration = AWSConfiguration(credentials: credentials, region: "us-east-1")
        let signer = SigV4Signer(credentials: credentials, region: "us-east-1", service: "s3")
        let text = "\(credentials) \(String(reflecting: credentials)) \(dumped) \(configuration) \(signer) \(String(reflecting: signer))"
        #expect(text.contains("AKIDEXAMPLE"))
        #expect(!text.contains("SECRETKEY") && !text.contains("TOKENVALUE"))
    }
}

/// One case directory: context.json, request.txt and the three expected texts.
private struct Vector {
    var credentials: AWSCredentials
    var region: String
    var service: String
    var date: Date
    var normalize: Bool
    var signBody: Bool
    var request: HTTPRequest
    var canonicalRequest: String
    var stringToSign: String
    var authorization: String

    init(directory: String) throws {
        func text(_ name: String) throws -> String { try String(contentsOfFile: "\(directory)/\(name)", encoding: .utf8) }
        let context = try JSONSerialization.jsonObject(with: Data(text("context.json").utf8)) as! [String: Any]
        let keys = context["credentials"] as! [String: String]
        credentials = AWSCredentials(accessKeyID: keys["access_key_id"]!, secretAccessKey: keys["secret_access_key"]!,
                                     sessionToken: keys["token"])
        region = context["region"] as! String
        service = context["service"] as! String
        date = ISO8601DateFormatter().date(from: context["timestamp"] as! String)!
        normalize = context["normalize"] as! Bool
        signBody = context["sign_body"] as! Bool
        canonicalRequest = try text("header-canonical-request.txt")
        stringToSign = try text("header-string-to-sign.txt")
        let signedLines = try text("header-signed-request.txt").split(separator: "\n")
        authorization = String(signedLines.first { $0.hasPrefix("Authorization:") }!.dropFirst("Authorization:".count))
        request = Self.parse(try text("request.txt"))
    }

    /// `METHOD PATH HTTP/1.1`, `Name:value` lines (a folded line continues the previous value, a
    /// repeated name joins its values with commas, as HTTP allows), a blank line, the body.
    static func parse(_ text: String) -> HTTPRequest {
        let (head, body) = text.range(of: "\n\n").map { (String(text[..<$0.lowerBound]), String(text[$0.upperBound...])) } ?? (text, "")
        var lines = head.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let requestLine = lines.removeFirst()
        let method = String(requestLine.prefix { $0 != " " })
        let target = String(requestLine.dropFirst(method.count + 1).dropLast(" HTTP/1.1".count))
        var order: [String] = []
        var headers: [String: String] = [:]
        for line in lines where !line.isEmpty {
            if line.first == " " || line.first == "\t" {
                headers[order.last!]! += " " + line.trimmingCharacters(in: .whitespaces)
                continue
            }
            let colon = line.firstIndex(of: ":")!
            let name = String(line[..<colon])
            let value = String(line[line.index(after: colon)...])
            if let known = order.first(where: { $0.lowercased() == name.lowercased() }) {
                headers[known]! += "," + value
            } else {
                order.append(name)
                headers[name] = value
            }
        }
        let host = headers.removeValue(forKey: "Host")!
        // The suite writes paths unencoded (spaces, UTF-8); a URL carries them percent-encoded.
        let url = URL(string: "https://\(host)\(encodeUnsafe(target))")!
        return HTTPRequest(method, url, headers: headers, body: body.isEmpty ? .none : .bytes(Data(body.utf8)),
                           service: "vector", operation: "sign")
    }

    static func encodeUnsafe(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            if byte >= 0x80 || byte == 0x20 { out += String(format: "%%%02X", byte) } else { out.append(Character(Unicode.Scalar(byte))) }
        }
        return out
    }
}
