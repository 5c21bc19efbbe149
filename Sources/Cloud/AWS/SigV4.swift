import Digests
import Foundation

/// AWS Signature Version 4, header form: every request to S3, EC2 and EBS carries an
/// `Authorization` header computed from a canonical form of the request, so the server can check
/// the sender knows the secret and that nothing signed was changed on the way.
///
/// ```
/// canonical request = METHOD \n path \n sorted query \n name:value\n… \n signed;names \n payload hash
/// string to sign    = AWS4-HMAC-SHA256 \n yyyyMMddTHHmmssZ \n day/region/service/aws4_request \n sha256(canonical)
/// signing key       = HMAC chain "AWS4"+secret → day → region → service → "aws4_request"
/// ```
public struct SigV4Signer: RequestSigner {
    /// How the path enters the canonical request. S3 signs the path as sent, encoded once and not
    /// normalized (a key may hold `//` or `..`); every other service normalizes it (RFC 3986 dot
    /// segments, repeated slashes) and encodes the already-encoded path a second time.
    public struct PathRule: Sendable, Equatable {
        public var normalize: Bool
        public var encodeTwice: Bool
        public init(normalize: Bool, encodeTwice: Bool) {
            self.normalize = normalize
            self.encodeTwice = encodeTwice
        }
        public static let s3 = PathRule(normalize: false, encodeTwice: false)
        public static let standard = PathRule(normalize: true, encodeTwice: true)
    }

    /// The intermediate forms, exposed so tests can compare them with published vectors.
    public struct Signature: Sendable {
        public var canonicalRequest: String
        public var stringToSign: String
        public var authorization: String
        /// The headers the signer adds: X-Amz-Date, x-amz-content-sha256, X-Amz-Security-Token.
        public var addedHeaders: [String: String]
    }

    public let credentials: AWSCredentials
    public let region: String
    public let service: String
    /// Sign (and send) `x-amz-content-sha256`. S3 requires it; moto's signature check needs it on
    /// EC2 and EBS too, because without it moto hashes the wrong body (see the upload facts).
    public var signContentHash: Bool
    public var pathRule: PathRule
    private let now: @Sendable () -> Date

    public init(credentials: AWSCredentials, region: String, service: String,
                now: @escaping @Sendable () -> Date = Date.init,
                signContentHash: Bool = true, pathRule: PathRule? = nil) {
        self.credentials = credentials
        self.region = region
        self.service = service
        self.now = now
        self.signContentHash = signContentHash
        self.pathRule = pathRule ?? (service == "s3" ? .s3 : .standard)
    }

    public static let unsignedPayload = "UNSIGNED-PAYLOAD"
    /// Headers the signer owns: set fresh on every signing, so a retry is signed again cleanly.
    private static let ownedHeaders: Set<String> = ["authorization", "x-amz-date", "x-amz-content-sha256", "x-amz-security-token"]

    public func sign(_ request: inout HTTPRequest, payloadSHA256: String?) throws {
        let signature = signature(for: request, payloadSHA256: payloadSHA256)
        for name in request.headers.keys where Self.ownedHeaders.contains(name.lowercased()) {
            request.headers[name] = nil
        }
        for (name, value) in signature.addedHeaders { request.headers[name] = value }
        request.headers["Authorization"] = signature.authorization
    }

    /// Computes the signature of `request` at `now()`. `payloadSHA256` nil means: hash an
    /// in-memory body, send `UNSIGNED-PAYLOAD` for a streamed file.
    public func signature(for request: HTTPRequest, payloadSHA256: String?) -> Signature {
        let date = now()
        let amzDate = Self.amzDate(date)
        let day = String(amzDate.prefix(8))
        let payloadHash = payloadSHA256 ?? Self.payloadHash(request.body)

        var added: [String: String] = ["X-Amz-Date": amzDate]
        if signContentHash { added["x-amz-content-sha256"] = payloadHash }
        if let token = credentials.sessionToken { added["X-Amz-Security-Token"] = token }

        var canonicalHeaders: [String: String] = ["host": Self.hostHeader(request.url)]
        for (name, value) in request.headers {
            let lower = name.lowercased()
            guard !Self.ownedHeaders.contains(lower), lower != "host" else { continue }
            canonicalHeaders[lower] = Self.canonicalValue(value)
        }
        for (name, value) in added { canonicalHeaders[name.lowercased()] = Self.canonicalValue(value) }
        let names = canonicalHeaders.keys.sorted()
        let signedHeaders = names.joined(separator: ";")

        let components = URLComponents(url: request.url, resolvingAgainstBaseURL: false)
        let canonicalRequest = [
            request.method,
            canonicalPath(components?.percentEncodedPath ?? "/"),
            Self.canonicalQuery(components?.percentEncodedQuery),
            names.map { "\($0):\(canonicalHeaders[$0]!)\n" }.joined(),
            signedHeaders,
            payloadHash,
        ].joined(separator: "\n")

        let scope = "\(day)/\(region)/\(service)/aws4_request"
        let stringToSign = ["AWS4-HMAC-SHA256", amzDate, scope,
                            Digest.hex(Digest.bytes(.sha256, of: Array(canonicalRequest.utf8)))].joined(separator: "\n")
        var key = HMAC.sha256(key: Array("AWS4\(credentials.secretAccessKey)".utf8), data: Array(day.utf8))
        for part in [region, service, "aws4_request"] { key = HMAC.sha256(key: key, data: Array(part.utf8)) }
        let signature = Digest.hex(HMAC.sha256(key: key, data: Array(stringToSign.utf8)))
        let authorization = "AWS4-HMAC-SHA256 Credential=\(credentials.accessKeyID)/\(scope), "
            + "SignedHeaders=\(signedHeaders), Signature=\(signature)"
        return Signature(canonicalRequest: canonicalRequest, stringToSign: stringToSign,
                         authorization: authorization, addedHeaders: added)
    }

    // MARK: - Canonical pieces

    /// The SHA-256 of an empty body, which S3 wants spelled out for GET, HEAD and DELETE.
    public static let emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

    static func payloadHash(_ body: HTTPRequest.Body) -> String {
        switch body {
        case .none: return emptySHA256
        case let .bytes(data): return data.withUnsafeBytes { Digest.hex(Digest.bytes(.sha256, of: $0)) }
        case .file: return unsignedPayload
        }
    }

    /// `yyyyMMdd'T'HHmmss'Z'` in UTC.
    static func amzDate(_ date: Date) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        func two(_ value: Int?) -> String { value.map { $0 < 10 ? "0\($0)" : "\($0)" } ?? "00" }
        return "\(c.year ?? 1970)\(two(c.month))\(two(c.day))T\(two(c.hour))\(two(c.minute))\(two(c.second))Z"
    }

    /// The host as the HTTP client sends it: with the port when it is not the scheme's default.
    static func hostHeader(_ url: URL) -> String {
        let host = url.host ?? ""
        guard let port = url.port else { return host }
        let scheme = url.scheme?.lowercased()
        if (scheme == "http" && port == 80) || (scheme == "https" && port == 443) { return host }
        return "\(host):\(port)"
    }

    /// Trimmed, with runs of whitespace (including unfolded line breaks) made one space.
    static func canonicalValue(_ value: String) -> String {
        value.split(whereSeparator: { $0 == " " || $0 == "\t" || $0.isNewline }).joined(separator: " ")
    }

    /// Parameters decoded, encoded again by the strict rule, sorted by name then value; a
    /// parameter without `=` becomes `name=`.
    static func canonicalQuery(_ query: String?) -> String {
        guard let query, !query.isEmpty else { return "" }
        let pairs = query.split(separator: "&", omittingEmptySubsequences: true).map { item -> (String, String) in
            let parts = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = String(parts[0]).removingPercentEncoding ?? String(parts[0])
            let value = parts.count > 1 ? (String(parts[1]).removingPercentEncoding ?? String(parts[1])) : ""
            return (uriEncode(name), uriEncode(value))
        }
        return pairs.sorted { $0 < $1 }.map { "\($0.0)=\($0.1)" }.joined(separator: "&")
    }

    func canonicalPath(_ encodedPath: String) -> String {
        var path = encodedPath.isEmpty ? "/" : encodedPath
        if pathRule.normalize { path = Self.normalize(path) }
        if pathRule.encodeTwice { return Self.uriEncode(path, keepSlash: true) }
        let segments = path.split(separator: "/", omittingEmptySubsequences: false).map { segment in
            Self.uriEncode(String(segment).removingPercentEncoding ?? String(segment))
        }
        return segments.joined(separator: "/")
    }

    /// RFC 3986 dot-segment removal, with empty segments dropped; a trailing slash is kept.
    static func normalize(_ path: String) -> String {
        var output: [Substring] = []
        let segments = path.split(separator: "/", omittingEmptySubsequences: true)
        for segment in segments {
            switch segment {
            case ".": continue
            case "..": _ = output.popLast()
            default: output.append(segment)
            }
        }
        var result = "/" + output.joined(separator: "/")
        let last = segments.last
        if (path.hasSuffix("/") || last == "." || last == "..") && !result.hasSuffix("/") { result += "/" }
        return result
    }

    /// Percent-encodes every byte but `A–Z a–z 0–9 - _ . ~` (and `/` when asked), upper-case hex.
    public static func uriEncode(_ text: String, keepSlash: Bool = false) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        let hex = Array("0123456789ABCDEF")
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"),
                 UInt8(ascii: "."), UInt8(ascii: "~"):
                out.append(Character(Unicode.Scalar(byte)))
            case UInt8(ascii: "/") where keepSlash:
                out.append("/")
            default:
                out.append("%")
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 15)])
            }
        }
        return out
    }
}
