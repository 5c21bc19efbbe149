import Foundation
import Testing
import TestSupport

/// `--upload aws-ebs` and `--upload aws-s3` against a real moto server in its signature-checking
/// mode (every request's SigV4 signature verified), started per test on 127.0.0.1. What landed is
/// read back with boto3 (Tests/Tools/aws-readback.py), an independent client, and compared byte
/// for byte with the local output; faults come from a proxy in front of moto.
struct AWSUploadTests {
    func environment(_ moto: MotoServer, endpoint: URL? = nil, secret: String? = nil) -> [String: String] {
        ["AWS_ACCESS_KEY_ID": moto.accessKeyID, "AWS_SECRET_ACCESS_KEY": secret ?? moto.secretAccessKey,
         "AWS_ENDPOINT_URL": (endpoint ?? moto.endpoint).absoluteString, "AWS_REGION": moto.region,
         // moto's snapshots and images are ready at once; AWS's take minutes and are polled every 10 s.
         "REHOST_AWS_POLL_SECONDS": "0.1",
         "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent", "AWS_CONFIG_FILE": "/nonexistent"]
    }

    func readback(_ moto: MotoServer, _ arguments: [String]) throws -> CommandResult {
        try Command.run(CloudServers.motoPython, ["\(Fixture.repositoryRoot)/Tests/Tools/aws-readback.py"] + arguments,
                        environment: environment(moto)).requireSuccess()
    }

    func json(_ result: CommandResult) throws -> Any {
        try JSONSerialization.jsonObject(with: Data(result.stdoutBytes))
    }

    func uploadReport(_ result: CommandResult) throws -> [String: Any] {
        let document = try #require(try json(result) as? [String: Any])
        if let uploads = document["uploads"] as? [[String: Any]] { return try #require(uploads.first) }
        return try #require(document["upload"] as? [String: Any])
    }

    func snapshots(_ moto: MotoServer, describedAs name: String) throws -> [[String: Any]] {
        let all = try #require(try json(try readback(moto, ["snapshots"])) as? [[String: Any]])
        return all.filter { ($0["description"] as? String)?.hasPrefix(name + ",") == true }
    }

    func size(_ path: String) throws -> UInt64 {
        try #require(try FileManager.default.attributesOfItem(atPath: path)[.size] as? UInt64)
    }

    /// The Xen fixture converted with `--upload aws-ebs` beside a local raw disk: the snapshot,
    /// read back block by block by boto3, is that disk byte for byte; only blocks holding data
    /// were sent; the AMI is registered and available. The same disk through `export --upload`
    /// sends the same blocks (the same linear checksum).
    @Test func convertedFixtureBecomesAnEBSSnapshotAndAnAMI() throws {
        let moto = try MotoServer.start()
        defer { moto.stop() }
        let dir = try TemporaryDirectory(prefix: "rehost-ebs")
        let fixture = try Fixture.xenInstance()
        let local = dir.file("centos5.raw")
        let result = try Command.runRehost(["convert", fixture.imagePath, "-o", local, "--upload", "aws-ebs", "--image-name", "centos5-ebs",
                                            "--json"], environment: environment(moto))
        #expect(result.status == 0, "\(result.stderr)")
        let upload = try uploadReport(result)
        let snapshot = try #require(upload["snapshotID"] as? String)
        let ami = try #require(upload["imageID"] as? String)
        #expect(snapshot.hasPrefix("snap-") && ami.hasPrefix("ami-"))
        let diskSize = try size(local)
        let blockSize: UInt64 = 524_288
        let sent = try #require(upload["blocksSent"] as? Int)
        let skipped = try #require(upload["blocksSkipped"] as? Int)
        #expect(UInt64(sent + skipped) == (diskSize + blockSize - 1) / blockSize)
        #expect(sent > 0 && skipped > sent, "a converted disk is mostly empty: \(sent) sent, \(skipped) skipped")

        let back = dir.file("snapshot.raw")
        let blocks = try #require(try json(try readback(moto, ["ebs-raw", snapshot, back, String(diskSize)])) as? [String: Int])
        #expect(blocks["blocks"] == sent)
        #expect(try Command.run("cmp", [back, local]).status == 0, "the snapshot differs from the local disk")

        let images = try #require(try json(try readback(moto, ["image", ami])) as? [[String: Any]])
        #expect(images.first?["State"] as? String == "available")
        #expect(images.first?["Name"] as? String == "centos5-ebs")

        let again = try Command.runRehost(["export", local, "--upload", "aws-ebs", "--image-name", "again", "--no-register", "--json"],
                                          environment: environment(moto))
        #expect(again.status == 0, "\(again.stderr)")
        let second = try uploadReport(again)
        #expect(second["imageID"] == nil)
        #expect((second["checksums"] as? [String: String])?["sha256-linear"] == (upload["checksums"] as? [String: String])?["sha256-linear"])
    }

    /// A converted fixture as a streamOptimized VMDK through S3 multipart with `--aws-import
    /// none`: the object is the local VMDK byte for byte, with S3's md5-of-md5s ETag. A raw disk
    /// sent with `rehost upload` becomes a VMDK on the way, streamed part by part as it is
    /// written (nothing in $TMPDIR), and reads back as the same disk (qemu-img compare); 503s on
    /// parts are retried, and parts that never go through exit 75 and leave no multipart upload.
    /// ImportImage itself cannot run here (moto answers it with HTTP 500, NotImplemented): asking
    /// for it exits 75 and deletes the object made for it.
    @Test func convertedFixtureGoesToS3AsAVMDK() throws {
        let moto = try MotoServer.start()
        defer { moto.stop() }
        let dir = try TemporaryDirectory(prefix: "rehost-s3")
        let fixture = try Fixture.xenInstance()
        let local = dir.file("centos5.vmdk")
        let raw = dir.file("centos5.raw")
        let result = try Command.runRehost(["convert", fixture.imagePath, "-o", local, "-o", raw, "--upload", "aws-s3", "--s3-bucket", "imports",
                                            "--create-bucket", "--aws-import", "none", "--json"], environment: environment(moto))
        #expect(result.status == 0, "\(result.stderr)")
        let upload = try uploadReport(result)
        #expect(upload["location"] as? String == "s3://imports/centos5.vmdk")
        let back = dir.file("object.vmdk")
        _ = try readback(moto, ["s3-get", "imports", "centos5.vmdk", back])
        #expect(try Command.run("cmp", [back, local]).status == 0)
        #expect((upload["checksums"] as? [String: String])?["etag"]?.contains("-") == true)

        let scratch = dir.file("tmp")
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        let proxy = try FaultProxy.start(upstream: moto.endpoint, rules: [.fail(first: 2, status: 503, method: "PUT", path: "partNumber=")])
        defer { proxy.stop() }
        let streamed = try Command.runRehost(["upload", raw, "--to", "aws-s3", "--s3-bucket", "imports", "--s3-key", "streamed.vmdk",
                                              "--aws-import", "none", "--json"],
                                             environment: environment(moto, endpoint: proxy.endpoint).merging(["TMPDIR": scratch]) { $1 })
        #expect(streamed.status == 0, "\(streamed.stderr)")
        #expect(proxy.injectedFaults == 2, "\(proxy.faults)")
        #expect(try uploadReport(streamed)["retries"] as? Int == 2)
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch).isEmpty)
        _ = try readback(moto, ["s3-get", "imports", "streamed.vmdk", back])
        let compare = try Command.run("qemu-img", ["compare", "-f", "vmdk", "-F", "raw", back, raw])
        #expect(compare.status == 0, "\(compare.stdout)\(compare.stderr)")

        let failing = try FaultProxy.start(upstream: moto.endpoint, rules: [.fail(first: 1000, status: 503, method: "PUT", path: "partNumber=")])
        defer { failing.stop() }
        let failed = try Command.runRehost(["upload", raw, "--to", "aws-s3", "--s3-bucket", "imports", "--s3-key", "never.vmdk",
                                            "--aws-import", "none"], environment: environment(moto, endpoint: failing.endpoint))
        #expect(failed.status == 75, "\(failed.stderr)")
        #expect(failed.stderr.hasPrefix("rehost: error: s3 upload part"), "\(failed.stderr)")
        let uploads = try #require(try json(try readback(moto, ["multipart-uploads", "imports"])) as? [String])
        #expect(!uploads.contains("never.vmdk"), "the failed multipart upload was left behind")

        let importing = try Command.runRehost(["upload", local, "--to", "aws-s3", "--s3-bucket", "imports", "--s3-key", "import-me.vmdk"],
                                              environment: environment(moto))
        #expect(importing.status == 75, "\(importing.stderr)")
        #expect(importing.stderr.hasPrefix("rehost: error: ec2 import image: HTTP 500"), "\(importing.stderr)")
        let missing = try Command.run(CloudServers.motoPython, ["\(Fixture.repositoryRoot)/Tests/Tools/aws-readback.py", "s3-get", "imports",
                                                                 "import-me.vmdk", dir.file("gone")], environment: environment(moto))
        #expect(missing.status != 0, "the object made for the failed import is still there")
    }

    /// Through a proxy in front of moto: two 503s on block uploads and one connection dropped in
    /// the middle of a block are retried, and the snapshot is still the disk byte for byte. Blocks
    /// that never go through exit 75 and leave no snapshot; a wrong secret exits 1 with AWS's
    /// code and without the secret.
    @Test func faultsAreRetriedAndFailuresLeaveNoSnapshot() throws {
        let moto = try MotoServer.start()
        defer { moto.stop() }
        let dir = try TemporaryDirectory(prefix: "rehost-ebs-faults")
        let disk = dir.file("disk.raw")
        var generator = SplitMix(seed: 9)
        var bytes = [UInt8](repeating: 0, count: 24 << 20)
        // Data in a few places: 3 MiB at 1 MiB, 1 MiB at 20 MiB; the rest stays zero.
        for range in [(1 << 20)..<(4 << 20), (20 << 20)..<(21 << 20)] {
            for index in range { bytes[index] = UInt8(truncatingIfNeeded: generator.next()) }
        }
        try Data(bytes).write(to: URL(fileURLWithPath: disk))

        let proxy = try FaultProxy.start(upstream: moto.endpoint, rules: [
            .fail(first: 2, status: 503, method: "PUT", path: "/blocks/"),
            .drop(afterBytes: 100_000, method: "PUT", path: "/blocks/"),
        ])
        defer { proxy.stop() }
        let result = try Command.runRehost(["upload", disk, "--to", "aws-ebs", "--image-name", "flaky", "--json"],
                                           environment: environment(moto, endpoint: proxy.endpoint))
        #expect(result.status == 0, "\(result.stderr)")
        #expect(proxy.injectedFaults == 3, "\(proxy.faults)")
        let upload = try uploadReport(result)
        #expect(upload["retries"] as? Int == 3)
        #expect(upload["blocksSent"] as? Int == 8)
        let back = dir.file("back.raw")
        _ = try readback(moto, ["ebs-raw", try #require(upload["snapshotID"] as? String), back, String(bytes.count)])
        #expect(try Command.run("cmp", [back, disk]).status == 0)

        let failing = try FaultProxy.start(upstream: moto.endpoint, rules: [.fail(first: 1000, status: 503, method: "PUT", path: "/blocks/")])
        defer { failing.stop() }
        let failed = try Command.runRehost(["upload", disk, "--to", "aws-ebs", "--image-name", "doomed"],
                                           environment: environment(moto, endpoint: failing.endpoint))
        #expect(failed.status == 75, "\(failed.stderr)")
        #expect(failed.stderr.hasPrefix("rehost: error: ebs PutSnapshotBlock"), "\(failed.stderr)")
        #expect(failed.stderr.split(separator: "\n").count == 1)
        #expect(try snapshots(moto, describedAs: "doomed").isEmpty, "the failed upload's snapshot was left behind")

        let denied = try Command.runRehost(["upload", disk, "--to", "aws-ebs", "--image-name", "denied"],
                                           environment: environment(moto, secret: "wrong-secret-value"))
        #expect(denied.status == 1, "\(denied.stderr)")
        #expect(denied.stderr.hasPrefix("rehost: error: ebs StartSnapshot: HTTP 403"), "\(denied.stderr)")
        #expect(!denied.stderr.contains("wrong-secret-value"))
        #expect(try snapshots(moto, describedAs: "denied").isEmpty)
    }

    /// The AMI's ENA and SR-IOV flags follow the drivers of the kernel the disk boots: the
    /// fixture's kernel has neither; listed in its modules.dep (what modprobe goes by), ena is
    /// found. (moto keeps no AMI attribute, so the flags sent are checked in EC2ClientTests' form.)
    @Test func bootKernelsCloudNetworkDriversAreFound() throws {
        let dir = try TemporaryDirectory(prefix: "rehost-ena")
        let fixture = try Fixture.xenInstance()
        func drivers(_ image: String) throws -> [String]? {
            let result = try Command.runRehost(["convert", image, "-o", dir.file("x.raw"), "--dry-run", "--json"])
            #expect(result.status == 0, "\(result.stderr)")
            let report = try #require(try json(result) as? [String: Any])
            return (report["bootKernel"] as? [String: Any])?["cloudNetworkDrivers"] as? [String]
        }
        #expect(try drivers(fixture.imagePath) == [])
        let copy = dir.file("guest.img")
        _ = try Command.run("cp", ["--sparse=always", fixture.imagePath, copy]).requireSuccess()
        let modules = try Command.runRehost(["ls", copy, "/lib/modules"]).requireSuccess().stdout
        let release = try #require(modules.split(separator: "\n").map(String.init).first { !$0.contains("xen") })
        _ = try Command.runRehost(["customize", copy, "--append-line",
                                   "/lib/modules/\(release)/modules.dep:kernel/drivers/net/ethernet/amazon/ena/ena.ko:"]).requireSuccess()
        #expect(try drivers(copy) == ["ena"])
    }
}
