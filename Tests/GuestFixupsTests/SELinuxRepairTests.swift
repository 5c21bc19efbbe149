import Testing
@testable import GuestFixups

@Suite struct SELinuxRepairTests {
    static let fileContexts = """
        # a few lines of the targeted policy, in its order
        /.*\t\t\tsystem_u:object_r:default_t:s0
        /boot(/.*)?\t\tsystem_u:object_r:boot_t:s0
        /boot/grub(2)?/grub\\.cfg\t--\tsystem_u:object_r:boot_conf_t:s0
        /etc(/.*)?\t\tsystem_u:object_r:etc_t:s0
        /etc/dracut\\.conf\\.d(/.*)?\t\tsystem_u:object_r:dracut_conf_t:s0
        /etc/grub\\.conf\t-l\tsystem_u:object_r:etc_t:s0
        /boot/lost\\+found\t-d\t<<none>>

        """

    static func selinuxGuest(withContexts: Bool) -> MemoryGuestFilesystem {
        let fs = GuestFixtures.centos5()
        fs.addFile("/etc/selinux/config", "SELINUX=enforcing\nSELINUXTYPE=targeted\n")
        if withContexts { fs.addFile("/etc/selinux/targeted/contexts/files/file_contexts", fileContexts) }
        for (path, type) in [("/etc", "etc_t"), ("/boot", "boot_t"), ("/boot/grub", "boot_t"), ("/boot/grub/grub.conf", "boot_t")] {
            fs.addAttribute(path, name: "security.selinux", value: Array("system_u:object_r:\(type):s0".utf8) + [0])
        }
        return fs
    }

    static func label(_ fs: MemoryGuestFilesystem, _ path: String) -> String? {
        fs.attributes[path]?["security.selinux"].map { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }

    @Test func labelsFromTheGuestsFileContexts() throws {
        let fs = Self.selinuxGuest(withContexts: true)
        let changes = try GuestRepairs.apply(to: fs, options: GuestFixtures.kvmOptions).changes
        #expect(Self.label(fs, "/boot/grub/grub.cfg") == "system_u:object_r:boot_conf_t:s0", "a literal-free regex line beats the broader one before it")
        let labelled = changes.filter { $0.action == .labelled }.map(\.path)
        #expect(labelled.contains("/boot/grub/grub.cfg"))
        #expect(changes.first { $0.path == "/boot/grub/grub.cfg" && $0.action == .labelled }?.lines.first?.after?
            .hasSuffix("(from /etc/selinux/targeted/contexts/files/file_contexts)") == true)
        // Edited files keep their inode and label; nothing edited is relabelled.
        #expect(!labelled.contains("/etc/inittab") && !labelled.contains("/boot/grub/grub.conf"))
        // Idempotent: a second pass creates and labels nothing.
        #expect(try GuestRepairs.apply(to: fs, options: GuestFixtures.kvmOptions).changes.isEmpty)
    }

    /// `--swap-file`: the swap file the converter made is listed with its fstab line and labelled
    /// like a created file; a second pass changes nothing.
    @Test func swapFileIsListedAndLabelled() throws {
        let fs = Self.selinuxGuest(withContexts: true)
        fs.addFile("/swapfile", "swap")
        var options = GuestFixtures.kvmOptions
        options.swapFile = "/swapfile"
        let changes = try GuestRepairs.apply(to: fs, options: options).changes
        #expect(changes.contains { $0.repair == "fstab" && $0.path == "/swapfile" && $0.action == .created })
        #expect(changes.contains { $0.path == "/swapfile" && $0.action == .labelled })
        #expect(Self.label(fs, "/swapfile") == "system_u:object_r:default_t:s0")
        #expect(try GuestRepairs.apply(to: fs, options: options).changes.isEmpty)
    }

    /// A hostile policy line that would backtrack for ever is never matched.
    @Test func nestedRepetitionInAPatternIsNeverMatched() throws {
        let fs = MemoryGuestFilesystem()
        fs.addFile("/etc/selinux/targeted/contexts/files/file_contexts",
                   Self.fileContexts + "/boot/(a+)+X\t\tsystem_u:object_r:evil_t:s0\n")
        let contexts = try #require(try FileContexts.load(fs))
        let path = "/boot/" + String(repeating: "a", count: 40)
        #expect(try contexts.label(for: path, kind: .regularFile(size: 0)) == "system_u:object_r:boot_t:s0")
    }

    @Test func labelsFromNeighboursWithoutFileContexts() throws {
        let fs = Self.selinuxGuest(withContexts: false)
        _ = try GuestRepairs.apply(to: fs, options: GuestFixtures.kvmOptions)
        #expect(Self.label(fs, "/boot/grub/grub.cfg") == "system_u:object_r:boot_t:s0")
    }

    @Test func relabelTouchesAutorelabelInstead() throws {
        let fs = Self.selinuxGuest(withContexts: true)
        var options = GuestFixtures.kvmOptions
        options.selinux = .relabel
        let changes = try GuestRepairs.apply(to: fs, options: options).changes
        #expect(fs.text("/.autorelabel") == "")
        #expect(Self.label(fs, "/boot/grub/grub.cfg") == nil)
        #expect(changes.contains { $0.repair == "selinux" && $0.path == "/.autorelabel" && $0.action == .created })
    }

    @Test func guestsWithoutSELinuxGetNoLabels() throws {
        let fs = GuestFixtures.centos5()
        fs.addFile("/etc/selinux/config", "SELINUX=disabled\n")
        let changes = try GuestRepairs.apply(to: fs, options: GuestFixtures.kvmOptions).changes
        #expect(!changes.contains { $0.repair == "selinux" })
        #expect(fs.attributes.isEmpty)
    }
}
