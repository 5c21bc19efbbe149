import Foundation
import Testing
import TestSupport

/// A guest whose boot files are damaged is refused with one line, before anything is written.
@Suite(.serialized)
struct BadGuestKernelTests {
    static let directory = "/tmp/rehost-bad-guest-kernel"

    /// A copy of the fixture with `change` applied by debugfs -w (as root, then readable by all).
    static func damagedCopy(_ name: String, _ commands: [String]) throws -> (image: String, fixture: FixtureImage) {
        let fixture = try Fixture.xenInstance()
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o777])
        let image = "\(directory)/\(name).img"
        try? FileManager.default.removeItem(atPath: image)
        try Command.run("cp", ["--sparse=always", fixture.imagePath, image]).requireSuccess()
        let script = "\(directory)/\(name).debugfs"
        try Data(commands.joined(separator: "\n").utf8).write(to: URL(fileURLWithPath: script))
        try Command.run("debugfs", ["-w", "-f", script, image]).requireSuccess()
        try Command.run("chmod", ["644", image]).requireSuccess()
        return (image, fixture)
    }

    static func convertFails(_ image: String) throws -> String {
        let output = "\(directory)/out.raw"
        let result = try Command.runRehost(["convert", image, "-o", output], asUser: "nobody")
        #expect(result.status == 1)
        #expect(result.stderr.split(separator: "\n").count == 1, "one line: \(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: output), "nothing written")
        return result.stderr
    }

    @Test func truncatedInitrd() throws {
        let fixture = try Fixture.xenInstance()
        let path = fixture["INITRD_PATH"] ?? "?"
        let half = "\(Self.directory)/half-initrd"
        try FileManager.default.createDirectory(atPath: Self.directory, withIntermediateDirectories: true)
        try Command.run("debugfs", ["-R", "dump \(path) \(half)", fixture.imagePath]).requireSuccess()
        let size = try FileManager.default.attributesOfItem(atPath: half)[.size] as? Int ?? 0
        try Command.run("truncate", ["-s", "\(size / 2)", half]).requireSuccess()
        let parent = (path as NSString).deletingLastPathComponent, name = (path as NSString).lastPathComponent
        let (image, _) = try Self.damagedCopy("truncated-initrd", ["cd \(parent)", "rm \(name)", "write \(half) \(name)"])
        let error = try Self.convertFails(image)
        #expect(error.hasPrefix("rehost: error: no kernel in /boot boots on kvm: "), "\(error)")
        #expect(error.contains("\(path): ") && error.contains("truncated"), "names the initrd and the problem: \(error)")
    }

    @Test func moduleBuiltForAnotherKernel() throws {
        let fixture = try Fixture.xenInstance()
        let release = fixture["KERNEL_VERSION"] ?? "?"
        let module = "/lib/modules/\(release)/kernel/drivers/block/virtio_blk.ko.xz"
        let work = "\(Self.directory)/vermagic"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        try Command.run("debugfs", ["-R", "dump \(module) \(work)/virtio_blk.ko.xz", fixture.imagePath]).requireSuccess()
        // Same length, another release: what a module left from an older kernel looks like.
        let other = String(release.map { $0.isNumber ? "9" : $0 })
        try Command.run("/bin/sh", ["-c", "xz -dc \(work)/virtio_blk.ko.xz | sed 's/vermagic=\(release)/vermagic=\(other)/' | xz --check=crc32 > \(work)/patched.ko.xz"])
            .requireSuccess()
        let (image, _) = try Self.damagedCopy("vermagic", ["cd /lib/modules/\(release)/kernel/drivers/block", "rm virtio_blk.ko.xz",
                                                          "write \(work)/patched.ko.xz virtio_blk.ko.xz"])
        let error = try Self.convertFails(image)
        #expect(error.trimmingCharacters(in: .newlines) == "rehost: error: \(module): built for kernel \(other) (its vermagic), not \(release): the modules tree does not match the kernel", "\(error)")
    }
}
