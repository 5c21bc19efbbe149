import Cloud
import Digests
import Foundation
import Synchronization
import Testing
import TestSupport

/// The real-server harness (TestSupport/CloudServers.swift, Tests/Tools/cloud-servers.sh and
/// fault-proxy.py) works, seen through the project's own HTTPClient: Glance takes an image in
/// both its flavours, Keystone gives password and application-credential tokens, moto answers,
/// and the fault proxy's 503s and dropped connections reach the client and are retried.
/// Each test starts its servers once and stops them by pid; serialized to spare the 2 cores.
@Suite(.serialized)
struct CloudServersTests {
    /// Retries without the real back-off, and a count of them.
    final class Retries: Sendable {
        let count = Mutex(0)
        var seen: Int { count.withLock { $0 } }
        func client(attempts: Int = 4) -> HTTPClient {
            HTTPClient(timeout: 60, retry: RetryPolicy(attempts: attempts, baseDelay: 0.01, maximumDelay: 0.05),
                       onRetry: { _, _ in self.count.withLock { $0 += 1 } })
        }
    }

    static func json(_ response: HTTPResponse) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: response.body) as? [String: Any])
    }

    static func createImage(_ client: HTTPClient, at endpoint: URL, headers: [String: String]) throws -> String {
        let response = try client.send(HTTPRequest(
            "POST", endpoint.appendingPathComponent("v2/images"),
            headers: headers.merging(["Content-Type": "application/json"]) { $1 },
            body: .bytes(Data(#"{"name":"harness","disk_format":"raw","container_format":"bare"}"#.utf8)),
            service: "glance", operation: "create image"))
        #expect(response.status == 201)
        let image = try json(response)
        #expect(image["status"] as? String == "queued")
        return try #require(image["id"] as? String)
    }

    @Test func glanceTrustedTakesAnImageThroughInjectedFaults() throws {
        let clock = ContinuousClock()
        let started = clock.now
        let glance = try GlanceServer.start()
        defer { glance.stop() }
        let glanceUp = clock.now - started
        let proxy = try FaultProxy.start(upstream: glance.endpoint, rules: [
            .fail(first: 1, status: 503, method: "POST", path: "^/v2/images$"),
            .drop(afterBytes: 4096, method: "PUT", path: "/file$"),
        ])
        defer { proxy.stop() }
        let headers = GlanceServer.trustedHeaders()
        let retries = Retries()
        let client = retries.client()

        let info = try client.send(HTTPRequest("GET", glance.endpoint.appendingPathComponent("v2/info/import"),
                                               headers: headers, service: "glance", operation: "import info"))
        #expect(info.text.contains("glance-direct"))

        // Through the proxy: a 503 on the create, then the upload's connection dropped mid-body.
        let id = try Self.createImage(client, at: proxy.endpoint, headers: headers)
        let scratch = try TemporaryDirectory(prefix: "rehost-harness")
        var generator = SplitMix(seed: 10)
        let bytes = generator.bytes(65536)
        try Data(bytes).write(to: URL(fileURLWithPath: scratch.file("disk.raw")))
        let put = try client.send(HTTPRequest(
            "PUT", proxy.endpoint.appendingPathComponent("v2/images/\(id)/file"),
            headers: headers.merging(["Content-Type": "application/octet-stream"]) { $1 },
            body: .file(scratch.file("disk.raw")), service: "glance", operation: "upload"))
        #expect(put.status == 204)
        #expect(proxy.injectedFaults == 2, "\(proxy.faults)")
        #expect(retries.seen == 2)

        let image = try Self.json(client.send(HTTPRequest("GET", glance.endpoint.appendingPathComponent("v2/images/\(id)"),
                                                          headers: headers, service: "glance", operation: "show image")))
        #expect(image["status"] as? String == "active")
        #expect(image["size"] as? Int == bytes.count)
        #expect(image["checksum"] as? String == Digest.hex(Digest.bytes(.md5, of: bytes)))
        print("CloudServersTests: glance (trusted) up in \(glanceUp), whole test \(clock.now - started)")
    }

    @Test func glanceTakesOsloSettingsFromTheEnvironment() throws {
        let glance = try GlanceServer.start(environment: ["OS_DEFAULT__IMAGE_SIZE_CAP": "1024"])
        defer { glance.stop() }
        let client = HTTPClient(timeout: 60, retry: .none)
        let headers = GlanceServer.trustedHeaders()
        let id = try Self.createImage(client, at: glance.endpoint, headers: headers)
        #expect {
            try client.send(HTTPRequest("PUT", glance.endpoint.appendingPathComponent("v2/images/\(id)/file"),
                                        headers: headers.merging(["Content-Type": "application/octet-stream"]) { $1 },
                                        body: .bytes(Data(repeating: 7, count: 4096)), service: "glance", operation: "upload"))
        } throws: { error in
            guard case let CloudError.http(_, _, status, _, _) = error else { return false }
            return status == 413
        }
    }

    @Test func keystoneTokensOpenGlanceBehindIt() throws {
        let clock = ContinuousClock()
        let started = clock.now
        let glance = try GlanceServer.start(keystone: true)
        defer { glance.stop() }
        let keystone = try #require(glance.keystone)
        let client = HTTPClient(timeout: 60, retry: .none)
        let tokens = keystone.authURL.appendingPathComponent("auth/tokens")
        let json = ["Content-Type": "application/json"]

        let admin = try client.send(HTTPRequest("POST", tokens, headers: json, body: .bytes(keystone.passwordAuthBody),
                                                service: "keystone", operation: "password token"))
        #expect(admin.status == 201)
        #expect(admin.header("X-Subject-Token")?.isEmpty == false)

        let demo = try client.send(HTTPRequest("POST", tokens, headers: json, body: .bytes(keystone.applicationCredentialAuthBody),
                                               service: "keystone", operation: "application credential token"))
        #expect(demo.status == 201)
        let token = try #require(demo.header("X-Subject-Token"))
        let body = try #require(try Self.json(demo)["token"] as? [String: Any])
        let catalog = try #require(body["catalog"] as? [[String: Any]])
        let image = try #require(catalog.first { $0["type"] as? String == "image" })
        let urls = (image["endpoints"] as? [[String: Any]] ?? []).compactMap { $0["url"] as? String }
        #expect(urls.contains(glance.endpoint.absoluteString))

        #expect {
            try client.send(HTTPRequest("GET", glance.endpoint.appendingPathComponent("v2/images"),
                                        service: "glance", operation: "list images"))
        } throws: { error in
            guard case let CloudError.http(_, _, status, _, _) = error else { return false }
            return status == 401
        }
        let id = try Self.createImage(client, at: glance.endpoint, headers: ["X-Auth-Token": token])
        let shown = try Self.json(client.send(HTTPRequest("GET", glance.endpoint.appendingPathComponent("v2/images/\(id)"),
                                                          headers: ["X-Auth-Token": token], service: "glance", operation: "show image")))
        #expect(shown["owner"] as? String == keystone.demoProjectID)
        #expect(FileManager.default.fileExists(atPath: keystone.cloudsYAML))
        print("CloudServersTests: keystone + glance up and checked in \(clock.now - started)")
    }

    @Test func motoAnswersAndAFaultProxyInFrontOfItIsRetried() throws {
        let clock = ContinuousClock()
        let started = clock.now
        let moto = try MotoServer.start()
        defer { moto.stop() }
        let motoUp = clock.now - started
        #expect(moto.accessKeyID.hasPrefix("AKIA"))
        #expect(!moto.secretAccessKey.isEmpty)
        #expect(moto.region == "us-east-1")

        let retries = Retries()
        let client = retries.client()
        let direct = try client.send(HTTPRequest("GET", moto.endpoint.appendingPathComponent("moto-api/"),
                                                 service: "moto", operation: "dashboard"))
        #expect(direct.status == 200)

        let proxy = try FaultProxy.start(upstream: moto.endpoint, rules: [.fail(first: 1, status: 503, method: "GET", path: "^/moto-api/")])
        defer { proxy.stop() }
        let proxied = try client.send(HTTPRequest("GET", proxy.endpoint.appendingPathComponent("moto-api/"),
                                                  service: "moto", operation: "dashboard"))
        #expect(proxied.status == 200)
        #expect(proxy.injectedFaults == 1)
        #expect(retries.seen == 1)

        let before = moto.credentials
        try moto.reset()
        #expect(moto.credentials != before)
        #expect(moto.accessKeyID.hasPrefix("AKIA"))
        print("CloudServersTests: moto up in \(motoUp), whole test \(clock.now - started)")
    }
}
