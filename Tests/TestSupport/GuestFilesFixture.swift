import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Small guests built by mke2fs -d from host trees made here, for `ls`, `cat`, `copy-out` and
/// `copy-in`: every file's mode, owner, time and contents is known on the host side, so what
/// Rehost shows or copies can be compared with the source and with debugfs.
public struct GuestFilesFixture {
    public let directory: TemporaryDirectory
    /// The root tree: /etc with passwd, group, hostname and an fstab mounting LABEL=guestboot on
    /// /boot; /var/log/bootstrap with reports, a hard link, symlinks (one climbing out of the
    /// guest with ../.., one absolute), a FIFO, a sparse file; /home/alice owned by 1234:1234.
    public var rootTree: String { directory.file("root-tree") }
    /// The /boot tree: grub/grub.conf and a kernel-sized file.
    public var bootTree: String { directory.file("boot-tree") }
    /// The root tree alone, as a bare ext3 filesystem with 128-byte inodes.
    public var bareImage: String { directory.file("bare.img") }
    /// A partitioned raw disk (MBR): partition 1 the /boot tree (ext2), partition 2 the root tree (ext4).
    public var disk: String { directory.file("disk.raw") }
    public static let bootOffset: UInt64 = 1 << 20
    public static let rootOffset: UInt64 = 17 << 20

    public init() throws {
        directory = try TemporaryDirectory(prefix: "rehost-guest-files")
        let script = #"""
        set -e
        R="$1"; B="$2"
        mkdir -p "$R/etc" "$R/boot" "$R/home/alice/reports" "$R/var/log/bootstrap/deep/er" "$R/root"
        printf 'root:x:0:0:root:/root:/bin/sh\nalice:x:1234:1234::/home/alice:/bin/sh\n' > "$R/etc/passwd"
        printf 'root:x:0:\nstaff:x:1234:\n' > "$R/etc/group"
        echo guest-name > "$R/etc/hostname"
        printf 'LABEL=guestroot / ext4 defaults 1 1\nLABEL=guestboot /boot ext2 defaults 1 2\n' > "$R/etc/fstab"
        echo '{"ok":true}' > "$R/var/log/bootstrap/report.json"
        head -c 300000 /dev/urandom > "$R/var/log/bootstrap/blob.bin"
        truncate -s 5M "$R/var/log/bootstrap/sparse.img"; echo tail >> "$R/var/log/bootstrap/sparse.img"
        echo deep > "$R/var/log/bootstrap/deep/er/most.txt"
        ln "$R/var/log/bootstrap/report.json" "$R/var/log/bootstrap/hard.json"
        ln -s report.json "$R/var/log/bootstrap/latest"
        ln -s ../../../../../../../etc/hostname "$R/var/log/bootstrap/up"
        ln -s /etc/hostname "$R/abs"
        mkfifo "$R/var/log/bootstrap/pipe"
        echo secret > "$R/home/alice/reports/a.txt"
        chmod 640 "$R/home/alice/reports/a.txt"; chmod 2750 "$R/home/alice/reports"; chmod 4755 "$R/var/log/bootstrap/blob.bin"
        chmod 700 "$R/root"
        chown -R 1234:1234 "$R/home/alice"
        mkdir -p "$B/grub"
        echo 'title guest' > "$B/grub/grub.conf"
        head -c 70000 /dev/urandom > "$B/vmlinuz-2.6.18"
        find "$R" "$B" -depth -exec touch -h -d @1400000000.123456789 {} +
        touch -h -d @1300000000.5 "$R/var/log/bootstrap/report.json"
        """#
        try Command.run("sh", ["-c", script, "sh", rootTree, bootTree]).requireSuccess()
        try Command.run("mke2fs", ["-q", "-F", "-t", "ext3", "-I", "128", "-L", "bare", "-d", rootTree, bareImage, "40M"]).requireSuccess()
        try Command.run("truncate", ["-s", "60M", disk]).requireSuccess()
        try Command.run("sfdisk", ["-q", disk], stdin: Array("start=2048, size=32768, type=83\nstart=34816, size=81920, type=83\n".utf8)).requireSuccess()
        try Command.run("mke2fs", ["-q", "-F", "-t", "ext2", "-I", "128", "-L", "guestboot", "-d", bootTree,
                                   "-E", "offset=\(Self.bootOffset)", disk, "16M"]).requireSuccess()
        try Command.run("mke2fs", ["-q", "-F", "-t", "ext4", "-L", "guestroot", "-d", rootTree,
                                   "-E", "offset=\(Self.rootOffset)", disk, "40M"]).requireSuccess()
    }

    /// The disk in another format, made by qemu-img (`qcow2`, `vmdk`, `vdi`, `vpc`).
    public func converted(to format: String, options: [String] = [], name: String? = nil) throws -> String {
        let path = directory.file(name ?? "disk.\(format)")
        try Command.run("qemu-img", ["convert", "-f", "raw", "-O", format] + options + [disk, path]).requireSuccess()
        return path
    }

    /// One line per entry below `root` (its relative path first): kind, permissions, owner,
    /// modification time to the second (and nanosecond when `nanoseconds`), and the contents'
    /// SHA-256 or the symlink target; directory sizes left out (they differ between filesystems).
    public static func summary(of root: String, nanoseconds: Bool = true, owners: Bool = true) throws -> [String: String] {
        let time = nanoseconds ? "%T@" : "%Ts"
        let owner = owners ? "%U:%G" : "-"
        let listing = try Command.run("find", [root, "-mindepth", "1", "-printf", "%P\t%y %m \(owner) \(time) %s %l\n"]).requireSuccess().stdout
        var entries: [String: String] = [:]
        for line in listing.split(separator: "\n") {
            let parts = line.split(separator: "\t", maxSplits: 1)
            var value = String(parts[1])
            if value.hasPrefix("d ") {
                var fields = value.split(separator: " ", omittingEmptySubsequences: false)
                fields[4] = "-"
                value = fields.joined(separator: " ")
            }
            if value.hasPrefix("f ") { value += " " + (try sha256(root + "/" + parts[0])) }
            entries[String(parts[0])] = value
        }
        return entries
    }

    public static func sha256(_ path: String) throws -> String {
        String(try Command.run("sha256sum", [path]).requireSuccess().stdout.prefix(64))
    }
}
