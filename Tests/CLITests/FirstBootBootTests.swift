import Foundation
import Testing
import TestSupport

/// First boot, proven under qemu on the SysV-layout fixture (a CentOS 5 tree with /etc/rc.d,
/// converted with `convert --clean` and a `--firstboot-command`): the job runs at the first boot
/// and not at the second, and the SSH host key the clean removed is made anew, once.
///
/// The fixture's own /sbin/init only reports and powers off, and it has no sysvinit, bash,
/// coreutils or OpenSSH. So the test writes (with the same customize options) an init that does
/// what SysV init does at runlevel 3 (`/etc/rc.d/rc 3`: every S link of rc3.d in order, with
/// "start"), busybox links for the tools the runner uses (tee, rm, sync), and the host's
/// ssh-keygen with its libraries. The chain under test is the one a real guest runs: the S99 link,
/// the init script, the runner, the queued scripts, their removal.
struct FirstBootBootTests {
    static let initScript = """
        #!/bin/busybox sh
        # Test init: SysV init's runlevel 3 (every /etc/rc.d/rc3.d/S* with "start", in order), then report.
        bb=/bin/busybox
        exec </dev/console >/dev/console 2>&1
        $bb mount -t proc proc /proc
        $bb mount -t sysfs sysfs /sys
        $bb mount -o remount,rw /
        export PATH=/usr/local/sbin:/usr/sbin:/sbin:/usr/bin:/bin
        for script in /etc/rc.d/rc3.d/S*; do
            [ -x "$script" ] && "$script" start
        done
        echo "REHOST-GUEST: hostkey=$($bb md5sum /etc/ssh/ssh_host_rsa_key 2>&1 | $bb cut -c1-32)"
        echo "REHOST-GUEST: queued=$($bb ls /var/lib/rehost-firstboot/scripts | $bb tr '\\n' ' ')"
        echo REHOST-BOOT-OK
        $bb sync
        $bb mount -o remount,ro /
        $bb poweroff -f

        """

    @Test func firstBootRunsOnceAndNewHostKeys() throws {
        let fixture = try Fixture.xenInstance()
        let directory = try TemporaryDirectory(prefix: "rehost-firstboot")
        let host = directory.file("host")
        // The host's ssh-keygen and the libraries it needs, real files (not the host's symlinks).
        try Command.run("sh", ["-c", """
            set -e; h="$1"; mkdir -p "$h/x86_64-linux-gnu" "$h/links"
            cp -L /usr/bin/ssh-keygen "$h/ssh-keygen"
            cp -L /lib64/ld-linux-x86-64.so.2 "$h/ld-linux-x86-64.so.2"
            for lib in $(ldd /usr/bin/ssh-keygen | awk '$3 ~ /^\\// { print $3 }'); do cp -L "$lib" "$h/x86_64-linux-gnu/"; done
            for tool in tee rm sync cut tr; do ln -s /bin/busybox "$h/links/$tool"; done
            cat > "$h/init"; chmod 755 "$h/init"
            """, "sh", host], stdin: Array(Self.initScript.utf8)).requireSuccess()
        let disk = directory.file("disk.raw")
        let convert = try Command.runRehost([
            "convert", fixture.imagePath, "-o", disk, "--quiet", "--json", "--clean",
            "--firstboot-command", "echo FIRSTBOOT-$((6 * 7))",
            "--mkdir", "/lib64", "--copy-in", "\(host)/ld-linux-x86-64.so.2:/lib64", "--copy-in", "\(host)/x86_64-linux-gnu:/lib",
            "--copy-in", "\(host)/ssh-keygen:/usr/bin", "--copy-in", "\(host)/links/tee:/usr/bin", "--copy-in", "\(host)/links/rm:/usr/bin",
            "--copy-in", "\(host)/links/sync:/usr/bin", "--copy-in", "\(host)/init:/sbin",
        ], timeout: .seconds(600)).requireSuccess()
        #expect(convert.stdout.contains("0002-command"))
        let root = "\(disk)?offset=\(try DiskPartitions.firstLinuxOffset(disk))"
        let oldKey = try Command.run("debugfs", ["-R", "cat /etc/ssh/ssh_host_rsa_key", fixture.imagePath]).requireSuccess().stdout
        #expect(!oldKey.isEmpty)
        #expect(try Command.run("debugfs", ["-R", "cat /etc/ssh/ssh_host_rsa_key", root]).stdout.isEmpty, "the clean removed the old key")

        func boot(_ name: String) throws -> String {
            let log = directory.file("serial-\(name).log")
            let result = try Command.run("/bin/bash", ["\(Fixture.repositoryRoot)/Fixtures/boot.sh", disk, "--format", "raw", "--bus", "virtio",
                                                       "--writable", "--log", log, "--timeout", "400"], timeout: .seconds(460))
            let serial = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            #expect(result.status == 0, "\(name) boot: \(result.stdout)\(result.stderr)")
            return serial
        }
        let first = try boot("first")
        #expect(first.contains("FIRSTBOOT-42"), "the first-boot command's output on the serial console")
        #expect(first.contains("rehost-firstboot: 0001-ssh-hostkeys done"))
        #expect(first.contains("rehost-firstboot: 0002-command done"))
        #expect(first.contains("REHOST-GUEST: queued=\r\n") || first.contains("REHOST-GUEST: queued=\n"), "both scripts removed after success")
        let newKey = try Command.run("debugfs", ["-R", "cat /etc/ssh/ssh_host_rsa_key", root]).requireSuccess().stdout
        #expect(newKey.contains("PRIVATE KEY") && newKey != oldKey, "a new host key, not the old one")
        let log = try Command.run("debugfs", ["-R", "cat /var/log/rehost-firstboot.log", root]).requireSuccess().stdout
        #expect(log.contains("FIRSTBOOT-42"), "the output logged inside the guest")

        let second = try boot("second")
        #expect(!second.contains("FIRSTBOOT-42"), "the first-boot command ran again")
        #expect(!second.contains("rehost-firstboot: running"))
        #expect(try Command.run("debugfs", ["-R", "cat /etc/ssh/ssh_host_rsa_key", root]).stdout == newKey, "the key made once")
        try Command.run("e2fsck", ["-fn", root]).requireSuccess()
    }
}
