import ArgumentParser
import GuestFixups
import ImageCore
import Pipeline

#if canImport(Glibc)
import Glibc
#endif

/// The customization options `customize` takes (and `convert` may share): what to write into the
/// guest. Host files are read here, before the image is opened.
struct CustomizeOptionGroup: ParsableArguments {
    @Option(name: .customLong("mkdir"), help: ArgumentHelp("Make a guest directory and its missing parents (root-owned, 0755).", valueName: "dir"))
    var mkdirs: [String] = []

    @Option(name: .customLong("copy-in"), help: ArgumentHelp("Copy a host file or tree into an existing guest directory, modes kept, owned by root unless --chown.", valueName: "host-path:guest-dir"))
    var copyIns: [String] = []

    @Option(name: .customLong("chown"), help: ArgumentHelp("The owner of what --copy-in makes, as names from the guest's /etc/passwd and /etc/group or numbers.", valueName: "user:group"))
    var chown: String?

    @Option(name: .customLong("write"), help: ArgumentHelp("Write a guest file with exactly this content (an existing one keeps its owner, mode and label).", valueName: "file:content"))
    var writes: [String] = []

    @Option(name: .customLong("append-line"), help: ArgumentHelp("Append a line to a guest file (made if missing) unless it already has that line.", valueName: "file:line"))
    var appendLines: [String] = []

    @Option(name: .customLong("delete"), help: ArgumentHelp("Delete a guest file, symlink or directory tree.", valueName: "path"))
    var deletes: [String] = []

    @Option(name: .customLong("chmod"), help: ArgumentHelp("Set a guest path's permissions, in octal.", valueName: "mode:path"))
    var chmods: [String] = []

    @Option(help: ArgumentHelp("Set the host name (/etc/hostname, /etc/sysconfig/network, /etc/HOSTNAME, Debian's 127.0.1.1 line).", valueName: "name"))
    var hostname: String?

    @Option(help: ArgumentHelp("Set the time zone to one the guest has in /usr/share/zoneinfo (/etc/localtime, /etc/timezone, /etc/sysconfig/clock).", valueName: "zone"))
    var timezone: String?

    @Option(name: .customLong("root-password"), help: ArgumentHelp("Set root's password in /etc/shadow: password:PASSWORD, file:FILE (its first line), random (printed once) or locked. Hashed by rehost with SHA-512 crypt, or MD5 crypt for a guest whose glibc predates 2.7.", valueName: "how"))
    var rootPassword: String?

    @Option(name: .customLong("ssh-inject"), help: ArgumentHelp("Add a public key to a guest user's ~/.ssh/authorized_keys (home, .ssh 0700 and the file 0600 owned by that user, from the guest's /etc/passwd); the key file defaults to ~/.ssh/id_ed25519.pub or id_rsa.pub on the host.", valueName: "user[:keyfile]"))
    var sshInject: [String] = []

    @Option(name: .customLong("firstboot"), help: ArgumentHelp("Run this host script once at the guest's next boot, through its own init system (systemd, upstart or SysV rc).", valueName: "script"))
    var firstbootScripts: [String] = []

    @Option(name: .customLong("firstboot-command"), help: ArgumentHelp("Run this shell command once at the guest's next boot, after the --firstboot scripts.", valueName: "command"))
    var firstbootCommands: [String] = []

    /// `a:b` split at the first colon.
    static func pair(_ text: String, option: String, expected: String) throws -> (String, String) {
        guard let colon = text.firstIndex(of: ":"), colon != text.startIndex else {
            throw GuestEditError.invalid("\(option) \(text): expected \(expected)")
        }
        return (String(text[..<colon]), String(text[text.index(after: colon)...]))
    }

    /// The options as the library takes them, host files read.
    func options() throws -> CustomizeOptions {
        var options = CustomizeOptions()
        options.mkdirs = mkdirs
        for copy in copyIns {
            guard let colon = copy.lastIndex(of: ":"), colon != copy.startIndex else {
                throw GuestEditError.invalid("--copy-in \(copy): expected HOST-PATH:GUEST-DIR")
            }
            let host = String(copy[..<colon]), directory = String(copy[copy.index(after: colon)...])
            options.copyIns.append(.init(tree: try GuestPrep.hostTree(host), directory: directory))
        }
        options.copyOwner = chown
        for write in writes {
            let (path, text) = try Self.pair(write, option: "--write", expected: "GUEST-FILE:CONTENT")
            options.writes.append(.init(path: path, text: text))
        }
        for append in appendLines {
            let (path, line) = try Self.pair(append, option: "--append-line", expected: "GUEST-FILE:LINE")
            options.appendLines.append(.init(path: path, text: line))
        }
        options.deletes = deletes
        for chmod in chmods {
            let (mode, path) = try Self.pair(chmod, option: "--chmod", expected: "MODE:GUEST-PATH, such as 0755:/usr/local/bin/tool")
            guard let permissions = UInt16(mode, radix: 8), permissions <= 0o7777 else {
                throw GuestEditError.invalid("--chmod \(chmod): expected an octal mode such as 0644 before the colon")
            }
            options.chmods.append(.init(permissions: permissions, path: path))
        }
        options.hostname = hostname
        options.timezone = timezone
        if let rootPassword { options.rootPassword = try RootPassword.parse(rootPassword) }
        for spec in sshInject {
            let user: String, keyFile: String
            if let colon = spec.firstIndex(of: ":") {
                user = String(spec[..<colon]); keyFile = String(spec[spec.index(after: colon)...])
            } else {
                user = spec
                let home = String(cString: getenv("HOME") ?? strdup("/"))
                keyFile = ["id_ed25519.pub", "id_ecdsa.pub", "id_rsa.pub"].map { "\(home)/.ssh/\($0)" }.first { access($0, R_OK) == 0 }
                    ?? "\(home)/.ssh/id_ed25519.pub"
            }
            guard let bytes = HostFiles.read(keyFile, limit: 1 << 20) else { throw hostReadError(keyFile) }
            let key = String(decoding: bytes, as: UTF8.self).split(separator: "\n").first.map(String.init) ?? ""
            guard key.hasPrefix("ssh-") || key.hasPrefix("ecdsa-") || key.hasPrefix("sk-") else {
                throw GuestEditError.invalid("--ssh-inject \(spec): \(keyFile) does not hold an OpenSSH public key (ssh-ed25519 AAAA..., ssh-rsa AAAA...)")
            }
            options.sshKeys.append(.init(user: user, key: key))
        }
        for script in firstbootScripts {
            guard let bytes = HostFiles.read(script) else { throw hostReadError(script) }
            let name = script.split(separator: "/").last.map(String.init) ?? "script"
            options.firstboot.append(.init(name: name, script: String(decoding: bytes, as: UTF8.self)))
        }
        for command in firstbootCommands {
            options.firstboot.append(.init(name: "command", script: "#!/bin/sh\n" + command + "\n"))
        }
        return options
    }
}

/// Why a small host file could not be read: missing, or unreadable or too large.
func hostReadError(_ path: String) -> Error {
    access(path, F_OK) == 0 ? FileAccessError.hostUnreadable(path: path, reason: "unreadable, or larger than the limit for this option")
        : FileAccessError.hostMissing(path: path)
}

/// The text report of `clean` and `customize`: one line per file touched.
func printPrepReport(_ report: GuestPrepReport, verb: String) {
    for edit in report.edits {
        let detail = edit.detail.map { " (\($0))" } ?? ""
        print("\(edit.operation): \(edit.action.rawValue) \(edit.path.escapedForTerminal())\(detail.escapedForTerminal())")
    }
    if let password = report.randomRootPassword, !report.dryRun { print("root password: \(password)") }
    let count = report.edits.count
    if report.dryRun {
        print("dry run: \(count) change\(count == 1 ? "" : "s") would be made to \(report.image.escapedForTerminal()); nothing was written")
    } else if report.unchanged {
        print("\(verb): nothing to change in \(report.image.escapedForTerminal()); the image was not written")
    } else {
        print("\(verb): \(count) change\(count == 1 ? "" : "s") made in \(report.image.escapedForTerminal())")
    }
}
