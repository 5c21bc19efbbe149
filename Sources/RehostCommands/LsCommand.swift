import ArgumentParser
import ImageCore
import Pipeline

#if canImport(Glibc)
import Glibc
#endif

struct LsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ls",
        abstract: "List files of the guest inside an image, like ls.",
        discussion: """
            Lists a directory (every entry but . and .., hidden ones included, by name) or names one \
            entry, without root, mount or loop device. With -l, one line per entry: the mode as ls \
            shows it, the link count, the owner and group as name(number) (the names from the guest's \
            own /etc/passwd and /etc/group, never the host's; the number alone when the guest has no \
            name for it), the size (major, minor for a device), the modification time in UTC, the \
            name, and -> target for a symlink. -l shows a symlink named on the command line itself, as \
            ls -l does; without -l a symlink to a directory is listed through. -R lists every \
            directory below too (symlinks are not followed). Paths resolve inside the guest, with its \
            fstab mounts in place (a separate /boot, LVM2 volumes). Any input format works.

            Examples:
              rehost ls centos5.img /etc
              rehost ls -l vm.qcow2 /var/log
              rehost ls -lR --json disk.raw /root/bootstrap
            """)

    @Argument(help: ArgumentHelp("The image: a bare ext2/3/4 filesystem or a partitioned disk; raw, gzip, qcow2, VMDK, VDI, VHD or OVA.", valueName: "disk"))
    var disk: String

    @Argument(help: ArgumentHelp("A directory or file, an absolute path inside the guest.", valueName: "path"))
    var path = "/"

    @Flag(name: .short, help: "One line per entry with mode, links, owner, group, size, time and symlink target.")
    var long = false

    @Flag(name: .customShort("R"), help: "List the directories below too, each under its path.")
    var recursive = false

    @Flag(help: "Print a JSON array of entries (every field of -l, numbers as numbers) instead of text.")
    var json = false

    @OptionGroup(title: "Input") var input: FileAccessOptions

    func run() throws {
        try runReportingErrors {
            let tree = try input.openTree(disk)
            // -l names a symlink itself, as ls -l does; a trailing slash or plain ls goes through
            // it, and a dangling one is listed as itself.
            let node: GuestFileTree.Node
            do {
                node = try tree.resolve(path, followLast: !long || path.hasSuffix("/"))
            } catch FileAccessError.notFound where !long {
                node = try tree.resolve(path, followLast: false)
            }
            var sections: [(title: String?, entries: [GuestFileTree.Info])] = []
            guard try tree.isDirectory(node) else {
                var info = try tree.info(node)
                info.name = path
                sections.append((nil, [info]))
                return try emit(sections)
            }
            var pending = [(node, 0)]
            var listed: Set<String> = []
            while let (directory, depth) = pending.first {
                pending.removeFirst()
                // A directory reached twice (a damaged filesystem's loop) is listed once.
                guard listed.insert(tree.identity(of: directory)).inserted else {
                    printError("rehost: warning: \(directory.path.escapedForTerminal()): a second entry for a directory already listed (a loop?); not listed again")
                    continue
                }
                let children = try tree.children(of: directory)
                sections.append((recursive ? directory.path : nil, try children.map(tree.info)))
                guard recursive, depth < GuestCopyOut.maximumDepth else { continue }
                let below = try children.filter { try tree.isDirectory($0) }.map { ($0, depth + 1) }
                pending.insert(contentsOf: below, at: 0)
            }
            try emit(sections)
        }
    }

    private func emit(_ sections: [(title: String?, entries: [GuestFileTree.Info])]) throws {
        if json { return try printJSON(sections.flatMap(\.entries)) }
        var text = ""
        for (index, section) in sections.enumerated() {
            if let title = section.title { text += (index > 0 ? "\n" : "") + "\(title.escapedForTerminal()):\n" }
            text += long ? Self.longLines(section.entries) : section.entries.map { $0.name.escapedForTerminal() + "\n" }.joined()
        }
        print(text, terminator: "")
    }

    /// `ls -l` lines, each column as wide as its widest value.
    static func longLines(_ entries: [GuestFileTree.Info]) -> String {
        let rows = entries.map { info -> [String] in
            let size = info.device.map { "\($0[0]), \($0[1])" } ?? String(info.size)
            var name = info.name.escapedForTerminal()
            if let target = info.target { name += " -> " + target.escapedForTerminal() }
            return [modeString(info.mode), String(info.links), owner(info.user, info.uid), owner(info.group, info.gid),
                    size, time(info.modified), name]
        }
        var widths = [Int](repeating: 0, count: 6)
        for row in rows { for column in 0..<6 { widths[column] = max(widths[column], row[column].count) } }
        return rows.map { row in
            let padded = (0..<6).map { column -> String in
                let pad = String(repeating: " ", count: widths[column] - row[column].count)
                // Numbers right-aligned, names left-aligned, as ls does.
                return column == 1 || column == 4 ? pad + row[column] : row[column] + pad
            }
            return (padded + [row[6]]).joined(separator: " ") + "\n"
        }.joined()
    }

    static func owner(_ name: String?, _ number: UInt32) -> String {
        name.map { "\($0.escapedForTerminal())(\(number))" } ?? String(number)
    }

    static func time(_ seconds: Int64) -> String {
        var t = time_t(seconds)
        var parts = tm()
        guard gmtime_r(&t, &parts) != nil else { return String(seconds) }
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday)) \(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))"
    }

    /// `drwxr-xr-x`, with s/S and t/T for the set-id and sticky bits.
    static func modeString(_ mode: UInt16) -> String {
        let type: Character
        switch mode & 0o170000 {
        case 0o040000: type = "d"
        case 0o120000: type = "l"
        case 0o020000: type = "c"
        case 0o060000: type = "b"
        case 0o010000: type = "p"
        case 0o140000: type = "s"
        case 0o100000: type = "-"
        default: type = "?"
        }
        var text = String(type)
        for (shift, special, mark) in [(6, 0o4000, "s"), (3, 0o2000, "s"), (0, 0o1000, "t")] {
            let bits = (Int(mode) >> shift) & 7
            text += bits & 4 != 0 ? "r" : "-"
            text += bits & 2 != 0 ? "w" : "-"
            let execute = bits & 1 != 0
            if Int(mode) & special != 0 { text += execute ? mark : mark.uppercased() } else { text += execute ? "x" : "-" }
        }
        return text
    }
}
