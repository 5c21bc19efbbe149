import Foundation
import Testing
import TestSupport

/// `rehost context` (host-side context files and CDs) and `rehost convert --cloud-init` (a
/// NoCloud seed inside the converted guest), checked by readers that are not Rehost's: bash,
/// base64, gzip, isoinfo, debugfs and e2fsck.
struct ContextCommandTests {
    func files(_ directory: TemporaryDirectory) throws -> (key: String, script: String, config: String) {
        let key = directory.file("id.pub"), script = directory.file("run.sh"), config = directory.file("user.yaml")
        try "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKey alice@host\n# a comment\n\n".write(toFile: key, atomically: true, encoding: .utf8)
        try "#!/bin/sh\necho ran > /tmp/ran\n".write(toFile: script, atomically: true, encoding: .utf8)
        try "#cloud-config\nruncmd:\n  - [touch, /tmp/x]\n".write(toFile: config, atomically: true, encoding: .utf8)
        try Command.run("chmod", ["-R", "a+rwX", directory.path]).requireSuccess()
        return (key, script, config)
    }

    @Test func contextFileIsSourcedByBash() throws {
        let directory = try TemporaryDirectory()
        let (key, script, config) = try files(directory)
        let output = directory.file("context.sh")
        let result = try Command.runRehost(["context", "--ssh-key", key, "--user-data", "x-shellscript,\(script)",
                                            "--user-data", "cloud-config,\(config)", "--set", "HOSTNAME=vm1", "-o", output, "--json"],
                                           asUser: "nobody")
        #expect(result.status == 0, "\(result.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(result.stdoutBytes)) as? [String: Any]
        #expect(report?["sshKeys"] as? Int == 1)
        #expect(report?["userDataParts"] as? [String] == ["x-shellscript", "cloud-config"])
        let check = """
            . "$1" || exit 9
            [ "$CONTEXT_METHOD" = cloud-init ] || exit 10
            [ "$HOSTNAME" = vm1 ] || exit 11
            [ "$(printf %s "$CLOUD_INIT_AUTHORIZED_KEYS" | base64 -d)" = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKey alice@host" ] || exit 12
            printf %s "$USER_DATA" | base64 -d | gzip -dc
            """
        let decoded = try Command.run("/bin/bash", ["-c", check, "bash", output]).requireSuccess().stdout
        #expect(decoded.hasPrefix("Content-Type: multipart/mixed; boundary="), "\(decoded)")
        #expect(decoded.contains("Content-Type: text/x-shellscript") && decoded.contains("echo ran > /tmp/ran"))
        #expect(decoded.contains("Content-Type: text/cloud-config") && decoded.contains("[touch, /tmp/x]"))
    }

    /// --iso and --nocloud CDs, read back by isoinfo; with SOURCE_DATE_EPOCH two runs give the
    /// same bytes and the descriptor carries that date.
    @Test func contextAndSeedCDsAreDeterministic() throws {
        let isoinfo = try Command.require("isoinfo")
        let directory = try TemporaryDirectory()
        let (key, _, config) = try files(directory)
        let environment = ["SOURCE_DATE_EPOCH": "1704067200"]
        var images: [Data] = []
        for name in ["a.iso", "b.iso"] {
            let output = directory.file(name)
            try Command.runRehost(["context", "--nocloud", "--ssh-key", key, "--user-data", "none,\(config)", "-o", output],
                                  environment: environment).requireSuccess()
            images.append(try Data(contentsOf: URL(fileURLWithPath: output)))
        }
        #expect(images[0] == images[1])
        let seed = directory.file("a.iso")
        let info = try Command.run(isoinfo, ["-d", "-i", seed]).requireSuccess().stdout
        #expect(info.contains("Volume id: cidata"), "\(info)")
        let blkid = try Command.run(try Command.require("blkid"), ["-p", "-o", "export", seed]).requireSuccess().stdout
        #expect(blkid.contains("UUID=2024-01-01-00-00-00-00"), "the descriptor's date is SOURCE_DATE_EPOCH: \(blkid)")
        #expect(try Command.run(isoinfo, ["-J", "-i", seed, "-x", "/user-data"]).requireSuccess().stdout
            == "#cloud-config\nruncmd:\n  - [touch, /tmp/x]\n")
        let meta = try Command.run(isoinfo, ["-J", "-i", seed, "-x", "/meta-data"]).requireSuccess().stdout
        #expect(meta.hasPrefix("instance-id: iid-rehost-") && meta.contains("public-keys:\n  - \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKey alice@host\"\n"), "\(meta)")

        let context = directory.file("context.iso")
        try Command.runRehost(["context", "--ssh-key", key, "--iso", "-o", context], environment: environment).requireSuccess()
        #expect(try Command.run(isoinfo, ["-d", "-i", context]).requireSuccess().stdout.contains("Volume id: CONTEXT"))
        let sh = try Command.run(isoinfo, ["-J", "-i", context, "-x", "/context.sh"]).requireSuccess().stdout
        #expect(sh.contains("CLOUD_INIT_USER_DATA='none'\n") && sh.contains("SSH_PUBLIC_KEY='ssh-ed25519 "), "\(sh)")
    }

    @Test func badRequestsAreOneLineErrors() throws {
        let directory = try TemporaryDirectory()
        let (_, script, config) = try files(directory)
        let mixed = try Command.runRehost(["context", "--user-data", "none,\(config)", "--user-data", "x-shellscript,\(script)",
                                           "-o", directory.file("x.sh")])
        #expect(mixed.status == 1 && mixed.stderr.hasPrefix("rehost: error: --user-data none,FILE"), "\(mixed.stderr)")
        #expect(!FileManager.default.fileExists(atPath: directory.file("x.sh")))
        let noComma = try Command.runRehost(["context", "--user-data", config, "-o", directory.file("x.sh")])
        #expect(noComma.status != 0 && noComma.stderr.contains("expected TYPE,FILE"), "\(noComma.stderr)")
        let metaWithoutNoCloud = try Command.runRehost(["context", "--meta-data", config, "-o", directory.file("x.sh")])
        #expect(metaWithoutNoCloud.status != 0 && metaWithoutNoCloud.stderr.contains("--nocloud"), "\(metaWithoutNoCloud.stderr)")
        let badEpoch = try Command.runRehost(["context", "--iso", "-o", directory.file("x.iso")], environment: ["SOURCE_DATE_EPOCH": "soon"])
        #expect(badEpoch.status == 1 && badEpoch.stderr.contains("SOURCE_DATE_EPOCH=soon"), "\(badEpoch.stderr)")
    }

    /// convert --cloud-init: the seed and the datasource configuration are in the new filesystem
    /// (read by debugfs, not by Rehost), with root's mode 0600 on the seed files, listed in the
    /// report under `cloud-init`, in the dry run too; the filesystem stays clean.
    @Test func convertWritesTheNoCloudSeedIntoTheGuest() throws {
        let fixture = try Fixture.xenInstance()
        let directory = try TemporaryDirectory()
        try directory.makeWorldWritable()
        let (_, _, config) = try files(directory)
        let meta = directory.file("meta.yaml")
        try "instance-id: test-1\nlocal-hostname: converted\n".write(toFile: meta, atomically: true, encoding: .utf8)
        try Command.run("chmod", ["a+r", meta]).requireSuccess()
        let disk = directory.file("disk.raw")
        let dry = try Command.runRehost(["convert", fixture.imagePath, "-o", disk, "--cloud-init", config, "--meta-data", meta,
                                         "--dry-run", "--json"], asUser: "nobody")
        #expect(dry.status == 0, "\(dry.stderr)")
        let planned = ((try JSONSerialization.jsonObject(with: Data(dry.stdoutBytes)) as? [String: Any])?["changes"] as? [[String: Any]] ?? [])
            .filter { $0["repair"] as? String == "cloud-init" }.compactMap { $0["path"] as? String }
        #expect(planned.contains("/var/lib/cloud/seed/nocloud/user-data") && planned.contains("/etc/cloud/cloud.cfg.d/99_rehost_nocloud.cfg"),
                "\(planned)")

        let result = try Command.runRehost(["convert", fixture.imagePath, "-o", disk, "--cloud-init", config, "--meta-data", meta,
                                            "-q", "--json"], asUser: "nobody")
        #expect(result.status == 0, "\(result.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(result.stdoutBytes)) as? [String: Any]
        let changes = (report?["changes"] as? [[String: Any]] ?? []).filter { $0["repair"] as? String == "cloud-init" }
        #expect(Set(changes.compactMap { $0["path"] as? String }) == Set(planned))
        #expect((report?["warnings"] as? [String] ?? []).contains { $0.contains("no /usr/bin/cloud-init") })

        let debugfs = try Command.require("debugfs")
        let target = "\(disk)?offset=\(try DiskPartitions.firstLinuxOffset(disk))"
        func cat(_ path: String) throws -> String {
            try Command.run(debugfs, ["-R", "cat \(path)", target]).requireSuccess().stdout
        }
        #expect(try cat("/var/lib/cloud/seed/nocloud/user-data") == "#cloud-config\nruncmd:\n  - [touch, /tmp/x]\n")
        #expect(try cat("/var/lib/cloud/seed/nocloud/meta-data") == "instance-id: test-1\nlocal-hostname: converted\n")
        #expect(try cat("/etc/cloud/cloud.cfg.d/99_rehost_nocloud.cfg").contains("datasource_list: [ NoCloud, None ]\n"))
        let stat = try Command.run(debugfs, ["-R", "stat /var/lib/cloud/seed/nocloud/user-data", target]).requireSuccess().stdout
        #expect(stat.contains("Mode:  0600") && stat.contains("User:     0   Group:     0"), "\(stat)")
        let fsck = try Command.run(try Command.require("e2fsck"), ["-fn", target])
        #expect(fsck.status == 0, "\(fsck.stdout)\(fsck.stderr)")
    }
}
