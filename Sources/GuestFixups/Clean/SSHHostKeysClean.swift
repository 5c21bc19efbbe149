/// The SSH host keys, so every copy of the image gets its own. Where the guest's own sshd start
/// does not make missing keys (Debian's, SUSE's), a first-boot job runs `ssh-keygen -A` (or one
/// `ssh-keygen -t` per type on an OpenSSH older than 5.8) and starts sshd again.
struct SSHHostKeysClean: CleanOperation {
    let name = "ssh-hostkeys"
    let summary = "remove /etc/ssh/ssh_host_*key*; new keys at first boot (by the guest's sshd start, or by a first-boot job)"
    let isDefault = true

    static let regenerate = """
        # rehost clean ssh-hostkeys: the host keys were removed; make new ones and restart sshd.
        if ! ssh-keygen -A 2>/dev/null; then
            for type in rsa dsa ecdsa ed25519; do
                key=/etc/ssh/ssh_host_${type}_key
                [ -f "$key" ] || ssh-keygen -q -t "$type" -N '' -f "$key" 2>/dev/null || true
            done
            [ -f /etc/ssh/ssh_host_key ] || ssh-keygen -q -t rsa1 -N '' -f /etc/ssh/ssh_host_key 2>/dev/null || true
        fi
        if ! command -v systemctl >/dev/null 2>&1; then
            for service in ssh sshd; do
                if [ -x /etc/init.d/$service ]; then /etc/init.d/$service restart; break; fi
            done
        fi
        # Under systemd, sshd failed to start without keys: start it now (whichever unit the guest has).
        if command -v systemctl >/dev/null 2>&1; then
            systemctl restart ssh.service 2>/dev/null || systemctl restart sshd.service 2>/dev/null || true
        fi
        exit 0

        """

    func apply(_ guest: GuestEditor, _ context: CleanContext) throws {
        let keys = try guest.matching("/etc/ssh") { $0.hasPrefix("ssh_host_") && $0.contains("key") }
        guard !keys.isEmpty else { return }
        for key in keys { try guest.remove(key) }
        guard try !Self.guestRegenerates(guest) else { return }
        try FirstBoot.add(guest, name: "ssh-hostkeys", script: Self.regenerate, initSystem: context.initSystem)
    }

    /// Red Hat's init script (`do_rsa_keygen`) and systemd units named sshd-keygen make missing
    /// keys at boot; Debian's and Ubuntu's start scripts do not.
    static func guestRegenerates(_ guest: GuestEditor) throws -> Bool {
        for script in ["/etc/init.d/sshd", "/etc/rc.d/init.d/sshd", "/etc/init.d/ssh"] {
            if let text = try guest.fs.readText(script), text.contains("ssh-keygen") { return true }
        }
        for unit in ["/usr/lib/systemd/system/sshd-keygen.service", "/lib/systemd/system/sshd-keygen.service",
                     "/usr/lib/systemd/system/sshd-keygen@.service", "/usr/lib/systemd/system/sshd-keygen.target"] {
            if try guest.entry(unit) != nil { return true }
        }
        return false
    }
}
