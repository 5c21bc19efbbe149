import Cloud
import Foundation
import Testing

/// The client's own rules, without a cloud: which faults count as transient, and that a URL in a
/// message loses its query (a presigned URL carries a credential there).
struct HTTPClientTests {
    @Test func transientFaultsAreThrottlingServerErrorsAndDroppedConnections() {
        #expect(CloudError.http(service: "s3", operation: "upload part", status: 503, code: "SlowDown", message: "").isTransient)
        #expect(CloudError.http(service: "ec2", operation: "register image", status: 400, code: "RequestLimitExceeded", message: "").isTransient)
        #expect(CloudError.transport(service: "glance", operation: "upload", url: "http://x", reason: "reset").isTransient)
        #expect(!CloudError.http(service: "glance", operation: "create image", status: 401, code: nil, message: "").isTransient)
        #expect(!CloudError.http(service: "glance", operation: "upload", status: 413, code: nil, message: "").isTransient)
    }

    @Test func unreachableServerIsAOneLineTransportError() throws {
        // Port 9 (discard) is closed on loopback here; the error names the service and the URL.
        let client = HTTPClient(timeout: 5, retry: .none)
        let request = HTTPRequest("GET", URL(string: "http://127.0.0.1:9/v2/images?secret=x")!, service: "glance", operation: "list images")
        #expect {
            try client.send(request)
        } throws: { error in
            let text = "\(error)"
            return text.hasPrefix("glance list images: no answer from http://127.0.0.1:9/v2/images") && !text.contains("secret")
                && !text.contains("\n")
        }
    }
}
