import Foundation
import ImageCore

/// Where the host's GRUB i386-pc files live: `$REHOST_GRUB_DIR` when set, else Debian's
/// `/usr/lib/grub/i386-pc` (package grub-pc-bin).
public enum GrubDirectory {
    public static let standard = "/usr/lib/grub/i386-pc"
    public static let environmentVariable = "REHOST_GRUB_DIR"

    public static var `default`: String { resolve(environment: ProcessInfo.processInfo.environment) }

    static func resolve(environment: [String: String]) -> String {
        if let override = environment[environmentVariable], !override.isEmpty { return override }
        return standard
    }
}

/// GRUB's core.img for BIOS disks, built by the host's grub-mkimage.
public enum GrubCoreImage {
    public static let defaultPrefix = "(hd0,msdos1)/boot/grub"
    /// When /boot is partition 1 on its own, /boot/grub is /grub there.
    public static let separateBootPrefix = "(hd0,msdos1)/grub"

    /// Enough to read an ext2/3/4 partition through the BIOS, run a native or legacy grub.cfg,
    /// talk on the serial port and boot Linux (linux16 for `legacy_kernel`). Everything is
    /// embedded, so booting never depends on /boot/grub/i386-pc inside the guest.
    public static let defaultModules = [
        "biosdisk", "part_msdos", "ext2", "normal", "linux", "linux16", "configfile", "legacycfg",
        "search", "search_label", "search_fs_uuid", "search_fs_file", "serial", "terminal", "echo",
        "test", "boot", "halt", "reboot", "ls", "cat", "minicmd", "gzio", "sleep",
    ]

    /// Runs `grub-mkimage -O i386-pc -p PREFIX -o TMP -d DIR MODULES` and returns the image.
    public static func build(grubDirectory: String = GrubDirectory.default, prefix: String = defaultPrefix,
                             extraModules: [String] = []) throws -> [UInt8] {
        guard let mkimage = Tool.find("grub-mkimage") else {
            throw ToolError.notFound(tool: "grub-mkimage", hint: "install grub-pc-bin and grub-common")
        }
        for required in ["kernel.img", "diskboot.img", "boot.img"] {
            guard FileManager.default.fileExists(atPath: "\(grubDirectory)/\(required)") else {
                throw DiskLayoutError.grubDirectoryMissing(path: grubDirectory, missing: required)
            }
        }
        var modules: [String] = []
        for module in defaultModules + extraModules where !modules.contains(module) {
            guard FileManager.default.fileExists(atPath: "\(grubDirectory)/\(module).mod") else {
                throw DiskLayoutError.grubModuleMissing(directory: grubDirectory, module: module)
            }
            modules.append(module)
        }

        return try GrubImages.runMkimage(mkimage, ["-O", "i386-pc", "-p", prefix, "-d", grubDirectory] + modules, name: "rehost-core", suffix: ".img")
    }
}

/// GRUB's boot.img: the 512-byte MBR code that loads core.img's first sector.
public enum GrubBootImage {
    public static func load(grubDirectory: String = GrubDirectory.default) throws -> [UInt8] {
        let path = "\(grubDirectory)/boot.img"
        guard FileManager.default.fileExists(atPath: path) else {
            throw DiskLayoutError.grubDirectoryMissing(path: grubDirectory, missing: "boot.img")
        }
        let file = try RawFile(path: path, mode: .readOnly)
        let size = try file.size
        guard size == 512 else { throw DiskLayoutError.bootImageSize(path: path, expected: 512, got: Int(size)) }
        let bytes = try file.read(count: 512, at: 0)
        let signature = bytes.loadLE(UInt16.self, at: MBR.bootSignatureOffset)
        guard signature == 0xAA55 else {
            throw DiskLayoutError.bootImageSignature(path: path, offset: MBR.bootSignatureOffset, found: signature)
        }
        return bytes
    }
}

/// A unique path in the temporary directory, removed when this value goes away.
final class TemporaryPath {
    let path: String

    init(prefix: String, suffix: String) throws {
        var template = Array("\(NSTemporaryDirectory())\(prefix)-XXXXXX\(suffix)".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemps($0.baseAddress!, Int32(suffix.utf8.count)) }
        let path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard fd >= 0 else { throw FileError.open(path: path, errno: errno) }
        close(fd)
        self.path = path
    }

    deinit { unlink(path) }
}

/// GRUB for UEFI (x86_64-efi), built by the host's grub-mkimage from `$REHOST_GRUB_EFI_DIR`, else
/// Debian's `/usr/lib/grub/x86_64-efi` (package grub-efi-amd64-bin). The image carries an early
/// configuration that finds the filesystem holding /boot/grub by its UUID and runs the guest's
/// own grub.cfg from there, so the ESP holds nothing but the binary.
public enum GrubEFIImage {
    public static let standardDirectory = "/usr/lib/grub/x86_64-efi"
    public static let environmentVariable = "REHOST_GRUB_EFI_DIR"
    /// The removable-media path firmware boots without a boot entry (UEFI 2.10, 3.5.1.1).
    public static let removablePath = "EFI/BOOT/BOOTX64.EFI"
    /// Where a distribution's own install would put it; firmware boot entries may point here.
    public static let vendorPath = "EFI/rehost/grubx64.efi"

    /// As for i386-pc, everything the guest's grub.cfg uses is embedded; plus GPT, FAT, and the
    /// EFI video drivers `linux` needs to hand the kernel a framebuffer.
    public static let defaultModules = [
        "part_gpt", "part_msdos", "fat", "ext2", "normal", "linux", "configfile", "search", "search_label",
        "search_fs_uuid", "search_fs_file", "serial", "terminal", "echo", "test", "boot", "halt", "reboot", "ls",
        "cat", "minicmd", "gzio", "sleep", "all_video", "efi_gop", "efi_uga",
    ]

    public static var defaultDirectory: String {
        let environment = ProcessInfo.processInfo.environment
        if let override = environment[environmentVariable], !override.isEmpty { return override }
        return standardDirectory
    }

    /// The early configuration: the filesystem with UUID `bootFilesystemUUID` becomes `$root`,
    /// and its `grubDirectory` (`/boot/grub`, or `/grub` on a /boot partition) the prefix.
    public static func earlyConfig(bootFilesystemUUID: String, grubDirectory: String) -> String {
        """
        search --no-floppy --fs-uuid --set=root \(bootFilesystemUUID)
        set prefix=($root)\(grubDirectory)
        configfile ($root)\(grubDirectory)/grub.cfg

        """
    }

    /// Runs `grub-mkimage -O x86_64-efi -c EARLY -p PREFIX -o TMP -d DIR MODULES` and returns the
    /// EFI application.
    public static func build(grubDirectory: String = defaultDirectory, bootFilesystemUUID: String,
                             bootGrubDirectory: String = "/boot/grub") throws -> [UInt8] {
        guard let mkimage = Tool.find("grub-mkimage") else {
            throw ToolError.notFound(tool: "grub-mkimage", hint: "install grub-efi-amd64-bin and grub-common")
        }
        guard FileManager.default.fileExists(atPath: "\(grubDirectory)/kernel.img") else {
            throw DiskLayoutError.grubDirectoryMissing(path: grubDirectory, missing: "kernel.img")
        }
        for module in defaultModules where !FileManager.default.fileExists(atPath: "\(grubDirectory)/\(module).mod") {
            throw DiskLayoutError.grubModuleMissing(directory: grubDirectory, module: module)
        }
        let config = try TemporaryPath(prefix: "rehost-early", suffix: ".cfg")
        let text = Array(earlyConfig(bootFilesystemUUID: bootFilesystemUUID, grubDirectory: bootGrubDirectory).utf8)
        let configFile = try RawFile(path: config.path, mode: .readWrite)
        try configFile.write(text, at: 0)
        return try GrubImages.runMkimage(mkimage, ["-O", "x86_64-efi", "-c", config.path, "-p", bootGrubDirectory, "-d", grubDirectory]
                                         + defaultModules, name: "rehost-grubx64", suffix: ".efi")
    }
}

enum GrubImages {
    /// Runs grub-mkimage with `arguments` (without `-o`) and returns the image it wrote.
    static func runMkimage(_ mkimage: String, _ arguments: [String], name: String, suffix: String) throws -> [UInt8] {
        let output = try TemporaryPath(prefix: name, suffix: suffix)
        let result = try Tool.run(mkimage, arguments + ["-o", output.path])
        guard result.status == 0 else {
            throw ToolError.failed(tool: "grub-mkimage", status: result.status, stderr: result.stderr)
        }
        let file = try RawFile(path: output.path, mode: .readOnly)
        let size = try file.size
        guard size >= 512 else { throw DiskLayoutError.coreImageTooSmall(size: Int(size)) }
        return try file.read(count: Int(size), at: 0)
    }
}
