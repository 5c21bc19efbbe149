import Foundation
import TestSupport

/// A small ext3 filesystem with one of everything the manifest must describe, built with mke2fs -d
/// from a staging directory and then finished with `debugfs -w` (owners, xattrs, flags, devices, times).
/// All expectations below come from these inputs, never from debugfs output.
struct SampleFilesystem {
    static let blockSize = 4096
    static let fakeTime = "1600000000"

    // Inputs the tests check against.
    static let hostsText = "127.0.0.1\tlocalhost\n"
    static let spacedText = "a name with spaces\n"
    /// Names debugfs output must not mangle: a newline, a tab, non-ASCII.
    static let awkwardNames = ["new\nline", "caf\u{e9} tab\there"]
    static let slowTarget = String(repeating: "long/", count: 20) + "target"
    static let highUID: UInt32 = 100_000
    static let highGID: UInt32 = 4_000_000_000
    static let selinuxLabel = Array("system_u:object_r:etc_t:s0\0".utf8)
    static let hardLinkSeconds: Int64 = 1_388_631_845  // 2014-01-02T03:04:05Z
    static let hostsMtime: Int64 = 1_400_000_000
    /// The sparse file: 1 MiB with two data blocks at blocks 25 and 26.
    static let sparseDataBlock: UInt64 = 25
    static let sparseSize: UInt64 = 1 << 20

    let staging: String
    let digests: [String: String]

    /// Writes the staging tree into `directory/staging`.
    static func stage(in directory: TemporaryDirectory) throws -> SampleFilesystem {
        let staging = directory.file("staging")
        let fm = FileManager.default
        for dir in ["etc", "dir with space", "sub", "empty dir"] {
            try fm.createDirectory(atPath: "\(staging)/\(dir)", withIntermediateDirectories: true)
        }
        try Data(hostsText.utf8).write(to: URL(fileURLWithPath: "\(staging)/etc/hosts"))
        try Data("motd\n".utf8).write(to: URL(fileURLWithPath: "\(staging)/etc/motd"))
        try Data(spacedText.utf8).write(to: URL(fileURLWithPath: "\(staging)/dir with space/file name.txt"))
        try Data("linked\n".utf8).write(to: URL(fileURLWithPath: "\(staging)/hard1"))
        try fm.linkItem(atPath: "\(staging)/hard1", toPath: "\(staging)/sub/hard2")
        _ = fm.createFile(atPath: "\(staging)/empty", contents: Data())
        for name in awkwardNames { _ = fm.createFile(atPath: "\(staging)/\(name)", contents: Data(name.utf8)) }
        var generator = SeededBytes(seed: 42)
        try Data(generator.next(300 * 1024 + 17)).write(to: URL(fileURLWithPath: "\(staging)/big"))
        try fm.createSymbolicLink(atPath: "\(staging)/link", withDestinationPath: "etc/hosts")
        try fm.createSymbolicLink(atPath: "\(staging)/slowlink", withDestinationPath: slowTarget)
        try Command.run("dd", ["if=\(staging)/big", "of=\(staging)/sparse", "bs=\(blockSize)",
                               "seek=\(sparseDataBlock)", "count=2", "conv=notrunc"]).requireSuccess()
        try Command.run("truncate", ["-s", "\(sparseSize)", "\(staging)/sparse"]).requireSuccess()
        try Command.run("mkfifo", ["\(staging)/fifo"]).requireSuccess()
        try Command.run("python3", ["-c", "import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])",
                                    "\(staging)/sock"]).requireSuccess()

        var digests: [String: String] = [:]
        for path in ["/etc/hosts", "/etc/motd", "/dir with space/file name.txt", "/hard1", "/empty", "/big", "/sparse"] {
            let result = try Command.run("sha256sum", [staging + path]).requireSuccess()
            digests[path] = String(result.stdout.prefix(64))
        }
        // mke2fs -d copies atimes, and reading the staging tree would move them (relatime updates an
        // atime older than a day or than the mtime). Atimes in the future stay put, so every build
        // of this staging tree gets the same times.
        let future = Int(Date().timeIntervalSince1970) + 30 * 86_400
        try Command.run("find", [staging, "-exec", "touch", "-h", "-a", "-d", "@\(future)", "{}", "+"]).requireSuccess()
        try Data(selinuxLabel).write(to: URL(fileURLWithPath: directory.file("selinux-value")))
        return SampleFilesystem(staging: staging, digests: digests)
    }

    /// Makes the filesystem in `image` (starting `offset` bytes in) and applies the debugfs edits.
    func build(image: String, offset: UInt64 = 0, scratch: TemporaryDirectory) throws {
        var arguments = ["-q", "-F", "-t", "ext3", "-I", "128", "-b", "\(Self.blockSize)", "-d", staging]
        if offset != 0 { arguments += ["-E", "offset=\(offset)"] }
        arguments += [image, "16M"]
        // A fixed clock, so two builds of the same tree get the same times.
        try Command.run("mke2fs", arguments, environment: ["E2FSPROGS_FAKE_TIME": Self.fakeTime]).requireSuccess()
        let edits = [
            "sif /etc/hosts uid \(Self.highUID)",
            "sif /etc/hosts gid \(Self.highGID)",
            "sif /etc/hosts mode 0104644",
            "sif /etc/hosts mtime @\(Self.hostsMtime)",
            "ea_set /etc/hosts user.comment \"two words\"",
            "ea_set -f \(scratch.file("selinux-value")) /etc/hosts security.selinux",
            "sif \"/dir with space\" mode 041777",
            "sif /big flags 0x10",
            "sif /empty flags 0x20",
            "sif /hard1 atime @\(Self.hardLinkSeconds)",
            "sif /hard1 mtime @\(Self.hardLinkSeconds)",
            "sif /hard1 ctime @\(Self.hardLinkSeconds)",
            "mkdir /dev",
            // debugfs 1.47's mknod takes the name literally: cd first.
            "cd /dev",
            "mknod console c 5 1",
            "mknod sda b 8 0",
            "mknod big-minor b 259 300",
        ]
        try debugfsWrite(image: image, offset: offset, edits, scratch: scratch)
    }
}

/// Runs `debugfs -w -f` and fails on any error line (debugfs itself exits 0 after failed commands).
func debugfsWrite(image: String, offset: UInt64 = 0, _ commands: [String], scratch: TemporaryDirectory) throws {
    let file = scratch.file("edits-\(UUID().uuidString)")
    try Data((commands.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: file))
    let target = offset == 0 ? image : "\(image)?offset=\(offset)"
    // debugfs stamps what it creates with the time; the fixed clock keeps rebuilds identical.
    let result = try Command.run("debugfs", ["-w", "-f", file, target],
                                 environment: ["E2FSPROGS_FAKE_TIME": SampleFilesystem.fakeTime]).requireSuccess()
    let errors = result.stderr.split(separator: "\n").filter { !$0.hasPrefix("debugfs ") && !$0.isEmpty }
    if !errors.isEmpty {
        throw TestSupportError.commandFailed(commandLine: "debugfs -w -f \(file) \(target)", status: 0,
                                             stderr: errors.joined(separator: " | "))
    }
}

/// Reproducible incompressible bytes (xorshift64*), so test inputs are the same on every run.
struct SeededBytes {
    var state: UInt64
    init(seed: UInt64) { state = seed | 1 }
    mutating func next(_ count: Int) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(count + 8)
        while bytes.count < count {
            state ^= state >> 12
            state ^= state << 25
            state ^= state >> 27
            withUnsafeBytes(of: state &* 0x2545_F491_4F6C_DD1D) { bytes.append(contentsOf: $0) }
        }
        return Array(bytes.prefix(count))
    }
}
