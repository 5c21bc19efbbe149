import Foundation
import ImageCore
import Testing
@testable import DiskLayout

/// Boots a disk carrying only our MBR, the embedded GRUB and an ext3 partition made by mke2fs,
/// under qemu (TCG), and watches the serial port for what grub.cfg echoes. One boot at a time:
/// the machine's cores are shared.
@Suite(.serialized) struct GrubBootTests {
    static let marker = "REHOST-GRUB-OK"

    func makeBootableDisk(in scratch: ScratchDirectory) throws -> String {
        let plan = try DiskPlan(diskSize: 64 << 20)
        let (mbr, gap) = try BiosBootInstaller.embed(bootImage: try GrubBootImage.load(),
                                                     coreImage: try GrubCoreImage.build(),
                                                     mbr: plan.mbr(), partitionStartSector: plan.partitionStartSector)
        let disk = scratch.file("disk.raw")
        try makeDisk(at: disk, size: plan.diskSize, sector0: [])
        try BiosBootInstaller.write(mbr: mbr, gap: gap, to: try RawFile(path: disk, mode: .readWrite))

        let grubDirectory = scratch.file("staging/boot/grub")
        try FileManager.default.createDirectory(atPath: grubDirectory, withIntermediateDirectories: true)
        let config = """
        serial --unit=0 --speed=115200
        terminal_output serial
        echo \(Self.marker)
        halt

        """
        try config.write(toFile: "\(grubDirectory)/grub.cfg", atomically: true, encoding: .utf8)
        try runTool("mke2fs", ["-q", "-F", "-t", "ext3", "-I", "128", "-E", "offset=\(plan.partitionOffset)",
                               "-d", scratch.file("staging"), disk, "\(plan.partitionSize / 1024)"])

        // mke2fs wrote only inside the partition.
        let file = try RawFile(path: disk, mode: .readOnly)
        #expect(try file.read(count: 512, at: 0) == mbr)
        #expect(try file.read(count: gap.count, at: 512) == gap)
        #expect(try file.size == plan.diskSize)
        return disk
    }

    /// Runs qemu until the marker shows on the serial port, qemu exits, or 60 s pass.
    func boot(disk: String, interface: String, log: String) throws -> String {
        guard let qemu = Tool.find("qemu-system-x86_64") else {
            throw ToolFailure(description: "qemu-system-x86_64 is not installed")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: qemu)
        process.arguments = ["-accel", "tcg", "-nographic", "-no-reboot", "-m", "256", "-snapshot",
                             "-serial", "file:\(log)", "-display", "none", "-monitor", "none",
                             "-drive", "file=\(disk),format=raw,if=\(interface)"]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer {
            // SIGKILL, not SIGTERM: a TCG guest spinning in bad boot code keeps qemu's main loop from
            // ever reading a SIGTERM. The disk is opened with -snapshot, so nothing is lost.
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
        }
        let deadline = Date().addingTimeInterval(60)
        var output = ""
        while Date() < deadline {
            output = (try? String(contentsOfFile: log, encoding: .isoLatin1)) ?? ""
            if output.contains(Self.marker) || !process.isRunning { break }
            Thread.sleep(forTimeInterval: 0.5)
        }
        return (try? String(contentsOfFile: log, encoding: .isoLatin1)) ?? output
    }

    @Test(arguments: ["ide", "virtio"])
    func grubBootsFromTheEmbeddedCoreImage(interface: String) throws {
        let scratch = try ScratchDirectory()
        let disk = try makeBootableDisk(in: scratch)
        let log = try boot(disk: disk, interface: interface, log: scratch.file("serial.log"))
        #expect(log.contains(Self.marker), "serial log on \(interface): \(log.suffix(400))")
    }
}
