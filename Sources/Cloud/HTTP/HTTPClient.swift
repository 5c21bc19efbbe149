import Curl
import Foundation
import Glibc
import ImageCore

/// One HTTP request, before signing.
public struct HTTPRequest: Sendable {
    public enum Body: Sendable {
        case none
        case bytes(Data)
        /// A whole file, streamed from disk as it is sent (never read into memory).
        case file(String)
    }

    public var method: String
    public var url: URL
    /// Header names as given; signers lower-case them for their canonical forms.
    public var headers: [String: String]
    public var body: Body
    /// The service and operation, for messages: "glance", "create image".
    public var service: String
    public var operation: String

    public init(_ method: String, _ url: URL, headers: [String: String] = [:], body: Body = .none,
                service: String, operation: String) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.service = service
        self.operation = operation
    }
}

public struct HTTPResponse: Sendable {
    public var status: Int
    /// Header names lower-cased.
    public var headers: [String: String]
    public var body: Data

    public var text: String { String(decoding: body, as: UTF8.self) }
    public func header(_ name: String) -> String? { headers[name.lowercased()] }
}

/// Signs a request just before each attempt (a retry is signed again, with a fresh date).
public protocol RequestSigner: Sendable {
    func sign(_ request: inout HTTPRequest, payloadSHA256: String?) throws
}

/// How often and how long to retry throttled, failed and dropped requests.
public struct RetryPolicy: Sendable {
    public var attempts: Int
    /// The first wait; each next one doubles, up to `maximumDelay`, with full jitter.
    public var baseDelay: Double
    public var maximumDelay: Double

    public init(attempts: Int = 6, baseDelay: Double = 0.2, maximumDelay: Double = 20) {
        self.attempts = attempts
        self.baseDelay = baseDelay
        self.maximumDelay = maximumDelay
    }

    public static let none = RetryPolicy(attempts: 1)

    func delay(afterAttempt attempt: Int) -> Double {
        let ceiling = min(maximumDelay, baseDelay * Double(1 << min(attempt, 20)))
        return Double.random(in: ceiling / 2...ceiling)
    }
}

/// A small synchronous HTTP client over libcurl (the Curl module): the pipeline runs on threads,
/// not tasks, and a call here blocks its thread until the answer or the last retry. Bodies of
/// files are streamed. Connections stay open between requests in a pool of libcurl handles.
public final class HTTPClient: Sendable {
    /// AWS error codes that mean "slow down", whatever the status.
    public static let throttlingCodes: Set<String> = ["Throttling", "ThrottlingException", "ThrottledException",
                                                       "RequestLimitExceeded", "SlowDown", "RequestThrottled",
                                                       "TooManyRequestsException", "RequestTimeout", "InternalError"]

    let curl: CurlSession
    /// Seconds a request may go without a byte moving either way (not a total).
    let timeout: Double
    public let retry: RetryPolicy
    /// Called before each retry, with the error that caused it: for progress and logs.
    private let onRetry: @Sendable (CloudError, Int) -> Void

    public init(timeout: Double = 300, retry: RetryPolicy = RetryPolicy(),
                onRetry: @escaping @Sendable (CloudError, Int) -> Void = { _, _ in }) {
        curl = CurlSession(keepIdle: 64)
        self.timeout = timeout
        self.retry = retry
        self.onRetry = onRetry
    }

    /// Sends `request`, signed by `signer` before every attempt. Answers of 2xx are returned;
    /// other statuses become `CloudError.http` with the server's message (parsed by
    /// `errorMessage`), retried while transient and `retryable`.
    public func send(_ request: HTTPRequest, signer: (any RequestSigner)? = nil, payloadSHA256: String? = nil,
                     accept: Set<Int> = [], retryable: Bool = true, sent: ((Int64) -> Void)? = nil,
                     errorMessage: (HTTPResponse) -> (code: String?, message: String) = HTTPClient.plainMessage) throws -> HTTPResponse {
        var attempt = 0
        while true {
            attempt += 1
            do {
                var signed = request
                try signer?.sign(&signed, payloadSHA256: payloadSHA256)
                let response = try perform(signed, sent: sent)
                if (200..<300).contains(response.status) || accept.contains(response.status) { return response }
                let (code, message) = errorMessage(response)
                throw CloudError.http(service: request.service, operation: request.operation, status: response.status,
                                      code: code, message: message)
            } catch let error as CloudError {
                guard retryable, error.isTransient, attempt < retry.attempts else { throw error }
                onRetry(error, attempt)
                Thread.sleep(forTimeInterval: retry.delay(afterAttempt: attempt - 1))
            }
        }
    }

    /// The first line of the body, cut to a readable length: what most servers put there.
    public static func plainMessage(_ response: HTTPResponse) -> (code: String?, message: String) {
        let text = response.text.trimmingCharacters(in: .whitespacesAndNewlines)
        let line = text.split(whereSeparator: \.isNewline).first.map(String.init) ?? ""
        return (nil, String(line.prefix(300)))
    }

    /// The request as libcurl is told it, with `body`.
    func transfer(_ request: HTTPRequest, body: CurlTransfer.Body) -> CurlTransfer {
        CurlTransfer(method: request.method, url: request.url.absoluteString, headers: request.headers, body: body,
                     connectTimeout: min(timeout, 60), idleTimeout: timeout)
    }

    /// One attempt, on this thread. `sent`, when given, is called about four times a second with
    /// the body bytes sent so far, and once at the end.
    private func perform(_ request: HTTPRequest, sent: ((Int64) -> Void)?) throws -> HTTPResponse {
        let body: CurlTransfer.Body
        var descriptor: Int32 = -1
        defer { if descriptor >= 0 { close(descriptor) } }
        switch request.body {
        case .none:
            body = .none
        case let .bytes(data):
            body = .bytes(data)
        case let .file(path):
            descriptor = open(path, O_RDONLY | O_CLOEXEC)
            var info = stat()
            guard descriptor >= 0, fstat(descriptor, &info) == 0 else {
                throw CloudError.configuration("\(request.service) \(request.operation): cannot read \(path): \(String(cString: strerror(errno)))")
            }
            body = .file(descriptor: descriptor, length: Int64(info.st_size))
        }
        var progress: ((Int64) -> Bool)?
        var lastBytes: Int64 = 0
        if let sent {
            var lastCall = monotonicSeconds()
            progress = { bytes in
                lastBytes = bytes
                let now = monotonicSeconds()
                if now - lastCall >= 0.25 {
                    lastCall = now
                    sent(bytes)
                }
                return true
            }
        }
        let response: CurlResponse
        do {
            response = try curl.perform(transfer(request, body: body), progress: progress)
        } catch {
            sent?(lastBytes)
            throw CloudError.transport(service: request.service, operation: request.operation,
                                       url: Self.displayURL(request.url), reason: Self.describe(error))
        }
        sent?(response.bytesSent)
        return HTTPResponse(status: response.status, headers: response.headers, body: response.body)
    }

    /// The URL without its query (which may hold a presigned credential).
    static func displayURL(_ url: URL) -> String {
        var components = URLComponents(url: url, resolvingAgainstBaseURL: false)
        components?.query = nil
        components?.user = nil
        components?.password = nil
        return components?.string ?? url.host ?? "?"
    }

    static func describe(_ error: any Error) -> String {
        if let error = error as? CurlError { return error.message }
        let nsError = error as NSError
        return nsError.localizedDescription.isEmpty ? "\(error)" : nsError.localizedDescription
    }
}
