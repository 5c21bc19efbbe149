import Foundation
import ImageCore
import Testing
import TestSupport
@testable import DiskLayout
@testable import FAT

/// The firmware as the oracle: OVMF (qemu, TCG) reads the GPT, finds the ESP, reads our FAT32 and
/// runs \EFI\BOOT\BOOTX64.EFI, a hand-made EFI application that prints one line on the console.
@Suite struct UEFIBootTests {
    static let marker = "REHOST-ESP-OK"

    /// A minimal PE32+ EFI application (subsystem 10): `ConOut->OutputString(ConOut, marker)`,
    /// then `cli; hlt`. Position-independent (RIP-relative), so it needs no relocations.
    ///
    /// ```
    ///   0x000 MZ, e_lfanew = 0x40      0x040 "PE\0\0", COFF header (x86-64, 1 section)
    ///   0x058 PE32+ optional header    0x148 section .text: RVA 0x1000, file 0x200, 0x200 bytes
    ///   0x200 code, then the UTF-16 message at 0x220
    /// ```
    static func efiApplication(padTo size: Int) -> [UInt8] {
        var image = [UInt8](repeating: 0, count: 0x400)
        image[0] = 0x4D; image[1] = 0x5A
        image.storeLE(UInt32(0x40), at: 0x3C)
        image.replaceSubrange(0x40..<0x44, with: Array("PE\0\0".utf8))
        image.storeLE(UInt16(0x8664), at: 0x44)
        image.storeLE(UInt16(1), at: 0x46)
        image.storeLE(UInt16(0xF0), at: 0x54)
        image.storeLE(UInt16(0x0022), at: 0x56) // executable, large address aware
        let optional = 0x58
        image.storeLE(UInt16(0x20B), at: optional)
        image.storeLE(UInt32(0x200), at: optional + 4)
        image.storeLE(UInt32(0x1000), at: optional + 16) // entry point
        image.storeLE(UInt32(0x1000), at: optional + 20)
        image.storeLE(UInt64(0x1000_0000), at: optional + 24)
        image.storeLE(UInt32(0x1000), at: optional + 32)
        image.storeLE(UInt32(0x200), at: optional + 36)
        image.storeLE(UInt32(0x2000), at: optional + 56) // size of image
        image.storeLE(UInt32(0x200), at: optional + 60) // size of headers
        image.storeLE(UInt16(10), at: optional + 68) // EFI application
        image.storeLE(UInt32(16), at: optional + 108)
        let section = optional + 0xF0
        image.replaceSubrange(section..<section + 5, with: Array(".text".utf8))
        image.storeLE(UInt32(0x200), at: section + 8)
        image.storeLE(UInt32(0x1000), at: section + 12)
        image.storeLE(UInt32(0x200), at: section + 16)
        image.storeLE(UInt32(0x200), at: section + 20)
        image.storeLE(UInt32(0x6000_0020), at: section + 36)
        let code: [UInt8] = [
            0x48, 0x83, 0xEC, 0x28, // sub rsp, 0x28
            0x48, 0x8B, 0x4A, 0x40, // mov rcx, [rdx + 0x40]  (SystemTable->ConOut)
            0x48, 0x8D, 0x15, 0x11, 0x00, 0x00, 0x00, // lea rdx, [rip + 0x11]  (the message at 0x20)
            0xFF, 0x51, 0x08, // call [rcx + 8]  (OutputString)
            0xFA, 0xF4, 0xEB, 0xFD, // cli; hlt; jmp hlt
        ]
        image.replaceSubrange(0x200..<0x200 + code.count, with: code)
        let message = Array("\r\n\(marker)\r\n".utf16) + [0]
        for (index, unit) in message.enumerated() { image.storeLE(unit, at: 0x220 + 2 * index) }
        // Trailing bytes past the image are ignored by the loader; they make the file span many clusters.
        var random = SplitMix(seed: 11)
        return image + random.bytes(max(0, size - image.count))
    }

    @Test(.timeLimit(.minutes(3))) func ovmfBootsBOOTX64FromOurESP() throws {
        guard let qemu = Tool.find("qemu-system-x86_64") else { throw ToolFailure(description: "qemu-system-x86_64 is not installed") }
        let code = "/usr/share/OVMF/OVMF_CODE.fd", vars = "/usr/share/OVMF/OVMF_VARS.fd"
        guard FileManager.default.fileExists(atPath: code) else { throw ToolFailure(description: "\(code) missing: install ovmf") }
        let scratch = try TemporaryDirectory(prefix: "rehost-uefi")
        let disk = scratch.file("disk.raw")
        let gpt = try GPT.make(diskSize: 512 << 20, requests: [
            GPT.Request(type: GPT.PartitionType.biosBoot, name: "BIOS boot", size: 1 << 20),
            GPT.Request(type: GPT.PartitionType.efiSystem, name: "EFI System", size: FAT32Writer.defaultESPSize),
            GPT.Request(type: GPT.PartitionType.linuxFilesystem, name: "root", size: nil),
        ])
        let file = try RawFile(path: disk, mode: .createExclusive)
        try gpt.write(to: file)
        var esp = try FAT32Writer(size: gpt.partitions[1].size, label: "EFI")
        try esp.addFile("/EFI/BOOT/BOOTX64.EFI", bytes: Self.efiApplication(padTo: 1_500_000))
        try esp.addFile("/EFI/debian/grub.cfg", bytes: Array("# not read\n".utf8))
        try esp.write(to: file, at: gpt.partitions[1].offset)

        let log = scratch.file("serial.log")
        let varsCopy = scratch.file("vars.fd")
        try FileManager.default.copyItem(atPath: vars, toPath: varsCopy)
        // qemu in the background; poll the serial log for the marker, then stop it by its pid with
        // SIGKILL (a child of Tool.run may not see SIGTERM; -snapshot leaves nothing to save).
        let script = """
        "$1" -accel tcg -m 256 -display none -monitor none -no-reboot -serial file:"$2" \
          -drive if=pflash,format=raw,readonly=on,file="$3" -drive if=pflash,format=raw,file="$4" \
          -drive file="$5",format=raw,if=virtio -snapshot &
        pid=$!
        for i in $(seq 1 150); do
          if grep -q \(Self.marker) "$2" 2>/dev/null; then kill -9 $pid; wait $pid 2>/dev/null; exit 0; fi
          kill -0 $pid 2>/dev/null || exit 3
          sleep 1
        done
        kill -9 $pid; wait $pid 2>/dev/null; exit 2
        """
        let result = try Tool.run("/bin/sh", ["-c", script, "sh", qemu, log, code, varsCopy, disk])
        let serial = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(result.status == 0, "qemu: \(result.stderr)\nserial:\n\(serial.suffix(3000))")
        #expect(serial.contains(Self.marker))
    }
}
