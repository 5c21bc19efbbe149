import Foundation
import KernelModules
import Testing
import TestSupport

@Suite struct ELFFileTests {
    /// Section names as `readelf -SW` prints them (index 0, the null section, has an empty name).
    static func readelfSectionNames(_ path: String) throws -> [String] {
        let out = try Command.run("readelf", ["-SW", path]).requireSuccess().stdout
        var names: [String] = []
        for line in out.split(separator: "\n") {
            guard let open = line.firstIndex(of: "["), let close = line.firstIndex(of: "]"), open < close,
                  let index = Int(line[line.index(after: open)..<close].trimmingCharacters(in: .whitespaces)) else { continue }
            let rest = line[line.index(after: close)...]
            names.append(index == 0 ? "" : String(rest.split(separator: " ").first ?? ""))
        }
        return names
    }

    @Test func sectionNamesMatchReadelfOnModules() throws {
        let kernel = try DebianKernel.current()
        let samples = ["drivers/block/virtio_blk.ko", "drivers/virtio/virtio_ring.ko", "drivers/block/xen-blkfront.ko",
                       "fs/ext4/ext4.ko", "drivers/ata/ahci.ko", "drivers/scsi/sd_mod.ko", "lib/crc16.ko"]
        for sample in samples {
            let path = "\(kernel.modulesDirectory)/kernel/\(sample)"
            let elf = try ELFFile(bytes: try readBytes(path), name: path)
            #expect(elf.is64Bit && elf.isLittleEndian && elf.machine == 62 && elf.type == ELFFile.typeRelocatable)
            #expect(elf.sections.map(\.name) == (try Self.readelfSectionNames(path)), "\(sample)")
            #expect(elf.section(named: ".modinfo") != nil)
            #expect(elf.section(named: ".bss").map { elf.data(of: $0).isEmpty } == true)
            // The build-id note of every module.
            #expect(elf.notes.contains { $0.name == "GNU" && $0.type == 3 && $0.descriptor.count == 20 })
        }
    }

    /// Debian's vmlinuz: a bzImage whose xz payload is a vmlinux with Xen notes (a pvops kernel).
    @Test func vmlinuxFromDebianVmlinuzHasXenNotes() throws {
        let kernel = try DebianKernel.current()
        let image = try readBytes(kernel.vmlinuz)
        #expect(Array(image[0x202..<0x206]) == Array("HdrS".utf8))
        let setupSectors = Int(image[0x1F1] == 0 ? 4 : image[0x1F1])
        let payloadOffset = Int(image.loadLE(UInt32.self, at: 0x248)), payloadLength = Int(image.loadLE(UInt32.self, at: 0x24C))
        let start = (setupSectors + 1) * 512 + payloadOffset
        try #require(start + payloadLength <= image.count)
        #expect(Array(image[start..<(start + 6)]) == [0xFD, 0x37, 0x7A, 0x58, 0x5A, 0x00])
        let scratch = try TemporaryDirectory(prefix: "rehost-vmlinux")
        try writeBytes(Array(image[start..<(start + payloadLength)]), to: scratch.file("payload.xz"))
        // --single-stream: the payload ends with the le32 uncompressed size the kernel build appends.
        let vmlinux = try Command.run("xz", ["-dc", "--single-stream", scratch.file("payload.xz")]).requireSuccess().stdoutBytes
        try writeBytes(vmlinux, to: scratch.file("vmlinux"))

        let elf = try ELFFile(bytes: vmlinux, name: "vmlinux")
        #expect(elf.is64Bit && elf.isLittleEndian && elf.machine == 62 && elf.type == ELFFile.typeExecutable)
        #expect(elf.sections.map(\.name) == (try Self.readelfSectionNames(scratch.file("vmlinux"))))
        let xen = elf.notes.filter { $0.name == "Xen" }
        // XEN_ELFNOTE_GUEST_OS (6) "linux", XEN_ELFNOTE_XEN_VERSION (5) "xen-3.0".
        #expect(xen.contains { $0.type == 6 && $0.descriptor == Array("linux\0".utf8) })
        #expect(xen.contains { $0.type == 5 && $0.descriptor == Array("xen-3.0\0".utf8) })
        #expect(elf.section(named: "__xen_guest") == nil)

        // The same notes, owners and sizes, as readelf -n lists them.
        let listed = try Command.run("readelf", ["-nW", scratch.file("vmlinux")]).requireSuccess().stdout
            .split(separator: "\n").compactMap { line -> String? in
                let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
                guard words.count >= 2, words[1].hasPrefix("0x") else { return nil }
                return "\(words[0]) \(UInt64(words[1].dropFirst(2), radix: 16) ?? 0)"
            }
        #expect(elf.notes.map { "\($0.name) \($0.descriptor.count)" } == listed)
    }

    /// A hand-made 32-bit big-endian ELF with one note section and a `__xen_guest` section.
    @Test func bigEndian32BitFile() throws {
        var f = [UInt8](repeating: 0, count: 52)
        f[0...6] = [0x7F, 0x45, 0x4C, 0x46, 1, 2, 1]
        f.storeBE(UInt16(2), at: 16); f.storeBE(UInt16(3), at: 18)   // EXEC, EM_386 (any value)
        f.storeBE(UInt16(52), at: 40); f.storeBE(UInt16(40), at: 46)
        // Data: note at 52, guest string at 52 + 24, strtab after.
        var note: [UInt8] = []
        note += [0, 0, 0, 4, 0, 0, 0, 6, 0, 0, 0, 6] + Array("Xen\0".utf8) + Array("linux\0".utf8) + [0, 0]
        let guest = Array("GUEST_OS=linux,XEN_VER=xen-3.0\0".utf8)
        let strtab = Array("\0.note\0__xen_guest\0.shstrtab\0".utf8)
        f += note; let guestAt = f.count; f += guest; let strAt = f.count; f += strtab
        while f.count % 4 != 0 { f.append(0) }
        let shoff = f.count
        func section(_ name: UInt32, _ type: UInt32, _ offset: Int, _ size: Int) -> [UInt8] {
            var s = [UInt8](repeating: 0, count: 40)
            s.storeBE(name, at: 0); s.storeBE(type, at: 4); s.storeBE(UInt32(offset), at: 16); s.storeBE(UInt32(size), at: 20)
            s.storeBE(UInt32(4), at: 32)
            return s
        }
        f += section(0, 0, 0, 0) + section(1, 7, 52, note.count) + section(7, 1, guestAt, guest.count) + section(19, 3, strAt, strtab.count)
        f.storeBE(UInt32(shoff), at: 32); f.storeBE(UInt16(4), at: 48); f.storeBE(UInt16(3), at: 50)
        let elf = try ELFFile(bytes: f, name: "tiny")
        #expect(!elf.is64Bit && !elf.isLittleEndian && elf.type == 2)
        #expect(elf.sections.map(\.name) == ["", ".note", "__xen_guest", ".shstrtab"])
        #expect(elf.notes == [ELFNote(name: "Xen", type: 6, descriptor: Array("linux\0".utf8))])
        #expect(elf.section(named: "__xen_guest").map { Array(elf.data(of: $0)) } == guest)
    }
}
