import ImageCore

/// What went wrong talking to a cloud. Every case names the service and the operation, and
/// carries what the server said, so one line tells the user what to fix.
public enum CloudError: RehostError {
    /// The server answered with an error status.
    case http(service: String, operation: String, status: Int, code: String?, message: String)
    /// No answer: refused, reset, timed out, DNS.
    case transport(service: String, operation: String, url: String, reason: String)
    /// Credentials, endpoints or options missing or wrong before anything was sent.
    case configuration(String)
    /// The server's answer could not be understood.
    case badResponse(service: String, operation: String, what: String)
    /// What the cloud holds differs from what was sent.
    case mismatch(service: String, what: String, sent: String, reported: String)
    /// A waited-for state never came, or the cloud reported a failed state.
    case state(service: String, resource: String, state: String, reason: String)

    public var description: String {
        switch self {
        case let .http(service, operation, status, code, message):
            let detail = [code, message.isEmpty ? nil : message].compactMap { $0 }.joined(separator: ": ")
            return "\(service) \(operation): HTTP \(status)\(detail.isEmpty ? "" : " \(detail)")"
        case let .transport(service, operation, url, reason):
            return "\(service) \(operation): no answer from \(url): \(reason)"
        case let .configuration(what):
            return what
        case let .badResponse(service, operation, what):
            return "\(service) \(operation): unexpected answer: \(what)"
        case let .mismatch(service, what, sent, reported):
            return "\(service): \(what) differs: sent \(sent), the cloud reports \(reported)"
        case let .state(service, resource, state, reason):
            return "\(service): \(resource) is \(state)\(reason.isEmpty ? "" : ": \(reason)")"
        }
    }

    /// A fault that may pass if the same request is made again later (a batch engine retries
    /// these): throttling, a server error, a dropped connection.
    public var isTransient: Bool {
        switch self {
        case let .http(_, _, status, code, _):
            return status == 429 || status >= 500 || HTTPClient.throttlingCodes.contains(code ?? "")
        case .transport:
            return true
        default:
            return false
        }
    }
}
