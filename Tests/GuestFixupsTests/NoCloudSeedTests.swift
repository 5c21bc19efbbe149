import Testing
@testable import GuestFixups

/// `convert --cloud-init`: the NoCloud seed and the datasource configuration written through
/// `GuestFilesystem`, as the convert pipeline applies them after the repairs.
@Suite struct NoCloudSeedTests {
    static let userData = Array("#cloud-config\npassword: secret\nruncmd:\n  - echo hi\n".utf8)

    func apply(_ seed: NoCloudSeed, to fs: MemoryGuestFilesystem, options: RepairOptions = GuestFixtures.kvmOptions) throws -> GuestRepairs.Outcome {
        let report = try GuestInspector.inspect(fs, target: options.target, rootFilesystemType: options.rootFilesystemType, kernel: nil)
        return try seed.apply(to: fs, options: options, report: report)
    }

    @Test func writesTheSeedAndSelectsNoCloud() throws {
        let fs = GuestFixtures.debian6()
        fs.addFile("/usr/bin/cloud-init", "#!/usr/bin/python3\n", mode: 0o755)
        let seed = NoCloudSeed(userData: Self.userData, networkConfig: Array("version: 2\n".utf8))
        let outcome = try apply(seed, to: fs)
        #expect(try fs.readFile("/var/lib/cloud/seed/nocloud/user-data") == Self.userData)
        #expect(fs.text("/var/lib/cloud/seed/nocloud/meta-data") == "instance-id: \(seed.instanceID)\n")
        #expect(fs.text("/var/lib/cloud/seed/nocloud/network-config") == "version: 2\n")
        if case .file(_, let mode, _, _)? = fs.node(at: "/var/lib/cloud/seed/nocloud/user-data") {
            #expect(mode == 0o600)
        } else {
            Issue.record("user-data is not a file")
        }
        #expect(fs.text("/etc/cloud/cloud.cfg.d/99_rehost_nocloud.cfg")?.contains("datasource_list: [ NoCloud, None ]\n") == true)
        #expect(seed.instanceID.hasPrefix("iid-rehost-") && seed.instanceID.count == "iid-rehost-".count + 16)
        #expect(outcome.warnings.isEmpty)
        let paths = outcome.changes.map(\.path)
        for path in ["/var/lib/cloud/seed/nocloud", "/var/lib/cloud/seed/nocloud/user-data", "/var/lib/cloud/seed/nocloud/meta-data",
                     "/var/lib/cloud/seed/nocloud/network-config", "/etc/cloud/cloud.cfg.d/99_rehost_nocloud.cfg"] {
            #expect(paths.contains(path), "\(path) in \(paths)")
        }
        #expect(outcome.changes.allSatisfy { $0.repair == "cloud-init" })
        // User data may hold passwords: the report says its size, not its lines.
        let userDataChange = outcome.changes.first { $0.path.hasSuffix("/user-data") }
        #expect(userDataChange?.lines.map(\.after) == ["(\(Self.userData.count) bytes, not shown)"])
        // Idempotent.
        #expect(try apply(seed, to: fs).changes.isEmpty)
        // Another user data replaces the old one, and the instance id changes with it.
        let other = NoCloudSeed(userData: Array("#cloud-config\n".utf8))
        let again = try apply(other, to: fs)
        #expect(again.changes.contains { $0.path.hasSuffix("/user-data") && $0.action == .edited })
        #expect(other.instanceID != seed.instanceID)
    }

    @Test func givenMetaDataIsWrittenAsIsAndAGuestWithoutCloudInitIsWarnedAbout() throws {
        let fs = GuestFixtures.centos5()
        let seed = NoCloudSeed(userData: Self.userData, metaData: Array("instance-id: mine\nlocal-hostname: vm1\n".utf8))
        let outcome = try apply(seed, to: fs)
        #expect(fs.text("/var/lib/cloud/seed/nocloud/meta-data") == "instance-id: mine\nlocal-hostname: vm1\n")
        #expect(outcome.changes.first { $0.path.hasSuffix("/meta-data") }?.lines.map(\.after) == ["instance-id: mine", "local-hostname: vm1"])
        #expect(try fs.entry(at: "/var/lib/cloud/seed/nocloud/network-config") == nil)
        #expect(outcome.warnings.contains { $0.contains("no /usr/bin/cloud-init") })
    }

    /// In an SELinux guest, the seed's files and directories get labels like the repairs' files;
    /// `--skip selinux` leaves them unlabelled.
    @Test func labelsInAnSELinuxGuest() throws {
        let fs = SELinuxRepairTests.selinuxGuest(withContexts: true)
        let outcome = try apply(NoCloudSeed(userData: Self.userData), to: fs)
        #expect(SELinuxRepairTests.label(fs, "/etc/cloud/cloud.cfg.d/99_rehost_nocloud.cfg") == "system_u:object_r:etc_t:s0")
        #expect(SELinuxRepairTests.label(fs, "/var/lib/cloud/seed/nocloud/user-data") == "system_u:object_r:default_t:s0")
        #expect(outcome.changes.contains { $0.action == .labelled && $0.path == "/var/lib/cloud/seed/nocloud/user-data" })
        let unlabelled = SELinuxRepairTests.selinuxGuest(withContexts: true)
        var options = GuestFixtures.kvmOptions
        options.skip = ["selinux"]
        _ = try apply(NoCloudSeed(userData: Self.userData), to: unlabelled, options: options)
        #expect(SELinuxRepairTests.label(unlabelled, "/var/lib/cloud/seed/nocloud/user-data") == nil)
    }
}
