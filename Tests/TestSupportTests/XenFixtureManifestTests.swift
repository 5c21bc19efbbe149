import Foundation
import Testing
import TestSupport

/// The oracle against the real Xen fixture: what the fixture's env file promises must be what
/// debugfs finds. This needs Fixtures/make-xen-instance.sh (from the fixtures branch).
@Suite struct XenFixtureManifestTests {
    @Test func manifestAgreesWithTheFixtureDescription() throws {
        let fixture = try Fixture.xenInstance()
        let start = Date()
        let manifest = try ExtTreeManifest.read(image: fixture.imagePath)
        // A few hundred files and a 24 MiB one: the budget is a few seconds (generous for a busy machine).
        #expect(Date().timeIntervalSince(start) < 30)

        #expect(manifest["/etc/fstab"]?.kind == .file)
        #expect(manifest["/lost+found"]?.kind == .directory)
        if let path = fixture["KERNEL_PATH"] { #expect(manifest[path]?.kind == .file, "\(path)") }
        if let path = fixture["SETUID_FILE"] { #expect((manifest[path]?.permissions ?? 0) & 0o4000 != 0, "\(path)") }
        if let path = fixture["HIGH_ID_FILE"], let id = fixture["HIGH_ID"].flatMap(UInt32.init) {
            #expect(manifest[path]?.uid == id, "\(path)")
        }
        if let path = fixture["IMMUTABLE_FILE"] {
            #expect((manifest[path]?.flags.rawValue ?? 0) & InodeFlags.immutable != 0, "\(path)")
        }
        if let path = fixture["APPEND_ONLY_FILE"] {
            #expect((manifest[path]?.flags.rawValue ?? 0) & InodeFlags.appendOnly != 0, "\(path)")
        }
        if let paths = fixture["HARDLINKS"]?.split(separator: " ").map(String.init), let first = paths.first {
            #expect(manifest.hardLinkGroup(of: first) == paths.sorted())
        }
        if let path = fixture["SLOW_SYMLINK"], let target = fixture["SLOW_SYMLINK_TARGET"] {
            #expect(manifest[path]?.symlinkTargetText == target)
        }
        if let path = fixture["SPARSE_FILE"] {
            let runs = manifest[path]?.mappedBlocks ?? []
            #expect(runs.count > 1, "\(path): \(runs)")
            #expect(runs.first?.first != 0, "\(path) should start with a hole")
        }
        for path in fixture["CHAR_DEVICES"]?.split(separator: " ").map(String.init) ?? [] {
            #expect(manifest[path]?.kind == .characterDevice, "\(path)")
        }
        if let path = fixture["ACL_FILE"] {
            #expect(manifest[path]?.xattrs["system.posix_acl_access"] != nil, "\(path)")
        }
    }
}
