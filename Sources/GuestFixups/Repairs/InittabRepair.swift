/// /etc/inittab (sysvinit guests): the Xen console gettys (`co:2345:respawn:/sbin/agetty xvc0 9600
/// vt100-nav`) are commented out with the `# rehost: ` prefix (kept, not deleted, so the change is
/// visible and reversible, as in fstab), and a getty on the first serial port is added after the
/// last getty line. tty1-6 stay as they are. Upstart and systemd guests keep only `initdefault` in
/// inittab and start serial gettys themselves from `console=ttyS0`, so an inittab without gettys is
/// left alone.
enum InittabRepair {
    static let commentPrefix = "# rehost: "

    static func run(_ context: inout RepairContext) throws {
        let fs = context.fs
        let speed = context.options.serialSpeed
        try context.edit(GuestPaths.inittab) { lines in
            let entries = lines.texts.map(InittabEntry.init)
            guard entries.contains(where: { $0?.getty != nil }) else { return }
            for (index, entry) in entries.enumerated() where entry?.isXenConsoleGetty == true {
                lines.replace(index, with: commentPrefix + lines.text(index))
            }
            // A serial getty counts only if it stays: one that also names the Xen console was
            // just commented out (else the next run, not finding it, would add one).
            guard !entries.contains(where: { $0?.isSerialGetty == true && $0?.isXenConsoleGetty != true }) else { return }
            let usedIDs = Set(entries.compactMap { $0.map { String($0.id) } })
            let getty = try serialGettyProgram(entries: entries, fs: fs)
            let line = "\(freeID(avoiding: usedIDs)):2345:respawn:\(getty) ttyS0 \(speed) vt100-nav"
            let lastGetty = entries.lastIndex { $0?.getty != nil } ?? lines.lines.count - 1
            lines.lines.insert(Array(line.utf8), at: lastGetty + 1)
        }
        // systemd guests: a getty enabled on the Xen console waits 90 s for a device that never
        // appears, then fails. systemd starts the ttyS0 getty itself from console=ttyS0.
        for path in try GuestPaths.xenSerialGettyUnits(fs) {
            try context.removeIfPresent(path)
        }
    }

    /// The guest's own agetty (only agetty drives serial lines; mingetty does not): the one the file
    /// already uses, else the first that exists in the guest, else the plain `getty` the file uses,
    /// else /sbin/agetty.
    static func serialGettyProgram(entries: [InittabEntry?], fs: any GuestFilesystem) throws -> String {
        for entry in entries {
            if let program = entry?.getty?.program, program.hasSuffix("/agetty") || program == "agetty" {
                return String(program)
            }
        }
        for path in ["/sbin/agetty", "/usr/sbin/agetty"] where try fs.exists(path) {
            return path
        }
        // Debian's /sbin/getty is agetty under its old name.
        for entry in entries {
            if let program = entry?.getty?.program, program.split(separator: "/").last == "getty" {
                return String(program)
            }
        }
        return "/sbin/agetty"
    }

    /// An inittab id no active line uses: S0, then T0, then S1...S9, T1...T9.
    static func freeID(avoiding used: Set<String>) -> String {
        let candidates = ["S0", "T0"] + (1...9).flatMap { ["S\($0)", "T\($0)"] }
        return candidates.first { !used.contains($0) } ?? "rh0"
    }
}
