import Foundation
import Testing
import TestSupport

/// `--upload glance` and `rehost upload --to glance` against a real Glance 33 behind a real
/// Keystone 30, both on 127.0.0.1 and started per test (Tests/Tools/cloud-servers.sh): what
/// lands in Glance is downloaded and compared byte for byte with the local file, the properties
/// Rehost sets are read back, and faults come from a proxy in front of the real Glance.
struct GlanceUploadTests {
    /// Glance's REST API as an admin sees it, through curl: the test's own view, not Rehost's.
    struct GlanceAdmin {
        let glance: URL
        let token: String

        init(_ server: GlanceServer) throws {
            let keystone = try #require(server.keystone)
            let dir = try TemporaryDirectory(prefix: "glance-admin")
            let body = dir.file("auth.json")
            try keystone.passwordAuthBody.write(to: URL(fileURLWithPath: body))
            let result = try Command.run("curl", ["-s", "-i", "-m", "20", "-X", "POST", "-H", "Content-Type: application/json",
                                                  "--data-binary", "@\(body)", keystone.authURL.absoluteString + "/auth/tokens"]).requireSuccess()
            let line = result.stdout.split(whereSeparator: \.isNewline).first { $0.lowercased().hasPrefix("x-subject-token:") }
            token = try #require(line).split(separator: ":", maxSplits: 1)[1].trimmingCharacters(in: .whitespaces)
            glance = server.endpoint
        }

        func json(_ path: String) throws -> [String: Any] {
            let result = try Command.run("curl", ["-s", "-f", "-m", "20", "-H", "X-Auth-Token: \(token)", glance.absoluteString + path]).requireSuccess()
            return try #require(try JSONSerialization.jsonObject(with: Data(result.stdoutBytes)) as? [String: Any])
        }

        /// Every image (any status) named `name`.
        func images(named name: String) throws -> [[String: Any]] {
            let all = try json("/v2/images?limit=1000")["images"] as? [[String: Any]] ?? []
            return all.filter { $0["name"] as? String == name }
        }

        func download(_ id: String, to path: String) throws {
            _ = try Command.run("curl", ["-s", "-f", "-m", "120", "-H", "X-Auth-Token: \(token)", "-o", path,
                                         glance.absoluteString + "/v2/images/\(id)/file"]).requireSuccess()
        }
    }

    func uploadReport(_ result: CommandResult) throws -> [String: Any] {
        let document = try #require(try JSONSerialization.jsonObject(with: Data(result.stdoutBytes)) as? [String: Any])
        if let uploads = document["uploads"] as? [[String: Any]] { return try #require(uploads.first) }
        return try #require(document["upload"] as? [String: Any])
    }

    func sameBytes(_ a: String, _ b: String) throws -> Bool {
        try Command.run("cmp", [a, b]).status == 0
    }

    /// clouds.yaml for the admin user, optionally with Glance's URL overridden (a fault proxy).
    func cloudsYAML(_ keystone: KeystoneServer, in dir: TemporaryDirectory, password: String? = nil, imageEndpoint: URL? = nil) throws -> String {
        var text = """
            clouds:
              test:
                auth:
                  auth_url: \(keystone.authURL.absoluteString)
                  username: \(keystone.adminUser)
                  password: \(password ?? keystone.adminPassword)
                  project_name: \(keystone.adminProject)
                  user_domain_name: Default
                  project_domain_name: Default
                region_name: RegionOne

            """
        if let imageEndpoint { text += "    image_endpoint_override: \(imageEndpoint.absoluteString)\n" }
        let path = dir.file("clouds-\(UUID().uuidString.prefix(8)).yaml")
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// The Xen fixture converted with `--upload glance --os-cloud test` and a local qcow2: the
    /// image Glance holds is that qcow2, byte for byte, active, with the MD5 and SHA-512 Glance
    /// computed equal to the file's, and the properties of a converted KVM guest. Then the same
    /// file sent by `rehost upload` with an application credential and the glance-direct import,
    /// and a convert that keeps nothing locally (its temporary qcow2 is gone afterwards).
    @Test func convertedFixtureLandsInGlanceByteForByte() throws {
        let server = try GlanceServer.start(keystone: true)
        defer { server.stop() }
        let keystone = try #require(server.keystone)
        let admin = try GlanceAdmin(server)
        let dir = try TemporaryDirectory(prefix: "rehost-glance")
        let fixture = try Fixture.xenInstance()
        let local = dir.file("centos5.qcow2")
        let environment = ["OS_CLIENT_CONFIG_FILE": keystone.cloudsYAML]
        let result = try Command.runRehost(["convert", fixture.imagePath, "-o", local, "--upload", "glance", "--os-cloud", "test",
                                            "--image-name", "centos5-kvm", "--visibility", "private", "--property", "hw_qemu_guest_agent=no",
                                            "--json"], environment: environment)
        #expect(result.status == 0, "\(result.stderr)")
        let upload = try uploadReport(result)
        let id = try #require(upload["imageID"] as? String)
        let image = try admin.json("/v2/images/\(id)")
        #expect(image["status"] as? String == "active")
        #expect(image["disk_format"] as? String == "qcow2")
        #expect(image["container_format"] as? String == "bare")
        #expect(image["visibility"] as? String == "private")
        #expect(image["hw_disk_bus"] as? String == "virtio")
        #expect(image["hw_vif_model"] as? String == "virtio")
        #expect(image["hw_firmware_type"] as? String == "bios")
        #expect(image["os_distro"] as? String == "centos")
        #expect(image["os_version"] as? String != nil)
        #expect(image["hw_qemu_guest_agent"] as? String == "no")
        #expect(image["rehost_upload_attempt"] == nil, "the attempt's mark stayed on the image")
        let checksums = try #require(upload["checksums"] as? [String: String])
        #expect(checksums["md5"] == image["checksum"] as? String)
        #expect(checksums["sha512"] == image["os_hash_value"] as? String)
        let downloaded = dir.file("downloaded.qcow2")
        try admin.download(id, to: downloaded)
        #expect(try sameBytes(downloaded, local), "Glance's copy differs from the local qcow2")
        #expect((upload["bytesSent"] as? Int).map(UInt64.init) == (try FileManager.default.attributesOfItem(atPath: local)[.size] as? UInt64))

        // The same file again, by the import workflow, with an application credential.
        let second = try Command.runRehost(["upload", local, "--to", "glance", "--os-cloud", "test-appcred", "--glance-method", "glance-direct",
                                            "--image-name", "centos5-import", "--json"], environment: environment)
        #expect(second.status == 0, "\(second.stderr)")
        let imported = try #require(try uploadReport(second)["imageID"] as? String)
        #expect(try admin.json("/v2/images/\(imported)")["status"] as? String == "active")
        try admin.download(imported, to: downloaded)
        #expect(try sameBytes(downloaded, local))

        // Nothing kept locally: the qcow2 is written front to back, tables first (planned from the
        // raw disk's allocation), straight into the PUT's body.
        let scratch = dir.file("tmp")
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        let bare = try Command.runRehost(["convert", fixture.imagePath, "--upload", "glance", "--os-cloud", "test", "--image-name", "bare",
                                          "--json"], environment: environment.merging(["TMPDIR": scratch]) { $1 })
        #expect(bare.status == 0, "\(bare.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch).isEmpty)
        let bareID = try #require(try uploadReport(bare)["imageID"] as? String)
        // Made at the first byte, before the guest was known: its properties follow.
        let bareImage = try admin.json("/v2/images/\(bareID)")
        #expect(bareImage["hw_disk_bus"] as? String == "virtio")
        #expect(bareImage["os_distro"] as? String == "centos")
        #expect(bareImage["rehost_upload_attempt"] == nil)
        try admin.download(bareID, to: downloaded)
        let check = try Command.run("qemu-img", ["check", downloaded])
        #expect(check.status == 0, "\(check.stdout)\(check.stderr)")
        #expect(try uploadReport(bare)["bytesSent"] as? Int == Int(try FileManager.default.attributesOfItem(atPath: downloaded)[.size] as? UInt64 ?? 0))
        #expect(try admin.images(named: "bare").count == 1)
    }

    /// A 503 on the create and a connection dropped 1 MiB into the data, both from a proxy in
    /// front of the real Glance: the upload is retried (the half-sent image deleted), lands once,
    /// byte for byte, and says it retried. Faults that do not pass exit 75 and leave no image; a
    /// wrong password exits 1 with Keystone's message.
    @Test func faultsAreRetriedAndLeaveNothingHalfMade() throws {
        let server = try GlanceServer.start(keystone: true)
        defer { server.stop() }
        let keystone = try #require(server.keystone)
        let admin = try GlanceAdmin(server)
        let dir = try TemporaryDirectory(prefix: "rehost-glance-faults")
        let disk = dir.file("disk.raw")
        var generator = SplitMix(seed: 5)
        var bytes = [UInt8](repeating: 0, count: 8 << 20)
        for index in stride(from: 0, to: bytes.count, by: 8) {
            let value = generator.next()
            for shift in 0..<8 { bytes[index + shift] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(shift))) }
        }
        try Data(bytes).write(to: URL(fileURLWithPath: disk))

        let proxy = try FaultProxy.start(upstream: server.endpoint, rules: [
            .fail(first: 1, status: 503, method: "POST", path: "/v2/images$"),
            .drop(afterBytes: 1 << 20, method: "PUT", path: "/file$"),
        ])
        defer { proxy.stop() }
        let clouds = try cloudsYAML(keystone, in: dir, imageEndpoint: proxy.endpoint)
        let result = try Command.runRehost(["upload", disk, "--to", "glance", "--os-cloud", "test", "--image-name", "flaky", "--json"],
                                           environment: ["OS_CLIENT_CONFIG_FILE": clouds])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(proxy.injectedFaults == 2, "\(proxy.faults)")
        #expect(try uploadReport(result)["retries"] as? Int == 2)
        let images = try admin.images(named: "flaky")
        #expect(images.count == 1, "\(images.map { $0["id"] ?? "" })")
        let id = try #require(images.first?["id"] as? String)
        let downloaded = dir.file("downloaded.raw")
        try admin.download(id, to: downloaded)
        #expect(try sameBytes(downloaded, disk))

        // Every data PUT dropped: the retries run out; exit 75 (try again later), no image left.
        let dropping = try FaultProxy.start(upstream: server.endpoint, rules: [.drop(afterBytes: 65536, times: 100, method: "PUT", path: "/file$")])
        defer { dropping.stop() }
        let broken = try cloudsYAML(keystone, in: dir, imageEndpoint: dropping.endpoint)
        let failed = try Command.runRehost(["upload", disk, "--to", "glance", "--os-cloud", "test", "--image-name", "never"],
                                           environment: ["OS_CLIENT_CONFIG_FILE": broken])
        #expect(failed.status == 75, "\(failed.stderr)")
        #expect(failed.stderr.hasPrefix("rehost: error: glance upload image data: no answer from http://127.0.0.1:"), "\(failed.stderr)")
        #expect(failed.stderr.split(separator: "\n").count == 1)
        #expect(try admin.images(named: "never").isEmpty)

        // A qcow2 streamed as it is written cannot be sent twice: the dropped connection ends the
        // run with 75 for a batch to retry, and the half-made image is deleted.
        let streamed = try Command.runRehost(["upload", disk, "--to", "glance", "--os-cloud", "test", "--disk-format", "qcow2",
                                              "--image-name", "streamed-never"], environment: ["OS_CLIENT_CONFIG_FILE": broken])
        #expect(streamed.status == 75, "\(streamed.stderr)")
        #expect(streamed.stderr.hasPrefix("rehost: error: glance upload image data: no answer from http://127.0.0.1:"), "\(streamed.stderr)")
        #expect(try admin.images(named: "streamed-never").isEmpty)

        let wrong = try cloudsYAML(keystone, in: dir, password: "not-the-password")
        let denied = try Command.runRehost(["upload", disk, "--to", "glance", "--os-cloud", "test", "--image-name", "denied"],
                                           environment: ["OS_CLIENT_CONFIG_FILE": wrong])
        #expect(denied.status == 1)
        #expect(denied.stderr == "rehost: error: keystone authenticate: HTTP 401 Unauthorized: The request you have made requires authentication.\n")
        #expect(!denied.stderr.contains("not-the-password"))
        #expect(try admin.images(named: "denied").isEmpty)
    }

    /// A store that is full for this user (Glance's storage quota): Glance's 413 and its reason in
    /// one line, exit 1 (retrying would not help), and the queued image deleted.
    @Test func aFullStoreIsReportedAndTheImageDeleted() throws {
        let server = try GlanceServer.start(keystone: true, environment: ["OS_DEFAULT__USER_STORAGE_QUOTA": "1MB"])
        defer { server.stop() }
        let keystone = try #require(server.keystone)
        let admin = try GlanceAdmin(server)
        let dir = try TemporaryDirectory(prefix: "rehost-glance-full")
        let disk = dir.file("disk.raw")
        try Data((0..<(4 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }).write(to: URL(fileURLWithPath: disk))
        let result = try Command.runRehost(["upload", disk, "--to", "glance", "--os-cloud", "test", "--image-name", "too-big"],
                                           environment: ["OS_CLIENT_CONFIG_FILE": keystone.cloudsYAML])
        #expect(result.status == 1, "\(result.stderr)")
        #expect(result.stderr.hasPrefix("rehost: error: glance upload image data: HTTP 413"), "\(result.stderr)")
        #expect(result.stderr.lowercased().contains("quota"), "\(result.stderr)")
        #expect(result.stderr.split(separator: "\n").count == 1)
        #expect(try admin.images(named: "too-big").isEmpty)
    }
}
