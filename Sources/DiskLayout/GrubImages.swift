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

        let output = try TemporaryPath(prefix: "rehost-core", suffix: ".img")
        let result = try Tool.run(mkimage, ["-O", "i386-pc", "-p", prefix, "-o", output.path, "-d", grubDirectory]
            + modules)
        guard result.status == 0 else {
            throw ToolError.failed(tool: "grub-mkimage", status: result.status, stderr: result.stderr)
        }
        let file = try RawFile(path: output.path, mode: .readOnly)
        let size = try file.size
        guard size >= 512 else { throw DiskLayoutError.coreImageTooSmall(size: Int(size)) }
        return try file.read(count: Int(size), at: 0)
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
