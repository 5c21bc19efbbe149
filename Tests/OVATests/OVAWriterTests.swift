import Digests
import Foundation
import ImageCore
@testable import ImageFormats
import Testing
import TestSupport

/// One archive examined by our own tar decoder, GNU tar, python's tarfile and xml.etree,
/// sha256sum/sha1sum and qemu-img.
@Suite struct OVAWriterTests {
    /// A disk that is not a whole number of 64 KiB grains or 1 MiB pieces.
    static let oddSize: UInt64 = (24 << 20) + 3 * 512

    struct Archive {
        let directory: TemporaryDirectory
        let raw: String
        let ova: String
        let writer: OVAWriter
        let summary: WriterSummary
        var extracted: String { directory.file("extracted") }
    }

    /// Writes the OVA and extracts it with GNU tar.
    static func makeArchive(size: UInt64, options: WriterOptions) throws -> Archive {
        let directory = try TemporaryDirectory(prefix: "rehost-ova")
        let raw = directory.file("disk.raw"), ova = directory.file("vm.ova")
        try SyntheticDisk.make(at: raw, size: size, seed: size)
        let (writer, summary) = try OVAFixture.write(raw: raw, to: ova, options: options)
        try FileManager.default.createDirectory(atPath: directory.file("extracted"), withIntermediateDirectories: false)
        try Command.run("tar", ["-xf", ova, "-C", directory.file("extracted")]).requireSuccess()
        return Archive(directory: directory, raw: raw, ova: ova, writer: writer, summary: summary)
    }

    /// Our own decoder: three members in order, each header where the previous member's padded
    /// data ends, the VMDK data where the writer said, then exactly two zero blocks.
    @Test func membersInOrderWithOurDecoder() throws {
        var options = WriterOptions()
        options.vmName = "web server/01"
        let archive = try Self.makeArchive(size: Self.oddSize, options: options)
        let file = try RawFile(path: archive.ova, mode: .readOnly)
        let archiveSize = try file.size
        #expect(archive.summary.fileSize == archiveSize)
        #expect(archive.summary.format == .ova)
        #expect(archiveSize % 512 == 0)

        var offset: UInt64 = 0
        var members: [(TarHeader, UInt64)] = []
        while true {
            let block = try file.read(count: 512, at: offset)
            if block.allSatisfy({ $0 == 0 }) { break }
            let header = try TarHeader.decode(block, path: archive.ova, offset: offset)
            members.append((header, offset + 512))
            offset += 512 + TarHeader.blocks(for: header.size)
        }
        #expect(members.map(\.0.name) == ["web_server_01.ovf", "web_server_01.mf", "web_server_01-disk1.vmdk"])
        #expect(members.allSatisfy { !$0.0.isGNU && $0.0.mode == 0o644 })
        #expect(members.last?.1 == archive.writer.diskDataOffset)
        // The end of archive: two zero blocks and nothing after them.
        #expect(offset + 1024 == archiveSize)
        #expect(try file.read(count: 1024, at: offset).allSatisfy { $0 == 0 })
        // Member sizes against the extracted files.
        for (header, _) in members {
            let attributes = try FileManager.default.attributesOfItem(atPath: archive.extracted + "/" + header.name)
            #expect((attributes[.size] as? NSNumber)?.uint64Value == header.size, "\(header.name)")
        }
    }

    /// GNU tar's listing and python's tarfile agree on order, names, sizes and types, and see no
    /// PAX records; every header is plain ustar ("ustar\0" "00") below 8 GiB.
    @Test func gnuTarAndPythonReadTheArchive() throws {
        let archive = try Self.makeArchive(size: Self.oddSize, options: WriterOptions())
        let listing = try Command.run("tar", ["-tvf", archive.ova]).requireSuccess().stdout
        let lines = listing.split(separator: "\n")
        #expect(lines.count == 3)
        #expect(lines.map { $0.split(separator: " ").last.map(String.init) ?? "" }
            == [archive.writer.descriptorName, archive.writer.manifestName, archive.writer.diskName])
        #expect(lines.allSatisfy { $0.hasPrefix("-rw-r--r--") })

        let python = try OVAFixture.python(OVAFixture.tarfileProgram, [archive.ova])
        let members = try #require(python["members"] as? [[String: Any]])
        #expect(python["globalPax"] as? Int == 0)
        #expect(members.map { $0["name"] as? String } == [archive.writer.descriptorName, archive.writer.manifestName, archive.writer.diskName])
        for member in members {
            let name = try #require(member["name"] as? String)
            #expect(member["regular"] as? Bool == true)
            #expect(member["pax"] as? Int == 0)
            #expect(member["magic"] as? String == "7573746172003030", "\(name) has a ustar magic")
            let size = try FileManager.default.attributesOfItem(atPath: archive.extracted + "/" + name)[.size] as? NSNumber
            #expect((member["size"] as? NSNumber)?.uint64Value == size?.uint64Value)
        }
        #expect((members.last?["dataOffset"] as? NSNumber)?.uint64Value == archive.writer.diskDataOffset)
        #expect(members.first?["headerOffset"] as? Int == 0)
    }

    /// The manifest is exactly two lines `ALG(name)= hex`, and the digests are those of the
    /// extracted members as sha256sum/sha1sum compute them.
    @Test(arguments: [WriterOptions.ManifestDigest.sha256, .sha1])
    func manifestMatchesCoreutils(digest: WriterOptions.ManifestDigest) throws {
        var options = WriterOptions()
        options.ovaManifest = digest
        let archive = try Self.makeArchive(size: Self.oddSize, options: options)
        let manifest = try String(contentsOfFile: archive.extracted + "/" + archive.writer.manifestName, encoding: .utf8)
        let tool = digest == .sha256 ? "sha256sum" : "sha1sum"
        let label = digest == .sha256 ? "SHA256" : "SHA1"
        var expected = ""
        for name in [archive.writer.descriptorName, archive.writer.diskName] {
            let output = try Command.run(tool, [archive.extracted + "/" + name]).requireSuccess().stdout
            let hex = try #require(output.split(separator: " ").first.map(String.init))
            #expect(hex.count == (digest == .sha256 ? 64 : 40))
            expected += "\(label)(\(name))= \(hex)\n"
        }
        #expect(manifest == expected)
    }

    /// The descriptor parses as XML in the OVF 1.0 namespace, with the disk's exact size and
    /// capacity, and the hardware the options ask for.
    @Test(arguments: [WriterOptions.OVAProfile.vmware, .virtualbox])
    func descriptorDescribesTheDisk(profile: WriterOptions.OVAProfile) throws {
        var options = WriterOptions()
        options.ovaProfile = profile
        options.cpus = 3
        options.memoryMiB = 1536
        options.vmName = "db<1>"
        options.vmdkHardwareVersion = profile == .vmware ? 11 : 4
        options.vmdkAdapter = profile == .vmware ? .lsilogic : .ide
        options.guestOS = profile == .vmware ? "rhel5_64Guest" : "RedHat_64"
        let archive = try Self.makeArchive(size: Self.oddSize, options: options)
        let ovf = archive.extracted + "/" + archive.writer.descriptorName
        let facts = try OVAFixture.python(OVAFixture.descriptorProgram, [ovf])
        let diskSize = try #require(try FileManager.default.attributesOfItem(
            atPath: archive.extracted + "/" + archive.writer.diskName)[.size] as? NSNumber)

        #expect(facts["rootTag"] as? String == "{http://schemas.dmtf.org/ovf/envelope/1}Envelope")
        #expect(facts["fileHref"] as? String == archive.writer.diskName)
        #expect(facts["fileSize"] as? String == String(diskSize.uint64Value))
        #expect(facts["fileRef"] as? String == facts["fileId"] as? String)
        #expect(facts["capacity"] as? String == String(Self.oddSize))
        #expect(facts["units"] as? String == "byte")
        #expect(facts["format"] as? String == "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized")
        #expect(facts["name"] as? String == "db<1>")
        #expect(facts["osId"] as? String == "80")
        #expect((facts["trailing"] as? String)?.allSatisfy { $0 == " " || $0 == "\n" } == true)

        let items = try #require(facts["items"] as? [[String: Any]])
        func item(_ type: String) -> [String: Any]? { items.first { $0["ResourceType"] as? String == type } }
        #expect(item("3")?["VirtualQuantity"] as? String == "3")
        #expect(item("4")?["VirtualQuantity"] as? String == "1536")
        #expect(item("4")?["AllocationUnits"] as? String == "byte * 2^20")
        let controllerType = profile == .vmware ? "6" : "5"
        let controller = try #require(item(controllerType))
        if profile == .vmware { #expect(controller["ResourceSubType"] as? String == "lsilogic") }
        let disk = try #require(item("17"))
        #expect(disk["HostResource"] as? String == "ovf:/disk/" + (facts["diskId"] as? String ?? "?"))
        #expect(disk["Parent"] as? String == controller["InstanceID"] as? String)
        let nic = try #require(item("10"))
        #expect(nic["ResourceSubType"] as? String == "E1000")
        #expect(nic["Connection"] as? String == facts["network"] as? String)
        // rasd elements in the CIM schema's (alphabetical) order.
        for fields in items {
            let order = try #require(fields["_order"] as? [String])
            #expect(order == order.sorted(), "\(order)")
        }
        switch profile {
        case .vmware:
            #expect(facts["systemType"] as? String == "vmx-11")
            #expect(facts["vmwOsType"] as? String == "rhel5_64Guest")
            let required = try #require(facts["configRequired"] as? [String])
            #expect(!required.isEmpty && required.allSatisfy { $0 == "false" })
        case .virtualbox:
            #expect(facts["systemType"] as? String == "virtualbox-2.2")
            #expect(facts["vboxOsType"] as? String == "RedHat_64")
            #expect((facts["configRequired"] as? [String])?.isEmpty == true)
        }
    }

    /// The hardware family is clamped to vmx-07 for VMDK hardware versions below it.
    @Test func oldHardwareVersionIsClamped() {
        var options = WriterOptions()
        options.vmdkHardwareVersion = 4
        #expect(OVFDescriptor(diskFileName: "d.vmdk", virtualSize: 1 << 20, options: options).systemType == "vmx-07")
        options.vmdkHardwareVersion = 13
        #expect(OVFDescriptor(diskFileName: "d.vmdk", virtualSize: 1 << 20, options: options).systemType == "vmx-13")
    }

    /// A UEFI disk's machine says so to VMware (its default firmware is BIOS); a BIOS one says nothing.
    @Test func efiFirmwareIsDeclaredForVMware() throws {
        let directory = try TemporaryDirectory(prefix: "rehost-ovf")
        var options = WriterOptions()
        for firmware in WriterOptions.Firmware.allCases {
            options.firmware = firmware
            let bytes = OVFDescriptor(diskFileName: "d.vmdk", virtualSize: 1 << 20, options: options).bytes(diskFileSize: 1)
            try Data(bytes).write(to: URL(fileURLWithPath: directory.file("d.ovf")))
            let config = try OVAFixture.python(OVAFixture.descriptorProgram, [directory.file("d.ovf")])["config"] as? [String: String]
            #expect(config?["firmware"] == (firmware == .efi ? "efi" : nil), "\(firmware): \(String(describing: config))")
            #expect(config?["powerOpInfo.powerOffType"] == "soft")
        }
    }

    /// VirtualBox reads a firmware only from its own settings: an EFI machine in the VirtualBox
    /// profile carries a vbox:Machine section whose disk attachment names the DiskSection's disk
    /// by its vbox:uuid (lower case, without braces, as VirtualBox compares them), with the same
    /// CPUs, memory, controller and NIC as the OVF; a BIOS one, and the VMware profile, carry none.
    @Test func efiFirmwareIsDeclaredForVirtualBox() throws {
        let directory = try TemporaryDirectory(prefix: "rehost-ovf")
        var options = WriterOptions()
        options.ovaProfile = .virtualbox
        options.cpus = 2
        options.memoryMiB = 768
        options.vmdkAdapter = .ide
        options.guestOS = "Debian_64"
        for (profile, firmware) in [(WriterOptions.OVAProfile.virtualbox, WriterOptions.Firmware.efi), (.virtualbox, .bios), (.vmware, .efi)] {
            options.ovaProfile = profile
            options.firmware = firmware
            let bytes = OVFDescriptor(diskFileName: "d.vmdk", virtualSize: 1 << 20, options: options).bytes(diskFileSize: 1)
            try Data(bytes).write(to: URL(fileURLWithPath: directory.file("d.ovf")))
            let facts = try OVAFixture.python(OVAFixture.descriptorProgram, [directory.file("d.ovf")])
            guard profile == .virtualbox, firmware == .efi else {
                #expect(facts["vboxMachine"] == nil && facts["diskVboxUuid"] is NSNull, "\(profile) \(firmware)")
                continue
            }
            let machine = try #require(facts["vboxMachine"] as? [String: Any])
            let diskUUID = try #require(facts["diskVboxUuid"] as? String)
            #expect(diskUUID == diskUUID.lowercased() && UUIDBytes.parse(diskUUID) != nil, "\(diskUUID)")
            #expect(machine["required"] as? String == "false" && machine["info"] as? Bool == true)
            #expect(machine["version"] as? String == "1.16-linux")
            #expect((machine["uuid"] as? String).map { $0.hasPrefix("{") && $0.hasSuffix("}") } == true)
            #expect(machine["name"] as? String == options.vmName && machine["osType"] as? String == "Debian_64")
            #expect(machine["cpus"] as? String == "2" && machine["ram"] as? String == "768")
            #expect(machine["firmware"] as? String == "EFI")
            #expect(machine["adapters"] as? [String] == ["82540EM"])
            let controllers = try #require(machine["controllers"] as? [[String: Any]])
            #expect(controllers.count == 1 && controllers.first?["type"] as? String == "PIIX4")
            #expect(controllers.first?["images"] as? [String] == ["{\(diskUUID)}"])
        }
    }

    /// Whatever the final size, the descriptor fills its reservation exactly and still parses.
    @Test(arguments: [UInt64(0), 7, 123_456_789, 1 << 40, UInt64.max])
    func descriptorAlwaysFillsItsReservation(size: UInt64) throws {
        let descriptor = OVFDescriptor(diskFileName: "vm-disk1.vmdk", virtualSize: 5 << 30, options: WriterOptions())
        let bytes = descriptor.bytes(diskFileSize: size)
        #expect(bytes.count == descriptor.reservedLength)
        #expect(bytes.last == UInt8(ascii: "\n"))
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(text.contains("ovf:size=\"\(size)\""))
        let directory = try TemporaryDirectory(prefix: "rehost-ovf")
        try Data(bytes).write(to: URL(fileURLWithPath: directory.file("d.ovf")))
        let facts = try OVAFixture.python(OVAFixture.descriptorProgram, [directory.file("d.ovf")])
        #expect(facts["fileSize"] as? String == String(size))
        #expect(facts["capacity"] as? String == String(5 << 30))
    }
}
