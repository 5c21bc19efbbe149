/// Scripts that run once at the guest's next boot, through its own init system: a runner,
/// `/usr/local/sbin/rehost-firstboot`, started by a systemd unit, an upstart job or a SysV init
/// script (S99 in runlevels 2 to 5), runs each script in `/var/lib/rehost-firstboot/scripts` in
/// name order, logs their output to `/var/log/rehost-firstboot.log` and the console (the serial
/// console when it is the kernel's last `console=`), and removes each one that succeeds; one that
/// fails stays, and runs again at the next boot.
public enum FirstBoot {
    public static let scriptDirectory = "/var/lib/rehost-firstboot/scripts"
    public static let runner = "/usr/local/sbin/rehost-firstboot"
    public static let log = "/var/log/rehost-firstboot.log"

    static let runnerScript = """
        #!/bin/sh
        # rehost-firstboot: runs each script in \(scriptDirectory) once, in name order,
        # and removes it when it succeeds (one that fails runs again at the next boot). Output goes to
        # \(log) and to the console. Installed by rehost customize/clean.
        dir=\(scriptDirectory)
        log=\(log)
        [ -d "$dir" ] || exit 0
        run() {
            for script in "$dir"/*; do
                [ -f "$script" ] || continue
                name=${script##*/}
                echo "rehost-firstboot: running $name"
                if [ -x "$script" ]; then "$script"; else sh "$script"; fi
                status=$?
                if [ $status -eq 0 ]; then
                    rm -f "$script"
                    echo "rehost-firstboot: $name done"
                else
                    echo "rehost-firstboot: $name failed with status $status; it runs again at the next boot"
                fi
            done
        }
        if [ -c /dev/console ] && ( : > /dev/console ) 2>/dev/null; then
            run 2>&1 </dev/null | tee -a "$log" > /dev/console
        else
            run >> "$log" 2>&1 </dev/null
        fi
        sync
        exit 0

        """

    static let systemdUnit = """
        [Unit]
        Description=rehost first-boot scripts
        After=network.target
        ConditionDirectoryNotEmpty=\(scriptDirectory)

        [Service]
        Type=oneshot
        ExecStart=\(runner)
        StandardOutput=journal+console
        StandardError=journal+console
        TimeoutSec=0

        [Install]
        WantedBy=multi-user.target

        """

    static let upstartJob = """
        # rehost first-boot scripts
        description "rehost first-boot scripts"
        start on runlevel [2345]
        task
        console output
        exec \(runner)

        """

    static let initScript = """
        #!/bin/sh
        # chkconfig: 2345 99 01
        # description: rehost first-boot scripts
        ### BEGIN INIT INFO
        # Provides:          rehost-firstboot
        # Required-Start:    $local_fs $network $syslog
        # Required-Stop:
        # Default-Start:     2 3 4 5
        # Default-Stop:
        # Short-Description: rehost first-boot scripts
        ### END INIT INFO
        case "$1" in
            start|"") exec \(runner) ;;
            *) exit 0 ;;
        esac

        """

    /// Queues `script` (a whole script: `#!` line and all) under `name`, after those already
    /// queued; installs the runner and its hook once. A script already queued with the same
    /// contents is not queued again.
    public static func add(_ guest: GuestEditor, name: String, script: String, initSystem: InitSystem) throws {
        try installRunner(guest, initSystem: initSystem)
        let queued = try guest.fs.listDirectory(scriptDirectory)
        let contents = script.hasPrefix("#!") ? script : "#!/bin/sh\n" + script
        for existing in queued where try guest.fs.readText(guest.join(scriptDirectory, existing)) == contents { return }
        let number = (queued.compactMap { Int($0.prefix(4)) }.max() ?? 0) + 1
        let safeName = String(name.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "." ? $0 : "_" }.prefix(64))
        let file = String(repeating: "0", count: max(0, 4 - String(number).count)) + String(number) + "-" + safeName
        try guest.writeText(guest.join(scriptDirectory, file), contents, mode: 0o755)
    }

    static func installRunner(_ guest: GuestEditor, initSystem: InitSystem) throws {
        try guest.makeDirectories(scriptDirectory, mode: 0o755)
        try guest.makeDirectories("/usr/local/sbin")
        try guest.writeText(runner, runnerScript, mode: 0o755)
        switch initSystem {
        case .systemd:
            let unit = "/etc/systemd/system/rehost-firstboot.service"
            try guest.makeDirectories("/etc/systemd/system/multi-user.target.wants")
            try guest.writeText(unit, systemdUnit)
            try guest.symlink("/etc/systemd/system/multi-user.target.wants/rehost-firstboot.service", target: unit)
        case .upstart:
            try guest.writeText("/etc/init/rehost-firstboot.conf", upstartJob)
        case .sysvinit, .unknown:
            // /etc/init.d, or Red Hat's /etc/rc.d/init.d behind it; runlevel links where the rc directories are.
            let initDirectory = try guest.resolve("/etc/init.d", followLast: true) ?? "/etc/init.d"
            try guest.makeDirectories(initDirectory)
            try guest.writeText(guest.join(initDirectory, "rehost-firstboot"), initScript, mode: 0o755)
            let base = try guest.entry("/etc/rc.d/rc3.d") == .directory ? "/etc/rc.d" : "/etc"
            for level in 2...5 {
                let directory = "\(base)/rc\(level).d"
                guard try guest.entry(directory) == .directory else { continue }
                try guest.symlink("\(directory)/S99rehost-firstboot", target: "../init.d/rehost-firstboot")
            }
        }
    }
}
