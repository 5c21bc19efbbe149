import Ext2
import Foundation
import GuestFixups
@testable import Pipeline
import Testing
import TestSupport

/// The repairs' view of a real ext3 filesystem: edits through symlinks (dangling ones too),
/// removals, new directories, all read back with debugfs and checked with e2fsck.
struct Ext2GuestFilesystemTests {
    func makeImage(in dir: TemporaryDirectory) throws -> String {
        let staging = dir.file("staging")
        let image = dir.file("guest.img")
        try Command.run("/bin/sh", ["-c", """
            set -e
            mkdir -p \(staging)/etc \(staging)/boot
            printf 'old\\n' > \(staging)/etc/motd
            ln -s ../boot/grub/grub.conf \(staging)/etc/grub.conf
            ln -s /etc/motd \(staging)/etc/motd-link
            printf 'stale\\n' > \(staging)/etc/blkid.tab
            mke2fs -q -F -t ext3 -b 4096 -I 128 -d \(staging) \(image) 32M
            debugfs -w -R 'ea_set /etc/motd security.selinux system_u:object_r:etc_t:s0' \(image)
            """]).requireSuccess()
        return image
    }

    func debugfs(_ request: String, _ image: String) throws -> String {
        try Command.run("debugfs", ["-R", request, image]).requireSuccess().stdout
    }

    @Test func editsCreatesAndRemovesInsideTheGuest() throws {
        let dir = try TemporaryDirectory()
        let image = try makeImage(in: dir)
        let filesystem = try Ext2Filesystem(path: image, writable: true)
        let guest = Ext2GuestFilesystem(filesystem)

        #expect(try guest.readText("/etc/motd-link") == "old\n")
        #expect(try guest.entry(at: "/etc/grub.conf") == .symlink(target: "../boot/grub/grub.conf"))
        try guest.writeText("/etc/motd-link", "new\n")
        try guest.createDirectory("/boot/grub", mode: 0o755)
        try guest.writeText("/etc/grub.conf", "default=0\n")
        try guest.remove("/etc/blkid.tab")
        try guest.remove("/etc/not-there")
        try guest.createSymlink("/boot/grub/menu.lst", target: "grub.conf")
        #expect(try guest.listDirectory("/boot/grub") == ["grub.conf", "menu.lst"])
        try filesystem.close()

        #expect(try debugfs("cat /etc/motd", image) == "new\n")
        #expect(try debugfs("ea_get /etc/motd security.selinux", image).contains("etc_t"), "the edit keeps the label")
        #expect(try debugfs("cat /boot/grub/grub.conf", image) == "default=0\n", "written where the dangling link points")
        #expect(try debugfs("stat /etc/grub.conf", image).contains("Type: symlink"))
        #expect(try debugfs("stat /etc/blkid.tab", image).isEmpty)
        #expect(try debugfs("stat /boot/grub", image).contains("Mode:  0755"))
        let fsck = try Command.run("e2fsck", ["-fn", image])
        #expect(fsck.status == 0, "\(fsck.stdout)")
    }

    @Test func aReadOnlyGuestBehindAnOverlayIsNeverWritten() throws {
        let dir = try TemporaryDirectory()
        let image = try makeImage(in: dir)
        let before = try Command.run("sha256sum", [image]).requireSuccess().stdout
        let overlay = OverlayGuestFilesystem(base: Ext2GuestFilesystem(try Ext2Filesystem(path: image)))
        try overlay.writeText("/etc/motd", "changed\n")
        try overlay.remove("/etc/blkid.tab")
        #expect(try overlay.readText("/etc/motd") == "changed\n")
        #expect(try Command.run("sha256sum", [image]).requireSuccess().stdout == before)
    }
}
