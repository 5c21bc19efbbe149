/// `alias scsi_hostadapter xenblk` and `alias eth0 xennet` (and their newer spellings) name the
/// target's drivers instead; only the module word changes, the rest of the line is kept.
enum ModprobeRepair {
    static func run(_ context: inout RepairContext) throws {
        let target = context.options.target
        for path in try GuestPaths.modprobeFiles(context.fs) {
            try context.edit(path) { lines in
                for index in lines.lines.indices {
                    var text = lines.text(index)
                    guard let alias = GuestPaths.moduleAlias(in: text),
                          let kind = GuestPaths.xenAliasKind(alias) else { continue }
                    text.replaceSubrange(alias.moduleRange, with: kind == .block ? target.blockDriver : target.netDriver)
                    lines.replace(index, with: text)
                }
            }
        }
    }
}
