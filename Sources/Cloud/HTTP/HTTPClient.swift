import Dispatch
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import ImageCore

/// One HTTP request, before signing.
public struct HTTPRequest: Sendable {
    public enum Body: Sendable {
        case none
        case bytes(Data)
        /// A whole file, streamed from disk by URLSession (never read into memory).
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

/// A small synchronous HTTP client over URLSession: the pipeline runs on threads, not tasks, and
/// a call here blocks its thread until the answer or the last retry. Bodies of files are streamed.
public final class HTTPClient: Sendable {
    /// AWS error codes that mean "slow down", whatever the status.
    public static let throttlingCodes: Set<String> = ["Throttling", "ThrottlingException", "ThrottledException",
                                                       "RequestLimitExceeded", "SlowDown", "RequestThrottled",
                                                       "TooManyRequestsException", "RequestTimeout", "InternalError"]

    let session: URLSession
    public let retry: RetryPolicy
    /// Called before each retry, with the error that caused it: for progress and logs.
    private let onRetry: @Sendable (CloudError, Int) -> Void

    public init(timeout: Double = 300, retry: RetryPolicy = RetryPolicy(),
                onRetry: @escaping @Sendable (CloudError, Int) -> Void = { _, _ in }) {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = timeout
        configuration.timeoutIntervalForResource = 7 * 24 * 3600
        configuration.httpMaximumConnectionsPerHost = 64
        configuration.urlCache = nil
        configuration.httpCookieStorage = nil
        session = URLSession(configuration: configuration)
        self.retry = retry
        self.onRetry = onRetry
    }

    deinit { session.finishTasksAndInvalidate() }

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

    /// `sent`, when given, is called about four times a second with the body bytes sent so far.
    private func perform(_ request: HTTPRequest, sent: ((Int64) -> Void)?) throws -> HTTPResponse {
        var urlRequest = URLRequest(url: request.url)
        urlRequest.httpMethod = request.method
        for (name, value) in request.headers { urlRequest.setValue(value, forHTTPHeaderField: name) }
        let box = ResultBox()
        let handler: @Sendable (Data?, URLResponse?, (any Error)?) -> Void = { data, response, error in
            box.set(data: data, response: response, error: error)
        }
        let task: URLSessionTask
        switch request.body {
        case .none:
            task = session.dataTask(with: urlRequest, completionHandler: handler)
        case let .bytes(data):
            task = session.uploadTask(with: urlRequest, from: data, completionHandler: handler)
        case let .file(path):
            task = session.uploadTask(with: urlRequest, fromFile: URL(fileURLWithPath: path), completionHandler: handler)
        }
        task.resume()
        if let sent {
            while !box.wait(timeout: 0.25) { sent(task.countOfBytesSent) }
            sent(task.countOfBytesSent)
        }
        let (data, response, error) = box.wait()
        if let error {
            throw CloudError.transport(service: request.service, operation: request.operation,
                                       url: Self.displayURL(request.url), reason: Self.describe(error))
        }
        return try HTTPResponse(request, response, data)
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
        let nsError = error as NSError
        return nsError.localizedDescription.isEmpty ? "\(error)" : nsError.localizedDescription
    }
}

extension HTTPResponse {
    /// URLSession's answer to `request`, headers lower-cased.
    init(_ request: HTTPRequest, _ response: URLResponse?, _ data: Data?) throws {
        guard let http = response as? HTTPURLResponse else {
            throw CloudError.badResponse(service: request.service, operation: request.operation, what: "not an HTTP response")
        }
        var headers: [String: String] = [:]
        for (name, value) in http.allHeaderFields {
            if let name = name as? String, let value = value as? String { headers[name.lowercased()] = value }
        }
        self.init(status: http.statusCode, headers: headers, body: data ?? Data())
    }
}

/// Hands a completion handler's result to the thread waiting for it (any number of waits).
final class ResultBox: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private var data: Data?
    private var response: URLResponse?
    private var error: (any Error)?

    func set(data: Data?, response: URLResponse?, error: (any Error)?) {
        self.data = data
        self.response = response
        self.error = error
        done.signal()
    }

    func wait() -> (Data?, URLResponse?, (any Error)?) {
        done.wait()
        done.signal()
        return (data, response, error)
    }

    /// True once the answer is in (it stays in for `wait`).
    func wait(timeout seconds: Double) -> Bool {
        guard done.wait(timeout: .now() + seconds) == .success else { return false }
        done.signal()
        return true
    }
}
