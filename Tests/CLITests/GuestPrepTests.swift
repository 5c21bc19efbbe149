import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// A small Debian-like guest (systemd, SELinux enforcing with its own file_contexts) made by
/// mke2fs -d, with everything `clean` removes and things it must leave alone.
struct PrepGuest {
    let directory: TemporaryDirectory
    var tree: String { directory.file("tree") }
    var image: String { directory.file("guest.img") }
    static let oldShadow = "root:$6$oldsalt$oldhash:19000:0:99999:7:::"

    init(size: String = "24M", extra: String = "") throws {
        directory = try TemporaryDirectory(prefix: "rehost-prep")
        let script = #"""
        set -e
        R="$1"
        mkdir -p "$R"/etc/ssh "$R"/etc/init.d "$R"/etc/udev/rules.d "$R"/etc/selinux/targeted/contexts/files "$R"/etc/systemd/system \
                 "$R"/lib/systemd "$R"/sbin "$R"/root/.ssh "$R"/home/alice/.ssh "$R"/var/log/apt "$R"/var/log/journal/abc \
                 "$R"/var/mail "$R"/tmp/dir "$R"/var/tmp "$R"/var/cache/apt/archives/partial "$R"/var/lib/systemd \
                 "$R"/var/lib/cloud/instances/i-123 "$R"/var/crash "$R"/var/lib/dhcp "$R"/usr/share/zoneinfo/Europe \
                 "$R"/usr/local/bin "$R"/opt
        printf 'root:x:0:0:root:/root:/bin/sh\nalice:x:1234:1234:Alice:/home/alice:/bin/sh\nbob:x:1500:1500::/home/bob:/bin/sh\n' > "$R/etc/passwd"
        printf 'root:x:0:\nadm:x:4:\nmail:x:8:\nstaff:x:1234:\nbob:x:1500:\n' > "$R/etc/group"
        printf 'root:$6$oldsalt$oldhash:19000:0:99999:7:::\nalice:!:19000:0:99999:7:::\n' > "$R/etc/shadow"
        chmod 640 "$R/etc/shadow"
        printf '0123456789abcdef0123456789abcdef\n' > "$R/etc/machine-id"
        echo olddeb > "$R/etc/hostname"
        printf '127.0.0.1\tlocalhost\n127.0.1.1\tolddeb\n' > "$R/etc/hosts"
        echo Etc/UTC > "$R/etc/timezone"
        printf 'TZif2 Paris' > "$R/usr/share/zoneinfo/Europe/Paris"
        printf 'TZif2 UTC' > "$R/usr/share/zoneinfo/UTC"
        ln -s /usr/share/zoneinfo/UTC "$R/etc/localtime"
        printf 'UUID=x / ext4 defaults 0 1\n' > "$R/etc/fstab"
        printf 'SELINUX=enforcing\nSELINUXTYPE=targeted\n' > "$R/etc/selinux/config"
        printf '%s\n' '/etc(/.*)?	system_u:object_r:etc_t:s0' '/etc/shadow	--	system_u:object_r:shadow_t:s0' \
            '/root/\.ssh(/.*)?	system_u:object_r:ssh_home_t:s0' '/home/[^/]+/\.ssh(/.*)?	system_u:object_r:ssh_home_t:s0' \
            '/var/lib/rehost-firstboot(/.*)?	system_u:object_r:var_lib_t:s0' '/usr/local/sbin(/.*)?	system_u:object_r:bin_t:s0' \
            '/opt(/.*)?	system_u:object_r:usr_t:s0' > "$R/etc/selinux/targeted/contexts/files/file_contexts"
        printf '#!/bin/sh\n# Debian-style: no key generation here\nexec /usr/sbin/sshd\n' > "$R/etc/init.d/ssh"
        printf 'systemd' > "$R/lib/systemd/systemd"
        ln -s /lib/systemd/systemd "$R/sbin/init"
        echo 'ls -la' > "$R/root/.bash_history"
        echo 'sudo -i' > "$R/home/alice/.bash_history"
        echo 'ssh-ed25519 AAAAold alice@old' > "$R/home/alice/.ssh/authorized_keys"
        echo PRIVATE > "$R/root/.ssh/id_rsa"
        echo HOSTKEY > "$R/etc/ssh/ssh_host_rsa_key"; echo HOSTPUB > "$R/etc/ssh/ssh_host_rsa_key.pub"
        echo 'Port 22' > "$R/etc/ssh/sshd_config"
        echo 'SUBSYSTEM=="net", ATTR{address}=="00:16:3e:00:00:01", NAME="eth0"' > "$R/etc/udev/rules.d/70-persistent-net.rules"
        head -c 5000 /dev/urandom | base64 > "$R/var/log/syslog"; chmod 640 "$R/var/log/syslog"
        echo 'Start-Date: 2014' > "$R/var/log/apt/history.log"; echo old | gzip > "$R/var/log/apt/history.log.1.gz"
        head -c 3000 /dev/urandom > "$R/var/log/journal/abc/system.journal"
        echo 'From old' > "$R/var/mail/alice"; chmod 660 "$R/var/mail/alice"
        echo a > "$R/tmp/a"; echo b > "$R/tmp/dir/b"; echo c > "$R/var/tmp/c"; chmod 1777 "$R/tmp" "$R/var/tmp"
        echo deb > "$R/var/cache/apt/archives/foo.deb"; echo bin > "$R/var/cache/apt/pkgcache.bin"
        head -c 512 /dev/urandom > "$R/var/lib/systemd/random-seed"
        echo '{}' > "$R/var/lib/cloud/instances/i-123/obj.pkl"
        ln -s /var/lib/cloud/instances/i-123 "$R/var/lib/cloud/instance"
        printf '#!/bin/sh -e\ncurl -s http://169.254.169.254/latest/user-data | sh\ntouch /var/lock/local\nexit 0\n' > "$R/etc/rc.local"
        chmod 755 "$R/etc/rc.local"
        echo core > "$R/var/crash/core.1"
        echo 'lease { fixed-address 10.0.0.5; }' > "$R/var/lib/dhcp/dhclient.eth0.leases"
        echo 'keep me' > "$R/home/alice/notes.txt"
        mkdir -p "$R/var/lib/git/.ssh"; echo 'ssh-ed25519 AAAAservice' > "$R/var/lib/git/.ssh/authorized_keys"
        printf 'git:x:110:110::/var/lib/git:/bin/sh\n' >> "$R/etc/passwd"
        ln -s ../../../../../../tmp "$R/etc/outside"
        chown -R 1234:1234 "$R/home/alice"; chown 0:4 "$R/var/log/syslog"; chown 1234:8 "$R/var/mail/alice"
        """# + extra
        try Command.run("sh", ["-c", script, "sh", tree]).requireSuccess()
        try Command.run("mke2fs", ["-q", "-F", "-t", "ext4", "-L", "root", "-d", tree, image, size]).requireSuccess()
        // Labels on what exists, as a relabelled guest has them.
        var commands = ""
        for (path, label) in [("/etc", "etc_t"), ("/etc/shadow", "shadow_t"), ("/var/log/syslog", "var_log_t"), ("/home/alice", "user_home_dir_t"),
                              ("/home/alice/.ssh", "ssh_home_t"), ("/var/lib", "var_lib_t"), ("/usr/local", "usr_t"), ("/opt", "usr_t")] {
            commands += "ea_set \(path) security.selinux system_u:object_r:\(label):s0\n"
        }
        try Command.run("debugfs", ["-w", "-f", "-", image], stdin: Array(commands.utf8)).requireSuccess()
    }
}

/// What debugfs, an independent reader, says about one path.
struct DebugfsStat: Equatable {
    /// The permission bits, as debugfs prints them.
    var mode: UInt16
    var uid: UInt32
    var gid: UInt32
    var size: UInt64

    static func of(_ image: String, _ path: String) throws -> DebugfsStat? {
        let out = try Command.run("debugfs", ["-R", "stat \"\(path)\"", image]).stdout
        guard let modeRange = out.range(of: "Mode:  ") ?? out.range(of: "Mode: ") else { return nil }
        let mode = UInt16(out[modeRange.upperBound...].prefix { $0.isNumber }, radix: 8) ?? 0
        func number(_ key: String) -> UInt64 {
            guard let range = out.range(of: key) else { return 0 }
            return UInt64(out[range.upperBound...].drop { $0 == " " }.prefix { $0.isNumber }) ?? 0
        }
        return DebugfsStat(mode: mode, uid: UInt32(number("User:")), gid: UInt32(number("Group:")), size: number("Size: "))
    }

    static func cat(_ image: String, _ path: String) throws -> String {
        try Command.run("debugfs", ["-R", "cat \"\(path)\"", image]).stdout
    }

    static func label(_ image: String, _ path: String) throws -> String? {
        let out = try Command.run("debugfs", ["-R", "ea_get \"\(path)\" security.selinux", image])
        guard out.succeeded, !out.stdout.isEmpty, !out.stderr.contains("not found") else { return nil }
        return out.stdout.split(separator: "\n").first.map { String($0).replacingOccurrences(of: "\0", with: "") }
            .map { $0.split(separator: ":").dropFirst(2).first.map(String.init) ?? $0 }
    }

    static func list(_ image: String, _ path: String) throws -> [String] {
        try Command.run("debugfs", ["-R", "ls \"\(path)\"", image]).stdout
            .split(whereSeparator: { $0 == " " || $0 == "\n" }).filter { !$0.hasPrefix("(") && Int($0) == nil && $0 != "." && $0 != ".." }.map(String.init)
    }
}

/// `rehost clean` and `rehost customize`, read back with debugfs.
struct GuestPrepTests {
    func sha256(_ path: String) throws -> String { try GuestFilesFixture.sha256(path) }

    func fsck(_ image: String) throws {
        let result = try Command.run("e2fsck", ["-fn", image])
        #expect(result.status == 0, "e2fsck: \(result.stdout)\(result.stderr)")
    }

    @Test func cleanDefaultsReadBackWithDebugfs() throws {
        let guest = try PrepGuest()
        let image = guest.image
        let result = try Command.runRehost(["clean", "--json", image]).requireSuccess()
        let report = try #require(try JSONSerialization.jsonObject(with: Data(result.stdoutBytes)) as? [String: Any])
        let edits = try #require(report["edits"] as? [[String: Any]])
        let touched = Set(edits.compactMap { $0["path"] as? String })
        for gone in ["/root/.bash_history", "/home/alice/.bash_history", "/root/.ssh", "/home/alice/.ssh", "/etc/ssh/ssh_host_rsa_key",
                     "/etc/ssh/ssh_host_rsa_key.pub", "/etc/udev/rules.d/70-persistent-net.rules", "/var/log/journal/abc/system.journal",
                     "/tmp/a", "/tmp/dir", "/var/tmp/c", "/var/cache/apt/archives/foo.deb", "/var/cache/apt/pkgcache.bin",
                     "/var/lib/systemd/random-seed", "/var/lib/cloud/instances/i-123", "/var/lib/cloud/instance", "/var/crash/core.1",
                     "/var/lib/dhcp/dhclient.eth0.leases", "/var/log/apt/history.log.1.gz"] {
            #expect(try DebugfsStat.of(image, gone) == nil, "\(gone) is still there")
            #expect(touched.contains(gone), "\(gone) not in the report")
        }
        // Truncated in place: owner, mode and label kept.
        #expect(try DebugfsStat.of(image, "/var/log/syslog") == DebugfsStat(mode: 0o640, uid: 0, gid: 4, size: 0))
        #expect(try DebugfsStat.label(image, "/var/log/syslog") == "var_log_t")
        #expect(try DebugfsStat.of(image, "/var/log/apt/history.log")?.size == 0)
        #expect(try DebugfsStat.of(image, "/var/mail/alice") == DebugfsStat(mode: 0o660, uid: 1234, gid: 8, size: 0))
        #expect(try DebugfsStat.of(image, "/etc/machine-id") == DebugfsStat(mode: 0o644, uid: 0, gid: 0, size: 0))
        // Directories the tools expect stay.
        #expect(try DebugfsStat.of(image, "/tmp")?.mode == 0o1777)
        #expect(try DebugfsStat.list(image, "/tmp") == [])
        #expect(try DebugfsStat.of(image, "/var/cache/apt/archives/partial")?.mode == 0o755)
        #expect(try DebugfsStat.of(image, "/var/lib/cloud/instances") != nil)
        // The metadata fetcher commented out, the rest of rc.local kept.
        #expect(try DebugfsStat.cat(image, "/etc/rc.local")
            == "#!/bin/sh -e\n#rehost-clean# curl -s http://169.254.169.254/latest/user-data | sh\ntouch /var/lock/local\nexit 0\n")
        // Debian's sshd does not make keys: a first-boot job does, started by systemd.
        let scripts = try DebugfsStat.list(image, "/var/lib/rehost-firstboot/scripts")
        #expect(scripts == ["0001-ssh-hostkeys"])
        #expect(try DebugfsStat.cat(image, "/var/lib/rehost-firstboot/scripts/0001-ssh-hostkeys").contains("ssh-keygen -A"))
        #expect(try DebugfsStat.of(image, "/var/lib/rehost-firstboot/scripts/0001-ssh-hostkeys")?.mode == 0o755)
        #expect(try DebugfsStat.of(image, "/usr/local/sbin/rehost-firstboot")?.mode == 0o755)
        #expect(try DebugfsStat.cat(image, "/etc/systemd/system/rehost-firstboot.service").contains("ExecStart=/usr/local/sbin/rehost-firstboot"))
        let wants = try Command.run("debugfs", ["-R", "stat /etc/systemd/system/multi-user.target.wants/rehost-firstboot.service", image]).stdout
        #expect(wants.contains("Fast link dest: \"/etc/systemd/system/rehost-firstboot.service\""), "\(wants)")
        // New files labelled from the guest's file_contexts.
        #expect(try DebugfsStat.label(image, "/usr/local/sbin/rehost-firstboot") == "bin_t")
        #expect(try DebugfsStat.label(image, "/var/lib/rehost-firstboot/scripts/0001-ssh-hostkeys") == "var_lib_t")
        #expect(try DebugfsStat.label(image, "/etc/systemd/system/rehost-firstboot.service") == "etc_t")
        // Left alone.
        #expect(try DebugfsStat.cat(image, "/home/alice/notes.txt") == "keep me\n")
        #expect(try DebugfsStat.cat(image, "/etc/ssh/sshd_config") == "Port 22\n")
        #expect(try DebugfsStat.cat(image, "/var/lib/git/.ssh/authorized_keys") == "ssh-ed25519 AAAAservice\n", "a service's keys")
        #expect(try DebugfsStat.cat(image, "/etc/shadow").hasPrefix(PrepGuest.oldShadow))
        try fsck(image)

        // Idempotent: nothing to change, and the image is not written.
        let before = try sha256(image)
        let again = try Command.runRehost(["clean", image]).requireSuccess()
        #expect(again.stdout.contains("nothing to change"), "\(again.stdout)")
        #expect(try sha256(image) == before)
    }

    /// The dry run names every file the real run touches, and writes nothing.
    @Test func dryRunListsEveryFileAndWritesNothing() throws {
        let guest = try PrepGuest()
        let before = try sha256(guest.image)
        let dry = try Command.runRehost(["clean", "--dry-run", "--json", guest.image]).requireSuccess()
        #expect(try sha256(guest.image) == before)
        let real = try Command.runRehost(["clean", "--json", guest.image]).requireSuccess()
        func paths(_ result: CommandResult) throws -> [String] {
            let report = try #require(try JSONSerialization.jsonObject(with: Data(result.stdoutBytes)) as? [String: Any])
            return try #require(report["edits"] as? [[String: Any]]).compactMap { ($0["path"] as? String).map { "\($0)" } }
        }
        #expect(try paths(dry) == paths(real))
        #expect(try paths(dry).count > 25)
    }

    @Test func operationsChooseAndKeepUserSSH() throws {
        let guest = try PrepGuest()
        try Command.runRehost(["clean", "--operations", "defaults,-logfiles,-ssh-hostkeys", "--keep-user-ssh", guest.image]).requireSuccess()
        #expect(try DebugfsStat.of(guest.image, "/var/log/syslog")?.size ?? 0 > 0)
        #expect(try DebugfsStat.cat(guest.image, "/home/alice/.ssh/authorized_keys") == "ssh-ed25519 AAAAold alice@old\n")
        #expect(try DebugfsStat.cat(guest.image, "/etc/ssh/ssh_host_rsa_key") == "HOSTKEY\n")
        #expect(try DebugfsStat.of(guest.image, "/root/.bash_history") == nil)
        let unknown = try Command.runRehost(["clean", "--operations", "nonsense", guest.image])
        #expect(unknown.status != 0 && unknown.stderr.contains("nonsense: no such operation"), "\(unknown.stderr)")
        let list = try Command.runRehost(["clean", "--list-operations"]).requireSuccess().stdout
        #expect(list.split(separator: "\n").count == 14)
        #expect(list.contains("ssh-userdir [default]: "))
    }

    @Test func customizeReadBackWithDebugfs() throws {
        let guest = try PrepGuest()
        let image = guest.image
        let host = guest.directory.file("host")
        try Command.run("sh", ["-c", """
            set -e; mkdir -p "$1/app/conf"; echo run > "$1/app/run.sh"; chmod 750 "$1/app/run.sh"; echo x=1 > "$1/app/conf/x.conf"
            ln -s run.sh "$1/app/start"; echo 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINEWKEY new@host' > "$1/key.pub"
            printf '#!/bin/sh\\necho FIRSTBOOT-SCRIPT\\n' > "$1/setup.sh"
            """, "sh", host]).requireSuccess()
        let result = try Command.runRehost([
            "customize", image, "--root-password", "password:s3cret pass", "--hostname", "web1.example.com", "--timezone", "Europe/Paris",
            "--mkdir", "/srv/data/deep", "--copy-in", "\(host)/app:/opt", "--chown", "alice:staff",
            "--write", "/etc/motd:Welcome: rehosted\n", "--append-line", "/etc/fstab:tmpfs /tmp tmpfs defaults 0 0",
            "--delete", "/var/crash", "--chmod", "0600:/etc/fstab", "--ssh-inject", "bob:\(host)/key.pub",
            "--firstboot", "\(host)/setup.sh", "--firstboot-command", "echo FIRSTBOOT-COMMAND",
        ]).requireSuccess()
        #expect(result.stdout.contains("customize: "), "\(result.stdout)")

        // /etc/shadow: a SHA-512 crypt hash glibc accepts, the file's owner, mode and label kept.
        let shadow = try DebugfsStat.cat(image, "/etc/shadow")
        let rootLine = try #require(shadow.split(separator: "\n").first { $0.hasPrefix("root:") })
        let hash = String(rootLine.split(separator: ":")[1])
        #expect(hash.hasPrefix("$6$"))
        let check = try Command.run("/usr/bin/python3", ["-W", "ignore", "-c", "import crypt,sys; print(crypt.crypt(sys.argv[1], sys.argv[2]) == sys.argv[2])",
                                                         "s3cret pass", hash]).requireSuccess()
        #expect(check.stdout == "True\n")
        #expect(shadow.contains("\nalice:!:19000:0:99999:7:::"))
        #expect(try DebugfsStat.of(image, "/etc/shadow") == DebugfsStat(mode: 0o640, uid: 0, gid: 0, size: UInt64(shadow.utf8.count)))
        #expect(try DebugfsStat.label(image, "/etc/shadow") == "shadow_t")

        // The key: bob's home made, owners from the guest's passwd (the host has no bob), modes as sshd wants.
        for directory in ["/home/bob", "/home/bob/.ssh"] {
            let stat = try #require(try DebugfsStat.of(image, directory))
            #expect(stat.mode == 0o700 && stat.uid == 1500 && stat.gid == 1500, "\(directory): \(stat)")
        }
        #expect(try DebugfsStat.of(image, "/home/bob/.ssh/authorized_keys")
            == DebugfsStat(mode: 0o600, uid: 1500, gid: 1500, size: 53))
        #expect(try DebugfsStat.cat(image, "/home/bob/.ssh/authorized_keys") == "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINEWKEY new@host\n")
        #expect(try DebugfsStat.label(image, "/home/bob/.ssh/authorized_keys") == "ssh_home_t")

        // The tree: modes kept, owners by the guest's names (alice 1234, staff 1234), labels from file_contexts.
        #expect(try DebugfsStat.of(image, "/opt/app/run.sh") == DebugfsStat(mode: 0o750, uid: 1234, gid: 1234, size: 4))
        #expect(try DebugfsStat.of(image, "/opt/app/conf")?.mode == 0o755)
        #expect(try DebugfsStat.of(image, "/opt/app/conf")?.uid == 1234)
        #expect(try DebugfsStat.cat(image, "/opt/app/conf/x.conf") == "x=1\n")
        #expect(try Command.run("debugfs", ["-R", "stat /opt/app/start", image]).stdout.contains("Fast link dest: \"run.sh\""))
        #expect(try DebugfsStat.label(image, "/opt/app/run.sh") == "usr_t")

        #expect(try DebugfsStat.cat(image, "/etc/motd") == "Welcome: rehosted\n")
        #expect(try DebugfsStat.label(image, "/etc/motd") == "etc_t")
        #expect(try DebugfsStat.cat(image, "/etc/fstab") == "UUID=x / ext4 defaults 0 1\ntmpfs /tmp tmpfs defaults 0 0\n")
        #expect(try DebugfsStat.of(image, "/etc/fstab")?.mode == 0o600)
        #expect(try DebugfsStat.of(image, "/srv/data/deep")?.mode == 0o755)
        #expect(try DebugfsStat.of(image, "/var/crash") == nil)
        #expect(try DebugfsStat.cat(image, "/etc/hostname") == "web1\n")
        #expect(try DebugfsStat.cat(image, "/etc/hosts") == "127.0.0.1\tlocalhost\n127.0.1.1\tweb1.example.com web1\n")
        #expect(try DebugfsStat.cat(image, "/etc/timezone") == "Europe/Paris\n")
        #expect(try Command.run("debugfs", ["-R", "stat /etc/localtime", image]).stdout.contains("Fast link dest: \"/usr/share/zoneinfo/Europe/Paris\""))
        // First boot: the script, then the command, queued in order.
        #expect(try DebugfsStat.list(image, "/var/lib/rehost-firstboot/scripts") == ["0001-setup.sh", "0002-command"])
        #expect(try DebugfsStat.cat(image, "/var/lib/rehost-firstboot/scripts/0002-command") == "#!/bin/sh\necho FIRSTBOOT-COMMAND\n")
        // Left alone.
        #expect(try DebugfsStat.cat(image, "/home/alice/notes.txt") == "keep me\n")
        #expect(try DebugfsStat.of(image, "/var/log/syslog")?.size ?? 0 > 0)
        try fsck(image)

        // Idempotent apart from the password (a new salt each time) and host keys.
        let before = try sha256(image)
        let again = try Command.runRehost([
            "customize", image, "--hostname", "web1.example.com", "--timezone", "Europe/Paris", "--mkdir", "/srv/data/deep",
            "--append-line", "/etc/fstab:tmpfs /tmp tmpfs defaults 0 0", "--ssh-inject", "bob:\(host)/key.pub", "--chmod", "0600:/etc/fstab",
            "--firstboot-command", "echo FIRSTBOOT-COMMAND",
        ]).requireSuccess()
        #expect(again.stdout.contains("nothing to change"), "\(again.stdout)")
        #expect(try sha256(image) == before)
    }

    /// The first-boot hook follows the guest's init system: an upstart job, or a SysV init script
    /// with S99 links in Debian's /etc/rcN.d.
    @Test func firstBootHookPerInitSystem() throws {
        let upstart = try PrepGuest(extra: "\nrm \"$R/sbin/init\"; mkdir -p \"$R/etc/init\"; echo 'start on runlevel [2345]' > \"$R/etc/init/tty1.conf\"\n")
        try Command.runRehost(["customize", upstart.image, "--firstboot-command", "true"]).requireSuccess()
        #expect(try DebugfsStat.cat(upstart.image, "/etc/init/rehost-firstboot.conf").contains("exec /usr/local/sbin/rehost-firstboot"))
        #expect(try DebugfsStat.of(upstart.image, "/etc/systemd/system/rehost-firstboot.service") == nil)

        let sysv = try PrepGuest(extra: """

            rm "$R/sbin/init"; echo 'T0:23:respawn:/sbin/getty -L ttyS0 9600 vt100' > "$R/etc/inittab"
            for level in 0 1 2 3 4 5 6; do mkdir -p "$R/etc/rc$level.d"; done

            """)
        try Command.runRehost(["customize", sysv.image, "--firstboot-command", "true"]).requireSuccess()
        #expect(try DebugfsStat.cat(sysv.image, "/etc/init.d/rehost-firstboot").contains("exec /usr/local/sbin/rehost-firstboot"))
        #expect(try DebugfsStat.of(sysv.image, "/etc/init.d/rehost-firstboot")?.mode == 0o755)
        for level in 2...5 {
            let link = try Command.run("debugfs", ["-R", "stat /etc/rc\(level).d/S99rehost-firstboot", sysv.image]).stdout
            #expect(link.contains("Fast link dest: \"../init.d/rehost-firstboot\""), "rc\(level).d: \(link)")
        }
        #expect(try DebugfsStat.of(sysv.image, "/etc/rc1.d/S99rehost-firstboot") == nil)
    }

    /// A guest whose glibc predates SHA-512 crypt (2.7) gets an MD5 crypt hash.
    @Test func oldGlibcGetsMD5Crypt() throws {
        // (The old root hash is not a SHA-512 one, and login.defs does not ask for SHA512.)
        let guest = try PrepGuest(extra: "\nmkdir -p \"$R/lib\"; echo elf > \"$R/lib/libc-2.5.so\"; sed -i 's/\\$6\\$oldsalt/$1$oldsalt/' \"$R/etc/shadow\"\n")
        try Command.runRehost(["customize", guest.image, "--root-password", "file:/dev/stdin"], stdin: Array("pw-from-file\nignored\n".utf8)).requireSuccess()
        let shadow = try DebugfsStat.cat(guest.image, "/etc/shadow")
        let hash = String(try #require(shadow.split(separator: "\n").first).split(separator: ":")[1])
        #expect(hash.hasPrefix("$1$"))
        let check = try Command.run("/usr/bin/python3", ["-W", "ignore", "-c", "import crypt,sys; print(crypt.crypt(sys.argv[1], sys.argv[2]) == sys.argv[2])",
                                                         "pw-from-file", hash]).requireSuccess()
        #expect(check.stdout == "True\n")
        // random: printed once, and it is the password.
        let random = try Command.runRehost(["customize", guest.image, "--root-password", "random"]).requireSuccess().stdout
        let password = try #require(random.split(separator: "\n").first { $0.hasPrefix("root password: ") }).dropFirst(15)
        let line = try #require(try DebugfsStat.cat(guest.image, "/etc/shadow").split(separator: "\n").first)
        let again = try Command.run("/usr/bin/python3", ["-W", "ignore", "-c", "import crypt,sys; print(crypt.crypt(sys.argv[1], sys.argv[2]) == sys.argv[2])",
                                                         String(password), String(line.split(separator: ":")[1])]).requireSuccess()
        #expect(again.stdout == "True\n")
        // The guest's own configuration can say SHA-512 (RHEL 5.2 backported it to glibc 2.5).
        try Command.runRehost(["customize", guest.image, "--write", "/etc/login.defs:ENCRYPT_METHOD SHA512\n", "--root-password", "password:x"]).requireSuccess()
        #expect(try DebugfsStat.cat(guest.image, "/etc/shadow").hasPrefix("root:$6$"))
        try Command.runRehost(["customize", guest.image, "--root-password", "locked"]).requireSuccess()
        #expect(try DebugfsStat.cat(guest.image, "/etc/shadow").hasPrefix("root:!:"))
    }

    /// Bad input: one clear line on stderr, exit 1, and the image byte for byte as it was.
    @Test func badInputLeavesTheImageUnchanged() throws {
        let guest = try PrepGuest(size: "8M")
        let big = guest.directory.file("big.bin")
        let notKey = guest.directory.file("not-a-key.pub")
        try Command.run("sh", ["-c", "echo hello > \"$1\"", "sh", notKey]).requireSuccess()
        try Command.run("sh", ["-c", "head -c 12000000 /dev/urandom > \"$1\"", "sh", big]).requireSuccess()
        let vmdk = guest.directory.file("stream.vmdk")
        try Command.run("qemu-img", ["convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", guest.image, vmdk]).requireSuccess()
        let cases: [([String], String, String)] = [
            (["customize", guest.image, "--write", "/../../etc/passwd:x"], guest.image, "climbs above the guest's root"),
            (["customize", guest.image, "--write", "etc/motd:x"], guest.image, "guest paths are absolute"),
            (["customize", guest.image, "--write", "/etc/outside/x:y"], guest.image, "points outside the guest"),
            (["customize", guest.image, "--copy-in", "/nonexistent/file:/opt"], guest.image, "/nonexistent/file: no such file or directory on the host"),
            (["customize", guest.image, "--ssh-inject", "nobody:\(notKey)"], guest.image, "does not hold an OpenSSH public key"),
            (["customize", guest.image, "--write", "/no/such/dir/f:x"], guest.image, "no such file or directory in the guest"),
            (["customize", guest.image, "--timezone", "Mars/Olympus"], guest.image, "a zone the guest has"),
            (["customize", guest.image, "--hostname", "web1", "--copy-in", "\(big):/opt"], guest.image, "space"),
            (["clean", vmdk], vmdk, "cannot be written"),
        ]
        for (arguments, image, message) in cases {
            let before = try sha256(image)
            let result = try Command.runRehost(arguments)
            #expect(result.status == 1, "\(arguments): status \(result.status) \(result.stderr)")
            let lines = result.stderr.split(separator: "\n")
            #expect(lines.count == 1 && result.stderr.contains(message), "\(arguments): \(result.stderr)")
            #expect(try sha256(image) == before, "\(arguments) changed the image")
        }
    }

    /// A guest with a separate /boot: an edit on each filesystem, both staged and committed
    /// together, in a raw disk and in a qcow2 image.
    @Test func editsReachEveryFilesystemTheGuestMounts() throws {
        let fixture = try GuestFilesFixture()
        let qcow2 = try fixture.converted(to: "qcow2")
        for image in [fixture.disk, qcow2] {
            try Command.runRehost(["customize", image, "--write", "/boot/grub/custom.cfg:set timeout=3\n", "--write", "/etc/motd:hi\n",
                                   "--chown", "alice:staff", "--mkdir", "/boot/extra"]).requireSuccess()
            let raw = image == fixture.disk ? image : fixture.directory.file("back.raw")
            if image != fixture.disk {
                try Command.run("qemu-img", ["check", image]).requireSuccess()
                try Command.run("qemu-img", ["convert", "-f", "qcow2", "-O", "raw", image, raw]).requireSuccess()
            }
            let boot = "\(raw)?offset=\(GuestFilesFixture.bootOffset)", root = "\(raw)?offset=\(GuestFilesFixture.rootOffset)"
            #expect(try DebugfsStat.cat(boot, "/grub/custom.cfg") == "set timeout=3\n", "\(image)")
            #expect(try DebugfsStat.of(boot, "/extra") != nil, "\(image)")
            #expect(try DebugfsStat.cat(boot, "/grub/grub.conf") == "title guest\n")
            #expect(try DebugfsStat.cat(root, "/etc/motd") == "hi\n", "\(image)")
            #expect(try DebugfsStat.of(root, "/boot/grub") == nil, "nothing under the mount point on the root filesystem")
            try fsck(boot)
            try fsck(root)
        }
    }

    /// `convert --clean` with customize options: planned with the repairs (the dry run lists them
    /// and writes nothing), applied after them, in the report as guestEdits.
    @Test func convertPlansAndAppliesCleanAndCustomize() throws {
        let fixture = try Fixture.xenInstance()
        let directory = try TemporaryDirectory(prefix: "rehost-prep-convert")
        let disk = directory.file("disk.raw")
        let arguments = ["convert", fixture.imagePath, "-o", disk, "--quiet", "--json", "--clean", "--hostname", "conv1",
                         "--root-password", "random"]
        func edits(_ result: CommandResult) throws -> [String] {
            let report = try #require(try JSONSerialization.jsonObject(with: Data(result.stdoutBytes)) as? [String: Any])
            #expect((report["randomRootPassword"] as? String)?.count == 16)
            return try #require(report["guestEdits"] as? [[String: Any]]).map { "\($0["operation"] ?? "") \($0["path"] ?? "")" }
        }
        let dry = try edits(try Command.runRehost(arguments + ["--dry-run"]).requireSuccess())
        #expect(!FileManager.default.fileExists(atPath: disk))
        let real = try edits(try Command.runRehost(arguments).requireSuccess())
        #expect(dry == real)
        #expect(real.contains("bash-history /root/.bash_history"))
        #expect(real.contains("hostname /etc/sysconfig/network"))
        #expect(real.contains("root-password /etc/shadow"))
        let root = "\(disk)?offset=\(try DiskPartitions.firstLinuxOffset(disk))"
        #expect(try DebugfsStat.of(root, "/root/.bash_history") == nil)
        #expect(try DebugfsStat.cat(root, "/etc/sysconfig/network").contains("HOSTNAME=conv1"))
        // The fixture carries no libc-2.x.so to say its glibc is old: SHA-512 crypt.
        #expect(try DebugfsStat.cat(root, "/etc/shadow").hasPrefix("root:$6$"))
        try fsck(root)
    }

    /// `convert --copy-in` of more data than the guest holds: the new filesystem is sized for it,
    /// and the copy arrives whole.
    @Test func convertSizesTheDiskForWhatCopyInAdds() throws {
        let fixture = try Fixture.xenInstance()
        let directory = try TemporaryDirectory(prefix: "rehost-prep-size")
        let payload = directory.file("payload")
        try FileManager.default.createDirectory(atPath: payload, withIntermediateDirectories: true)
        try Command.run("sh", ["-c", "head -c 400M /dev/urandom > \"$1/big.bin\"", "sh", payload]).requireSuccess()
        let disk = directory.file("disk.raw")
        let result = try Command.runRehost(["convert", fixture.imagePath, "-o", disk, "--quiet", "--json", "--digest", "none",
                                            "--copy-in", "\(payload):/opt"], timeout: .seconds(600))
        #expect(result.status == 0, "\(result.stderr)")
        let root = "\(disk)?offset=\(try DiskPartitions.firstLinuxOffset(disk))"
        try Command.run("debugfs", ["-R", "dump /opt/payload/big.bin \(directory.file("back.bin"))", root]).requireSuccess()
        #expect(try Command.run("cmp", ["\(payload)/big.bin", directory.file("back.bin")]).status == 0, "the copy arrived whole")
        try fsck(root)
    }

    /// An image a running qemu holds is refused, and left alone.
    @Test func imageInUseIsRefused() throws {
        let guest = try PrepGuest()
        let qemu = Process()
        qemu.executableURL = URL(fileURLWithPath: try Command.require("qemu-io"))
        qemu.arguments = ["-f", "raw", "-c", "sleep 60000", guest.image]
        try qemu.run()
        defer { kill(qemu.processIdentifier, SIGKILL); qemu.waitUntilExit() }
        var st = stat()
        #expect(stat(guest.image, &st) == 0)
        var locked = false
        for _ in 0..<100 where !locked {
            let locks = (try? String(contentsOfFile: "/proc/locks", encoding: .utf8)) ?? ""
            locked = locks.split(separator: "\n").contains { $0.contains("OFDLCK") && $0.contains(":\(st.st_ino) ") }
            if !locked { usleep(100_000) }
        }
        try #require(locked, "qemu-io took no lock")
        let before = try sha256(guest.image)
        for arguments in [["clean", guest.image], ["customize", guest.image, "--hostname", "busy"]] {
            let result = try Command.runRehost(arguments)
            #expect(result.status == 1 && result.stderr.contains("in use by another process"), "\(arguments): \(result.stderr)")
            #expect(result.stderr.split(separator: "\n").count == 1)
        }
        #expect(try sha256(guest.image) == before)
    }

    /// In place in qcow2, VDI, VHD and monolithicSparse VMDK images (staged, written through their
    /// tables): the same edits, read back through qemu-img, whose check finds each image clean.
    @Test(arguments: [("qcow2", "qcow2", [String]()), ("vdi", "vdi", []), ("vpc", "vhd", []), ("vmdk", "vmdk", ["-o", "subformat=monolithicSparse"])])
    func cleanAndCustomizeInPlace(format: String, suffix: String, options: [String]) throws {
        let guest = try PrepGuest()
        let image = guest.directory.file("guest.\(suffix)")
        try Command.run("qemu-img", ["convert", "-f", "raw", "-O", format] + options + [guest.image, image]).requireSuccess()
        try Command.runRehost(["clean", image]).requireSuccess()
        try Command.runRehost(["customize", image, "--write", "/etc/motd:hi\n", "--hostname", "q2"]).requireSuccess()
        let check = try Command.run("qemu-img", ["check", "-f", format, image])
        #expect(check.status == 0 || (format == "vpc" && check.stderr.contains("does not support checks")), "\(check.stdout)\(check.stderr)")
        let raw = guest.directory.file("back.raw")
        try Command.run("qemu-img", ["convert", "-f", format, "-O", "raw", image, raw]).requireSuccess()
        #expect(try DebugfsStat.cat(raw, "/etc/motd") == "hi\n")
        #expect(try DebugfsStat.cat(raw, "/etc/hostname") == "q2\n")
        #expect(try DebugfsStat.of(raw, "/root/.bash_history") == nil)
        #expect(try DebugfsStat.of(raw, "/var/log/syslog")?.size == 0)
        #expect(try DebugfsStat.cat(raw, "/home/alice/notes.txt") == "keep me\n")
        try fsck(raw)
    }
}
