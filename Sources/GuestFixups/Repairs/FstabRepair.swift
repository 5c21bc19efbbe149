/// /etc/fstab: the entry mounted on / names the new root (`rootReference`) and its filesystem type;
/// the Xen disks' other entries (/dev/xvd*, /dev/sd*, /dev/hd*, /dev/vd*: swap, the cloud's
/// ephemeral /mnt) are commented out with `# rehost: `, because the converted disk has one
/// partition and a missing device would stop the boot. Entries by LABEL=/UUID= and pseudo
/// filesystems stay. Entries of filesystems merged into the new root (`mergedMountPoints`) and
/// entries on LVM2 volumes (`/dev/VG/LV`, `/dev/mapper/VG-LV`: the new disk has no LVM, so swap
/// LVs go too) and entries naming other volumes of the source by LABEL=/UUID= that were not
/// copied (`droppedDevices`: swap, XFS) are commented out the same way. Only the changed fields are rewritten; the
/// separators are kept. With `swapFile` (`--swap-file`), a line mounting it as swap is added at the
/// end (unless one is there), with the options of the guest's own swap line (`defaults`, `sw`)
/// and its separators (tabs or spaces), and the file is listed as created then. With
/// `--keep-layout`, the entries of the kept filesystems (`keptMounts`) name their new partitions
/// the way the root's does; a swap partition (`swapPartition`) gets a line like the swap file's.
/// With `--firmware uefi|both`, the ESP (`efiSystemPartition`) is mounted on /boot/efi.
enum FstabRepair {
    static let commentPrefix = "# rehost: "
    static let mergedPrefix = "# rehost: merged into /: "

    static func isLogicalVolume(_ device: Substring, groups: Set<String>) -> Bool {
        if device.hasPrefix("/dev/mapper/") { return true }
        let parts = device.split(separator: "/", omittingEmptySubsequences: false)
        return parts.count == 4 && parts[0].isEmpty && parts[1] == "dev" && groups.contains(String(parts[2]))
    }

    static func run(_ context: inout RepairContext) throws {
        let options = context.options
        var addedSwapFile = false
        let vfatCheck = try options.efiSystemPartition != nil && hasVFATCheck(context.fs)
        try context.edit(GuestPaths.fstab) { lines in
            for index in lines.lines.indices {
                let text = lines.text(index)
                guard !text.isCommentOrBlank else { continue }
                let fields = text.blankSeparatedFields
                guard fields.count >= 2 else { continue }
                if fields[1] == "/" {
                    let edited = renamed(text, fields: fields, device: options.rootReference, type: options.rootFilesystemType)
                    if edited != text { lines.replace(index, with: edited) }
                } else if let device = options.keptMounts[String(fields[1])] {
                    let edited = renamed(text, fields: fields, device: device, type: options.rootFilesystemType)
                    if edited != text { lines.replace(index, with: edited) }
                } else if options.efiSystemPartition != nil && fields[1] == Substring(efiMountPoint) {
                    continue  // the new ESP's: renamed below, even when the source's ESP is not copied
                } else if options.mergedMountPoints.contains(String(fields[1])) {
                    lines.replace(index, with: mergedPrefix + text)
                } else if GuestPaths.isOldBlockDevice(fields[0]) || isLogicalVolume(fields[0], groups: options.volumeGroups)
                            || options.droppedDevices.contains(String(fields[0])) {
                    lines.replace(index, with: commentPrefix + text)
                }
            }
            if let swapFile = options.swapFile { addedSwapFile = addSwap(device: swapFile, mountField: "none", to: &lines) }
            if let swapPartition = options.swapPartition { _ = addSwap(device: swapPartition, mountField: "swap", to: &lines) }
            if let esp = options.efiSystemPartition { addEFISystemPartition(device: esp, checked: vfatCheck, to: &lines) }
        }
        if options.efiSystemPartition != nil { try context.createDirectoryIfMissing(efiMountPoint) }
        // The converter made the swap file before the repairs; it is listed with its fstab line so
        // that the report shows it and the selinux repair labels it like the files the repairs create.
        if addedSwapFile, let swapFile = options.swapFile {
            context.changes.append(GuestChange(repair: context.repair, path: swapFile, action: .created))
        }
    }

    /// An entry with its device and (unless `auto` or missing) its type replaced, the separators kept.
    static func renamed(_ text: String, fields: [Substring], device: String, type newType: String) -> String {
        var type = fields.count >= 3 ? String(fields[2]) : ""
        if type != "auto", !type.isEmpty { type = newType }
        var edited = String(text[..<fields[0].startIndex]) + device
        if fields.count >= 3 {
            edited += text[fields[0].endIndex..<fields[2].startIndex] + type + text[fields[2].endIndex...]
        } else {
            edited += text[fields[0].endIndex...]
        }
        return edited
    }

    static let efiMountPoint = "/boot/efi"

    /// Whether the guest can check a FAT filesystem at boot (dosfstools' fsck.vfat or fsck.fat).
    static func hasVFATCheck(_ fs: any GuestFilesystem) throws -> Bool {
        for directory in ["/sbin", "/usr/sbin"] {
            for name in ["fsck.vfat", "fsck.fat"] where try fs.entry(at: "\(directory)/\(name)") != nil { return true }
        }
        return false
    }

    /// Mounts the ESP on /boot/efi as Debian's and Fedora's installers do (`umask=0077`, fsck pass
    /// 1), but with pass 0 when the guest has no fsck.vfat: SysV's and Upstart's fsck -A would stop
    /// the boot for the missing helper (systemd skips it). An entry the guest already has for
    /// /boot/efi gets the new device.
    static func addEFISystemPartition(device: String, checked: Bool, to lines: inout TextLines) {
        for index in lines.lines.indices {
            let text = lines.text(index)
            guard !text.isCommentOrBlank else { continue }
            let fields = text.blankSeparatedFields
            if fields.count >= 2, fields[1] == Substring(efiMountPoint) {
                let edited = renamed(text, fields: fields, device: device, type: "vfat")
                if edited != text { lines.replace(index, with: edited) }
                return
            }
        }
        lines.append([device, efiMountPoint, "vfat", "umask=0077", checked ? "0 1" : "0 0"].joined(separator: "\t"))
    }

    /// Adds a swap line for `device` (a swap file's path, or a partition's `UUID=`) unless an entry
    /// names it already; true if it did.
    static func addSwap(device path: String, mountField: String, to lines: inout TextLines) -> Bool {
        var swapOptions = "defaults", separator = "\t"
        var sawEntry = false
        for text in lines.texts {
            let entry = text.hasPrefix(commentPrefix) ? text.dropFirst(commentPrefix.count) : Substring(text)
            guard !entry.isCommentOrBlank else { continue }
            let fields = entry.blankSeparatedFields
            if text == entry && fields.first.map(String.init) == path { return false }
            if !sawEntry, fields.count >= 4, fields[2] == "swap" {
                swapOptions = String(fields[3])
                separator = entry.contains("\t") ? "\t" : " "
                sawEntry = true
            }
        }
        lines.append([path, mountField, "swap", swapOptions, "0 0"].joined(separator: separator))
        return true
    }
}
