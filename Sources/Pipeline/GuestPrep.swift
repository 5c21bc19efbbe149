import Digests
import Ext2
import GuestFixups
import ImageCore
import ImageFormats

#if canImport(Glibc)
import Glibc
#endif

/// What `clean` and `customize` changed in the image (or would change, in a dry run).
public struct GuestPrepReport: Encodable, Sendable {
    public var image: String
    public var dryRun: Bool
    /// The clean operations that ran, by name.
    public var operations: [String]
    public var edits: [GuestEdit]
    /// The password `--root-password random` chose (shown once, here).
    public var randomRootPassword: String?
    /// How the root password was hashed: "sha512" or "md5".
    public var passwordHash: String?
    /// True when nothing needed changing: the image was not opened for writing at all.
    public var unchanged: Bool
}

/// `rehost clean` and `rehost customize` on an image, in place, through one `GuestEditSession`:
///
/// 1. host files are read and the options checked (before the image is opened);
/// 2. the guest is opened read-only and every edit is made on an overlay: the plan, which is
///    what a dry run reports, and where anything refused (a path outside the guest, a missing
///    directory, an unknown user) stops with the image untouched;
/// 3. when the plan changes anything, the root filesystem is opened writable, staged in memory
///    over the image whatever its format (raw included), the edits are made again on it, and
///    only when the filesystem closes cleanly are the changed pages written into the image. A
///    full filesystem or any error before that leaves the image as it was.
///
/// Edits go to the root filesystem (or the `--partition` chosen) and to each filesystem the guest
/// mounts that an edit lands on (a separate /var or /boot), all staged and committed together; a
/// volume that is not one run of the disk (an LV in pieces) is refused, naming it.
public enum GuestPrep {
    public static func run(image: String, partition: Int?, scratchDirectory: String?, externalFiles: ExternalFiles,
                           maxOutputSize: UInt64?, clean: [any CleanOperation], customize: CustomizeOptions,
                           dryRun: Bool) throws -> GuestPrepReport {
        try customize.checkPaths()
        var customize = customize
        let randomPassword = customize.resolveRandomPassword()
        if !dryRun { try GuestCopyIn.refuseContainers(image) }
        let tree = try GuestFileTree(path: image, partition: partition, scratchDirectory: scratchDirectory,
                                     externalFiles: externalFiles, maxOutputSize: maxOutputSize)
        if !dryRun { _ = try GuestEditSession.stagedFormat(tree, stageRaw: true) }
        let root = Ext2GuestFilesystem(tree.source.filesystem)
        let mounts = tree.source.mounts.map { (path: $0.mountPoint, filesystem: Ext2GuestFilesystem($0.filesystem) as any GuestFilesystem) }
        let view: any GuestFilesystem = mounts.isEmpty ? root : MountedGuestFilesystem(root: root, mounts: mounts)
        let context = try CleanContext.of(view)

        // The plan, on an overlay over the read-only guest.
        let overlay = OverlayGuestFilesystem(base: view)
        let plan = GuestEditor(fs: overlay, metadata: nil, dryRun: true, statusSource: view as? any GuestMetadataEditing)
        let result = try apply(clean: clean, customize: customize, to: plan, context: context)
        var report = GuestPrepReport(image: image, dryRun: dryRun, operations: clean.map(\.name), edits: plan.edits,
                                     randomRootPassword: randomPassword, passwordHash: result.passwordHash, unchanged: plan.edits.isEmpty)
        if dryRun || plan.edits.isEmpty { return report }

        // The filesystems the plan changes: the root always, and each mount an edit lands on.
        func touches(_ mountPoint: String) -> Bool {
            plan.edits.contains { $0.path == mountPoint || $0.path.hasPrefix(mountPoint + "/") }
        }
        let touched = tree.source.mounts.filter { touches($0.mountPoint) }.map(\.mountPoint)
        var targets = [try GuestEditSession.target(tree, mountPoint: "/", path: "/", stageRaw: true)]
        for mountPoint in touched {
            let path = plan.edits.first { $0.path == mountPoint || $0.path.hasPrefix(mountPoint + "/") }?.path ?? mountPoint
            targets.append(try GuestEditSession.target(tree, mountPoint: mountPoint, path: path, stageRaw: true))
        }
        let free = tree.source.filesystem.freeBlocksCount * UInt64(tree.source.filesystem.blockSize)
        let edits: [GuestEdit]
        do {
            edits = try GuestEditSession.edit(targets, image: image) { filesystems in
                let root = Ext2GuestFilesystem(filesystems[0])
                var writable: [String: Ext2GuestFilesystem] = [:]
                for (index, mountPoint) in touched.enumerated() { writable[mountPoint] = Ext2GuestFilesystem(filesystems[index + 1]) }
                // Untouched mounts are read where they are, so the edit sees the guest the plan saw.
                let mountViews = tree.source.mounts.map { mount in
                    (path: mount.mountPoint, filesystem: (writable[mount.mountPoint] ?? Ext2GuestFilesystem(mount.filesystem)) as any GuestFilesystem)
                }
                let guest: any GuestFilesystem = mountViews.isEmpty ? root : MountedGuestFilesystem(root: root, mounts: mountViews)
                let editor = GuestEditor(fs: guest, metadata: guest as? any GuestMetadataEditing, dryRun: false)
                _ = try apply(clean: clean, customize: customize, to: editor, context: context)
                return editor.edits
            }
        } catch let error as Ext2Error where error.isOutOfSpace {
            throw GuestPrepError.filesystemFull(image: image, free: free)
        }
        withExtendedLifetime(tree) {}
        report.edits = edits
        return report
    }

    static func apply(clean: [any CleanOperation], customize: CustomizeOptions, to editor: GuestEditor,
                      context: CleanContext) throws -> CustomizeResult {
        if !clean.isEmpty { try CleanOperations.run(clean, on: editor, context: context) }
        if customize.isEmpty { return CustomizeResult() }
        return try Customizer.run(customize, on: editor, initSystem: context.initSystem)
    }

    /// A host file or tree for `--copy-in`, read whole (lstat, never following a symlink).
    public static func hostTree(_ path: String) throws -> HostTree {
        let item = try GuestCopyIn.readHost(path, name: try GuestCopyIn.entryName(path), depth: 0)
        return try tree(item)
    }

    static func tree(_ item: GuestCopyIn.HostItem) throws -> HostTree {
        let name = String(decoding: item.name, as: UTF8.self)
        switch item.kind {
        case let .file(size, _):
            guard size <= GuestEditSession.stagingLimit else { throw FileAccessError.stagingLimit(image: item.hostPath, limit: GuestEditSession.stagingLimit) }
            let file = try RawFile(path: item.hostPath, mode: .readOnlyNoFollow)
            return .file(name: name, contents: try file.read(count: Int(size), at: 0), permissions: item.permissions)
        case let .directory(children):
            return .directory(name: name, permissions: item.permissions, children: try children.map(tree))
        case let .symlink(target):
            return .symlink(name: name, target: String(decoding: target, as: UTF8.self))
        }
    }
}

public enum GuestPrepError: RehostError, Equatable {
    case filesystemFull(image: String, free: UInt64)

    public var description: String {
        switch self {
        case let .filesystemFull(image, free):
            return "\(image): the guest's root filesystem has no space for these changes (\(ByteCount.format(free)) free); the image is unchanged"
        }
    }
}
