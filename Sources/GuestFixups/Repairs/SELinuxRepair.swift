/// In a guest that uses SELinux, every file the repairs created gets the label the policy would
/// give it, since the guest boots enforcing and a file without a label is unreadable to its
/// confined services (GRUB's menu, the initrd copy, a dracut.conf.d snippet). The label comes
/// from the guest's own file_contexts, else from its neighbours; with `--selinux relabel` the
/// guest relabels itself at first boot instead (`/.autorelabel`). Edited files keep their inode,
/// and so their label.
enum SELinuxRepair {
    static let attribute = "security.selinux"

    static func run(_ context: inout RepairContext) throws {
        let fs = context.fs
        guard try usesSELinux(fs) else { return }
        let made = context.changes.filter { $0.action == .created || $0.action == .symlinked }.map(\.path)
        switch context.options.selinux {
        case .relabel:
            guard !context.changes.isEmpty else { return }
            try context.writeWholeFile("/.autorelabel", lines: [], newFileMode: 0o644)
        case .label:
            let contexts = try FileContexts.load(fs)
            var seen = Set<String>()
            for path in made where seen.insert(path).inserted {
                guard let entry = try fs.entry(at: path), try fs.extendedAttribute(path, name: attribute) == nil else { continue }
                let label = try contexts?.label(for: path, kind: entry) ?? neighbourLabel(fs, path: path, kind: entry)
                guard let label else { continue }
                try fs.setExtendedAttribute(path, name: attribute, value: Array(label.utf8) + [0])
                let source = contexts.map { "from \($0.path)" } ?? "from its neighbours"
                context.changes.append(GuestChange(repair: context.repair, path: path, action: .labelled,
                                                   lines: [.init(before: nil, after: "\(attribute)=\(label) (\(source))")]))
            }
        }
    }

    /// SELinux enabled in /etc/selinux/config, or /etc itself labelled.
    static func usesSELinux(_ fs: any GuestFilesystem) throws -> Bool {
        if let config = try fs.readText("/etc/selinux/config") {
            let fields = GuestInspector.keyValues(config)
            if let mode = fields["SELINUX"]?.lowercased() { return mode != "disabled" }
        }
        return try fs.extendedAttribute("/etc", name: attribute) != nil
    }

    /// A directory takes its parent's label (the policy's default for new directories); a file or
    /// link the label of a sibling of the same kind, else its parent's.
    static func neighbourLabel(_ fs: any GuestFilesystem, path: String, kind: GuestEntry) throws -> String? {
        guard let (parent, name) = GuestPathResolver.split(path) else { return nil }
        if kind != .directory {
            for sibling in try fs.listDirectory(parent) where sibling != name {
                let siblingPath = parent == "/" ? "/\(sibling)" : "\(parent)/\(sibling)"
                guard let entry = try fs.entry(at: siblingPath), sameKind(entry, kind),
                      let value = try fs.extendedAttribute(siblingPath, name: attribute) else { continue }
                return text(value)
            }
        }
        return try fs.extendedAttribute(parent, name: attribute).map(text)
    }

    static func sameKind(_ a: GuestEntry, _ b: GuestEntry) -> Bool {
        switch (a, b) {
        case (.regularFile, .regularFile), (.directory, .directory), (.symlink, .symlink): return true
        default: return false
        }
    }

    /// The label without the NUL SELinux stores after it.
    static func text(_ value: [UInt8]) -> String {
        String(decoding: value.prefix { $0 != 0 }, as: UTF8.self)
    }
}

/// The policy's file_contexts: `regex [file type] context` lines. As libselinux does, the last
/// matching line wins, and lines without regular-expression characters win over those with.
struct FileContexts {
    struct Spec {
        var pattern: String
        /// The literal text before the first metacharacter: a cheap filter before the regex.
        var stem: String
        var isLiteral: Bool
        /// "--" file, "-d" directory, "-l" symlink..., nil for any.
        var fileType: String?
        var context: String
    }

    let path: String
    let specs: [Spec]

    static func load(_ fs: any GuestFilesystem) throws -> FileContexts? {
        let type = try fs.readText("/etc/selinux/config").flatMap { GuestInspector.keyValues($0)["SELINUXTYPE"] } ?? "targeted"
        guard !type.contains("/") else { return nil }
        let path = "/etc/selinux/\(type)/contexts/files/file_contexts"
        guard let text = try fs.readText(path) else { return nil }
        var specs: [Spec] = []
        for line in text.split(separator: "\n") where !line.isCommentOrBlank {
            let fields = line.blankSeparatedFields.map(String.init)
            guard fields.count == 2 || fields.count == 3 else { continue }
            let pattern = fields[0]
            let metacharacters = Set(".^$?*+|[({\\")
            let stem = String(pattern.prefix { !metacharacters.contains($0) })
            specs.append(Spec(pattern: pattern, stem: stem, isLiteral: stem == pattern,
                              fileType: fields.count == 3 ? fields[1] : nil, context: fields[fields.count - 1]))
        }
        return FileContexts(path: path, specs: specs)
    }

    func label(for path: String, kind: GuestEntry) throws -> String? {
        let wanted: String
        switch kind {
        case .regularFile: wanted = "--"
        case .directory: wanted = "-d"
        case .symlink: wanted = "-l"
        case .other: wanted = ""
        }
        var best: Spec?
        for spec in specs where path.hasPrefix(spec.stem) && (spec.fileType == nil || spec.fileType == wanted) {
            if let current = best, current.isLiteral, !spec.isLiteral { continue }
            if spec.isLiteral ? spec.pattern == path : matches(spec.pattern, path) { best = spec }
        }
        guard let best, best.context != "<<none>>" else { return nil }
        return best.context
    }

    private func matches(_ pattern: String, _ path: String) -> Bool {
        // The patterns come from the guest: a repeated group that itself repeats ("(a+)+") can
        // backtrack for ever, and no policy needs one, so such a line never matches.
        let nestedRepetition = pattern.contains(")+") || pattern.contains(")*") || pattern.contains("){")
        guard pattern.utf8.count <= 512, path.utf8.count <= 4096, !nestedRepetition,
              let regex = try? Regex("^(?:\(pattern))$") else { return false }
        return (try? regex.wholeMatch(in: path)) != nil
    }
}
