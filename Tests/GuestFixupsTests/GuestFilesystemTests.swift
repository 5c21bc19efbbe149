import Testing
@testable import GuestFixups

@Suite struct MemoryGuestFilesystemTests {
    @Test func relativeSymlinkResolvesFromTheLinksDirectory() throws {
        let fs = GuestFixtures.centos5()
        #expect(try fs.entry(at: "/etc/grub.conf") == .symlink(target: "../boot/grub/grub.conf"))
        #expect(fs.text("/etc/grub.conf") == GuestFixtures.centos5GrubConf)
        #expect(fs.text("/boot/grub/menu.lst") == GuestFixtures.centos5GrubConf)
    }

    @Test func absoluteSymlinksAndDotDotStayInsideTheGuest() throws {
        let fs = MemoryGuestFilesystem()
        fs.addFile("/boot/grub/grub.conf", "guest file")
        fs.addSymlink("/etc/absolute", target: "/boot/grub/grub.conf")
        fs.addSymlink("/etc/escape", target: "../../../../boot/grub/grub.conf")
        fs.addSymlink("/etc/rooted", target: "/../../boot/../boot/grub/./grub.conf")
        fs.addSymlink("/bootdir", target: "/boot")
        fs.addSymlink("/boot/grub/up", target: "..")
        for path in ["/etc/absolute", "/etc/escape", "/etc/rooted", "/bootdir/grub/grub.conf",
                     "/boot/grub/up/grub/grub.conf", "/../boot/grub/grub.conf"] {
            #expect(fs.text(path) == "guest file", "\(path)")
        }
        #expect(try fs.listDirectory("/bootdir") == ["grub"])
        #expect(try fs.listDirectory("/boot/grub") == ["grub.conf", "up"])
    }

    @Test func symlinkLoopIsAnError() throws {
        let fs = MemoryGuestFilesystem()
        fs.addSymlink("/a", target: "/b")
        fs.addSymlink("/b", target: "a")
        #expect(throws: GuestFilesystemError.symlinkLoop(path: "/a")) { try fs.readFile("/a") }
        // Following 40 links is allowed, 41 is not.
        for index in 0..<40 { fs.addSymlink("/chain\(index)", target: "/chain\(index + 1)") }
        fs.addFile("/chain40", "end")
        #expect(fs.text("/chain0") == "end")
        fs.addSymlink("/chainStart", target: "/chain0")
        #expect(throws: GuestFilesystemError.symlinkLoop(path: "/chainStart")) { try fs.readFile("/chainStart") }
    }

    @Test func writeThroughSymlinkKeepsOwnerAndMode() throws {
        let fs = MemoryGuestFilesystem()
        fs.addFile("/boot/grub/grub.conf", "old", mode: 0o600, uid: 0, gid: 42)
        fs.addSymlink("/etc/grub.conf", target: "../boot/grub/grub.conf")
        try fs.writeText("/etc/grub.conf", "new")
        #expect(fs.node(at: "/boot/grub/grub.conf") == .file(contents: Array("new".utf8), mode: 0o600, uid: 0, gid: 42))
        #expect(fs.node(at: "/etc/grub.conf") == .symlink(target: "../boot/grub/grub.conf"))
        #expect(fs.mutationCount == 1)
    }

    @Test func writeNeedsAnExistingParentAndCreateDirectoryMakesOne() throws {
        let fs = MemoryGuestFilesystem()
        fs.addDirectory("/boot")
        #expect(throws: GuestFilesystemError.parentMissing(path: "/boot/grub/grub.cfg")) {
            try fs.writeText("/boot/grub/grub.cfg", "x")
        }
        try fs.createDirectory("/boot/grub", mode: 0o700)
        try fs.createDirectory("/boot/grub", mode: 0o755)
        #expect(fs.node(at: "/boot/grub") == .directory(mode: 0o700, uid: 0, gid: 0))
        try fs.writeText("/boot/grub/grub.cfg", "x")
        #expect(fs.node(at: "/boot/grub/grub.cfg") == .file(contents: [UInt8(ascii: "x")], mode: 0o644, uid: 0, gid: 0))
    }

    @Test func removeTakesTheLinkNotItsTarget() throws {
        let fs = GuestFixtures.centos5()
        try fs.remove("/etc/grub.conf")
        #expect(try fs.entry(at: "/etc/grub.conf") == nil)
        #expect(fs.text("/boot/grub/grub.conf") == GuestFixtures.centos5GrubConf)
        try fs.remove("/etc/missing")
        #expect(throws: GuestFilesystemError.isADirectory(path: "/etc")) { try fs.remove("/etc") }
    }

    @Test func missingThingsAreNilOrEmpty() throws {
        let fs = GuestFixtures.centos5()
        #expect(try fs.readFile("/etc/nothing") == nil)
        #expect(try fs.readFile("/etc") == nil)
        #expect(try fs.entry(at: "/no/such/dir/file") == nil)
        #expect(try fs.listDirectory("/no/such/dir") == [])
        #expect(throws: GuestFilesystemError.notADirectory(path: "/etc/fstab/x")) { try fs.readFile("/etc/fstab/x") }
    }
}

@Suite struct OverlayGuestFilesystemTests {
    @Test func repairsThroughTheOverlayNeverTouchTheBase() throws {
        let base = GuestFixtures.centos5()
        let before = base.nodes
        let overlay = OverlayGuestFilesystem(base: base)
        let changes = try GuestRepairs.apply(to: overlay, options: GuestFixtures.kvmOptions).changes
        #expect(!changes.isEmpty)
        #expect(base.mutationCount == 0)
        let baseUnchanged = base.nodes == before
        #expect(baseUnchanged)
        // The overlay shows the repaired guest.
        #expect(try overlay.entry(at: "/etc/blkid/blkid.tab") == nil)
        #expect(try overlay.listDirectory("/etc/blkid") == [])
        let grubCfg = try #require(try overlay.readFile("/boot/grub/grub.cfg"))
        #expect(try overlay.entry(at: "/boot/grub/grub.cfg") == .regularFile(size: UInt64(grubCfg.count)))
        #expect(try base.entry(at: "/boot/grub/grub.cfg") == nil)
        #expect(try overlay.readText("/etc/securetty") == GuestFixtures.centos5Securetty + "ttyS0\n")
        #expect(try overlay.readText("/etc/grub.conf")?.contains("root=LABEL=/") == true)
    }

    @Test func replayGivesTheSameGuestAsRepairingDirectly() throws {
        let direct = GuestFixtures.centos5()
        let directChanges = try GuestRepairs.apply(to: direct, options: GuestFixtures.kvmOptions).changes
        let overlay = OverlayGuestFilesystem(base: GuestFixtures.centos5())
        let plannedChanges = try GuestRepairs.apply(to: overlay, options: GuestFixtures.kvmOptions).changes
        let replayed = GuestFixtures.centos5()
        try overlay.replay(onto: replayed)
        #expect(plannedChanges == directChanges)
        let sameGuest = replayed.nodes == direct.nodes
        #expect(sameGuest)
    }

    @Test func overlayCreatesDirectoriesAndListsBothLayers() throws {
        let base = MemoryGuestFilesystem()
        base.addFile("/boot/vmlinuz-1", "k")
        let overlay = OverlayGuestFilesystem(base: base)
        try overlay.createDirectory("/boot/grub", mode: 0o755)
        try overlay.writeText("/boot/grub/grub.cfg", "cfg")
        try overlay.createSymlink("/boot/vmlinuz", target: "vmlinuz-1")
        #expect(try overlay.listDirectory("/boot") == ["grub", "vmlinuz", "vmlinuz-1"])
        #expect(try overlay.readText("/boot/vmlinuz") == "k")
        try overlay.remove("/boot/vmlinuz-1")
        #expect(try overlay.listDirectory("/boot") == ["grub", "vmlinuz"])
        #expect(try overlay.readFile("/boot/vmlinuz") == nil)
        #expect(try base.listDirectory("/boot") == ["vmlinuz-1"])
        #expect(base.mutationCount == 0)
        #expect(overlay.operations.count == 4)
    }
}
