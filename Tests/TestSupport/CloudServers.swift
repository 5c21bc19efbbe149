import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Real cloud servers for the upload-adapter tests, started on 127.0.0.1 by
/// `Tests/Tools/cloud-servers.sh` from the pinned venvs that `scripts/install-deps.sh` makes:
/// moto (S3, EBS direct, EC2) in signature-checking mode, Glance 33 and Keystone 30, and
/// `fault-proxy.py` in front of any of them. Each server lives in its own temporary directory
/// (config, state, logs, pid files) and is stopped by its pid when `stop()` is called or the
/// object goes away; a watchdog also stops it if the test process dies. A server that does not
/// come up throws `CloudServerError` with the end of its log: tests fail, never skip.
public enum CloudServers {
    public static var script: String { "\(Fixture.repositoryRoot)/Tests/Tools/cloud-servers.sh" }

    /// Free TCP ports on 127.0.0.1, all different: each is bound (port 0) while the next is taken.
    public static func freePorts(_ count: Int) throws -> [Int] {
        var sockets: [Int32] = []
        defer { for fd in sockets { close(fd) } }
        var ports: [Int] = []
        for _ in 0..<count {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { throw CloudServerError(server: "ports", reason: "socket: \(String(cString: strerror(errno)))") }
            sockets.append(fd)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = 0
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let bound = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                    bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
                }
            }
            guard bound else { throw CloudServerError(server: "ports", reason: "bind: \(String(cString: strerror(errno)))") }
            ports.append(Int(UInt16(bigEndian: address.sin_port)))
        }
        return ports
    }

    public static func freePort() throws -> Int { try freePorts(1)[0] }

    /// The Python of the moto venv (it has boto3): for independent read-backs.
    public static var motoPython: String {
        let venvs = ProcessInfo.processInfo.environment["REHOST_CLOUD_VENVS"] ?? "/var/cache/rehost/cloud-venvs"
        return "\(venvs)/moto/bin/python"
    }

    /// Runs a subcommand of the script; on failure throws with its stderr (which ends with the
    /// server's log tail).
    @discardableResult
    static func run(_ server: String, _ arguments: [String], environment: [String: String] = [:]) throws -> CommandResult {
        var environment = environment
        environment["REHOST_CLOUD_OWNER_PID"] = String(getpid())
        let result = try Command.run(script, arguments, environment: environment, timeout: .seconds(300))
        guard result.succeeded else {
            throw CloudServerError(server: server, reason: "`\(result.commandLine)` \(result.timedOut ? "timed out" : "exited with status \(result.status)")",
                                   log: result.stdout + result.stderr)
        }
        return result
    }

    /// `NAME=value` lines, as the script writes them.
    static func readEnvironment(_ path: String, server: String) throws -> [String: String] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw CloudServerError(server: server, reason: "\(path) missing")
        }
        var values: [String: String] = [:]
        for line in text.split(separator: "\n") {
            guard let equals = line.firstIndex(of: "=") else { continue }
            values[String(line[..<equals])] = String(line[line.index(after: equals)...])
        }
        return values
    }
}

/// A server that would not start or answer, with the end of its log.
public struct CloudServerError: Error, CustomStringConvertible, Sendable {
    public let server: String
    public let reason: String
    public let log: String

    public init(server: String, reason: String, log: String = "") {
        self.server = server
        self.reason = reason
        self.log = log
    }

    public var description: String {
        let tail = log.split(separator: "\n", omittingEmptySubsequences: false).suffix(40).joined(separator: "\n")
        return tail.isEmpty ? "\(server): \(reason)" : "\(server): \(reason)\n\(tail)"
    }
}

/// A temporary directory whose servers `cloud-servers.sh stop` ends, once.
public final class ServerDirectory: Sendable {
    public let directory: TemporaryDirectory
    private let stopped = Mutex(false)

    init(prefix: String) throws {
        directory = try TemporaryDirectory(prefix: prefix)
    }

    public var path: String { directory.path }

    /// TERM to every pid file's process, KILL after 10 s; safe to call twice.
    public func stop() {
        let already = stopped.withLock { value in
            defer { value = true }
            return value
        }
        if !already { _ = try? Command.run(CloudServers.script, ["stop", path], timeout: .seconds(60)) }
    }

    deinit { stop() }

    /// The last lines of a log file in this directory, for failure messages.
    public func logTail(_ name: String, lines: Int = 40) -> String {
        let text = (try? String(contentsOfFile: "\(path)/\(name)", encoding: .utf8)) ?? ""
        return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
    }
}

/// moto in auth mode: every request must carry a SigV4 signature made with `accessKeyID` and
/// `secretAccessKey` (an IAM user with an allow-all policy), region us-east-1. One server answers
/// S3 (path-style), EC2, EBS direct and IAM, routed by the signature's service name.
public final class MotoServer: Sendable {
    public struct Credentials: Sendable, Equatable {
        public let accessKeyID: String
        public let secretAccessKey: String
    }

    public let state: ServerDirectory
    public let port: Int
    /// http://127.0.0.1:PORT
    public let endpoint: URL
    public let region: String
    private let current: Mutex<Credentials>

    /// The IAM user's key; `reset()` replaces it.
    public var credentials: Credentials { current.withLock { $0 } }
    public var accessKeyID: String { credentials.accessKeyID }
    public var secretAccessKey: String { credentials.secretAccessKey }

    private init(state: ServerDirectory, port: Int, endpoint: URL, region: String, credentials: Credentials) {
        self.state = state
        self.port = port
        self.endpoint = endpoint
        self.region = region
        self.current = Mutex(credentials)
    }

    /// The key, endpoint and region the script wrote to moto.env.
    private static func readEnvironment(_ state: ServerDirectory) throws -> (URL, String, Credentials) {
        let environment = try CloudServers.readEnvironment("\(state.path)/moto.env", server: "moto")
        guard let key = environment["AWS_ACCESS_KEY_ID"], let secret = environment["AWS_SECRET_ACCESS_KEY"],
              let url = environment["AWS_ENDPOINT_URL"].flatMap(URL.init(string:)) else {
            throw CloudServerError(server: "moto", reason: "moto.env incomplete: \(environment.keys.sorted())")
        }
        return (url, environment["AWS_REGION"] ?? "us-east-1", Credentials(accessKeyID: key, secretAccessKey: secret))
    }

    /// Starts moto on a free port (about 1 s) and makes the IAM user.
    public static func start() throws -> MotoServer {
        let state = try ServerDirectory(prefix: "rehost-moto")
        let port = try CloudServers.freePort()
        do {
            try CloudServers.run("moto", ["start-moto", state.path, String(port)])
            let (endpoint, region, credentials) = try readEnvironment(state)
            return MotoServer(state: state, port: port, endpoint: endpoint, region: region, credentials: credentials)
        } catch {
            state.stop()
            throw error
        }
    }

    /// Forgets every bucket, snapshot, image and the IAM user (POST /moto-api/reset), then makes a
    /// new IAM user: `credentials` change (about 0.5 s).
    public func reset() throws {
        try CloudServers.run("moto", ["moto-reset", state.path])
        let (_, _, credentials) = try Self.readEnvironment(state)
        current.withLock { $0 = credentials }
    }

    public func stop() { state.stop() }
}

/// Keystone 30 (fernet tokens, sqlite) with the admin user (password `password`, project admin),
/// a project `demo`, a user `demo` with role member and an application credential of that user.
public final class KeystoneServer: Sendable {
    public let state: ServerDirectory
    public let port: Int
    /// http://127.0.0.1:PORT/v3
    public let authURL: URL
    public let adminUser: String
    public let adminPassword: String
    public let adminProject: String
    public let demoUser: String
    public let demoUserID: String
    public let demoPassword: String
    public let demoProjectID: String
    public let applicationCredentialID: String
    public let applicationCredentialSecret: String
    /// clouds.yaml with the clouds `test` (admin, password) and `test-appcred`.
    public let cloudsYAML: String

    private init(state: ServerDirectory, port: Int, environment values: [String: String]) throws {
        func value(_ name: String) throws -> String {
            guard let value = values[name], !value.isEmpty else {
                throw CloudServerError(server: "keystone", reason: "keystone.env has no \(name)")
            }
            return value
        }
        self.state = state
        self.port = port
        guard let url = URL(string: try value("KEYSTONE_AUTH_URL")) else {
            throw CloudServerError(server: "keystone", reason: "keystone.env: bad KEYSTONE_AUTH_URL")
        }
        authURL = url
        adminUser = try value("KEYSTONE_ADMIN_USER")
        adminPassword = try value("KEYSTONE_ADMIN_PASSWORD")
        adminProject = try value("KEYSTONE_ADMIN_PROJECT")
        demoUser = try value("KEYSTONE_DEMO_USER")
        demoUserID = try value("KEYSTONE_DEMO_USER_ID")
        demoPassword = try value("KEYSTONE_DEMO_PASSWORD")
        demoProjectID = try value("KEYSTONE_DEMO_PROJECT_ID")
        applicationCredentialID = try value("KEYSTONE_APPCRED_ID")
        applicationCredentialSecret = try value("KEYSTONE_APPCRED_SECRET")
        cloudsYAML = "\(state.path)/clouds.yaml"
    }

    /// Starts Keystone on `port` (a free one if nil), about 5 s. With `imageEndpoint`, the catalog
    /// gets an `image` service whose public, internal and admin endpoints are that URL.
    public static func start(port: Int? = nil, imageEndpoint: URL? = nil) throws -> KeystoneServer {
        let state = try ServerDirectory(prefix: "rehost-keystone")
        let port = try port ?? CloudServers.freePort()
        do {
            try CloudServers.run("keystone", ["start-keystone", state.path, String(port)] + (imageEndpoint.map { [$0.absoluteString] } ?? []))
            return try KeystoneServer(state: state, port: port,
                                      environment: CloudServers.readEnvironment("\(state.path)/keystone.env", server: "keystone"))
        } catch {
            state.stop()
            throw error
        }
    }

    /// The JSON body of POST /v3/auth/tokens for the admin user, scoped to project admin.
    public var passwordAuthBody: Data {
        Data(#"{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"\#(adminUser)","domain":{"id":"default"},"password":"\#(adminPassword)"}}},"scope":{"project":{"name":"\#(adminProject)","domain":{"id":"default"}}}}}"#.utf8)
    }

    /// The JSON body of POST /v3/auth/tokens for the demo user's application credential.
    public var applicationCredentialAuthBody: Data {
        Data(#"{"auth":{"identity":{"methods":["application_credential"],"application_credential":{"id":"\#(applicationCredentialID)","secret":"\#(applicationCredentialSecret)"}}}}"#.utf8)
    }

    public func stop() { state.stop() }
}

/// Glance 33 under gunicorn: sqlite, one file store, import methods glance-direct, web-download
/// and copy-image. Without Keystone it runs the "trusted" pipeline: the identity comes from the
/// `trustedHeaders`; with Keystone it checks tokens (keystonemiddleware).
public final class GlanceServer: Sendable {
    public let state: ServerDirectory
    public let port: Int
    /// http://127.0.0.1:PORT (the API is under /v2)
    public let endpoint: URL
    /// The Keystone this Glance checks tokens with (its catalog lists `endpoint` as `image`).
    public let keystone: KeystoneServer?

    private init(state: ServerDirectory, port: Int, keystone: KeystoneServer?) {
        self.state = state
        self.port = port
        self.endpoint = URL(string: "http://127.0.0.1:\(port)")!
        self.keystone = keystone
    }

    /// Starts Glance on a free port: about 1.5 s, plus about 5 s for a Keystone of its own when
    /// `keystone` is true. `environment` reaches glance-api, e.g. `OS_DEFAULT__IMAGE_SIZE_CAP`
    /// or `OS_DEFAULT__USER_STORAGE_QUOTA` (oslo.config's OS_<GROUP>__<OPTION>).
    public static func start(keystone: Bool = false, environment: [String: String] = [:]) throws -> GlanceServer {
        let ports = try CloudServers.freePorts(keystone ? 2 : 1)
        let glanceURL = URL(string: "http://127.0.0.1:\(ports[0])")!
        let identity = keystone ? try KeystoneServer.start(port: ports[1], imageEndpoint: glanceURL) : nil
        let state: ServerDirectory
        do {
            state = try ServerDirectory(prefix: "rehost-glance")
        } catch {
            identity?.stop()
            throw error
        }
        do {
            try CloudServers.run("glance", ["start-glance", state.path, String(ports[0])] + (identity.map { [$0.authURL.absoluteString] } ?? []),
                                 environment: environment)
            return GlanceServer(state: state, port: ports[0], keystone: identity)
        } catch {
            state.stop()
            identity?.stop()
            throw error
        }
    }

    /// The headers the trusted pipeline takes the identity from (project and user: 32 hex digits).
    public static func trustedHeaders(projectID: String = "0123456789abcdef0123456789abcdef",
                                      userID: String = "fedcba9876543210fedcba9876543210",
                                      roles: String = "admin,member,reader") -> [String: String] {
        ["X-Identity-Status": "Confirmed", "X-Project-Id": projectID, "X-User-Id": userID, "X-Roles": roles]
    }

    /// Glance's own log (glance-api.log) and gunicorn's, for failure messages.
    public var logTail: String { state.logTail("glance/glance-api.log") + "\n" + state.logTail("glance/gunicorn.log") }

    public func stop() {
        state.stop()
        keystone?.stop()
    }
}

/// One fault for `FaultProxy`: it matches a method (any if nil) and a regex searched in the
/// request target (path and query), and fires `times` times, then lets requests through.
public struct FaultRule: Sendable, Encodable {
    public let action: String
    public let method: String?
    public let path: String
    public let times: Int
    public let status: Int?
    public let afterBytes: Int?

    enum CodingKeys: String, CodingKey {
        case action, method, path, times, status
        case afterBytes = "after_bytes"
    }

    /// Answers `status` (with a short text body, after reading the request's body) `first` times.
    public static func fail(first: Int = 1, status: Int = 503, method: String? = nil, path: String = "") -> FaultRule {
        FaultRule(action: "status", method: method, path: path, times: first, status: status, afterBytes: nil)
    }

    /// Reads `afterBytes` bytes of the request body, then closes the connection without an answer.
    public static func drop(afterBytes: Int, times: Int = 1, method: String? = nil, path: String = "") -> FaultRule {
        FaultRule(action: "drop", method: method, path: path, times: times, status: nil, afterBytes: afterBytes)
    }
}

/// `fault-proxy.py` on a free port of 127.0.0.1, forwarding to `upstream` with headers (Host
/// included) unchanged, so SigV4 signatures made for the proxy's address verify upstream.
public final class FaultProxy: Sendable {
    public let state: ServerDirectory
    public let port: Int
    /// http://127.0.0.1:PORT: send requests here instead of to the upstream.
    public let endpoint: URL
    public let upstream: URL

    private init(state: ServerDirectory, port: Int, upstream: URL) {
        self.state = state
        self.port = port
        self.endpoint = URL(string: "http://127.0.0.1:\(port)")!
        self.upstream = upstream
    }

    public static func start(upstream: URL, rules: [FaultRule]) throws -> FaultProxy {
        let state = try ServerDirectory(prefix: "rehost-fault-proxy")
        do {
            let rulesPath = "\(state.path)/rules.json"
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            try encoder.encode(rules).write(to: URL(fileURLWithPath: rulesPath))
            var base = upstream.absoluteString
            while base.hasSuffix("/") { base.removeLast() }
            try CloudServers.run("fault-proxy", ["start-fault-proxy", state.path, base, rulesPath])
            let text = (try? String(contentsOfFile: "\(state.path)/fault-proxy.port", encoding: .utf8)) ?? ""
            guard let port = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
                throw CloudServerError(server: "fault-proxy", reason: "no port in fault-proxy.port", log: state.logTail("fault-proxy.out"))
            }
            return FaultProxy(state: state, port: port, upstream: upstream)
        } catch {
            state.stop()
            throw error
        }
    }

    /// The injected faults so far, one line each: "FAULT <n> <status|drop> <method> <target>".
    public var faults: [String] {
        let text = (try? String(contentsOfFile: "\(state.path)/fault-proxy.log", encoding: .utf8)) ?? ""
        return text.split(separator: "\n").filter { $0.hasPrefix("FAULT ") }.map(String.init)
    }

    public var injectedFaults: Int { faults.count }

    public func stop() { state.stop() }
}
