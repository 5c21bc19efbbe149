import ArgumentParser
import ImageCore
import Pipeline

struct CopyInCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "copy-in",
        abstract: "Copy host files and trees into a directory of the guest inside an image, in place.",
        discussion: """
            Writes each host path into the guest directory under its own name, in place, without \
            root, mount or loop device: directories \
            recursively, regular files with their holes, symlinks as symlinks; modes and access and \
            modification times kept; owned by root:root unless --chown says otherwise. The guest \
            directory resolves inside the guest (its symlinks followed within it, its fstab mounts in \
            place, so /boot/x lands on a separate /boot partition).

            The image is changed in place. A raw image (a bare ext2/3/4 filesystem or a partitioned \
            raw disk) is written through libext2fs at the filesystem's offset. A qcow2, VDI, VHD or \
            monolithicSparse VMDK image is written once the whole copy is done, held in memory until \
            then (at most 1 GiB): the changed clusters, blocks or grains are overwritten, or appended \
            and entered in the image's tables, as qemu's drivers write them (qemu-img check finds it \
            clean); qcow2 images with internal snapshots or refcounts narrower than a byte are \
            refused. gzip, OVA and the other VMDK layouts (streamOptimized, flat, split) are refused: \
            convert to raw with `rehost export IMAGE -o disk.raw` (gzip: `gzip -dk`), copy in there, \
            and export back.

            Everything is checked before the first write, and on any refusal the image is unchanged: \
            a missing or unsupported host file (FIFOs, sockets, devices), a guest directory that is \
            missing or outside the guest, a name already in the guest directory (nothing is \
            overwritten), a journal not replayed, an image in use (a running qemu's locks), too few \
            free blocks or inodes (an estimate that errs high), too little space on the host for what \
            the image grows by, a logical volume in several pieces. Hard links on the host become \
            separate files.

            Examples:
              rehost copy-in bootstrap.sh centos5.img /root
              rehost copy-in bootstrap.sh vm.qcow2 /root
              rehost copy-in --chown 500:500 ./config disk.raw /home/app
              rehost copy-in results/ report.txt disk.raw --partition 1 /
            """)

    @Argument(help: ArgumentHelp("One or more host files or directories, then the image, then the guest directory to copy into.",
                                 valueName: "host-path... disk guest-dir"))
    var paths: [String] = []

    @Option(help: ArgumentHelp("The owner and group of everything copied in, as numbers (default 0:0, root).", valueName: "uid:gid"))
    var chown: String?

    @Flag(help: "Print a JSON report on standard output instead of text.")
    var json = false

    @OptionGroup(title: "Input") var input: FileAccessOptions

    var owner: (uid: UInt32, gid: UInt32)? {
        guard let chown else { return (0, 0) }
        let parts = chown.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let uid = UInt32(parts[0]), let gid = UInt32(parts[1]) else { return nil }
        return (uid, gid)
    }

    func validate() throws {
        guard paths.count >= 3 else { throw ValidationError("expected one or more host paths, then the image, then a guest directory") }
        guard owner != nil else { throw ValidationError("--chown \(chown ?? ""): expected UID:GID as numbers, such as 500:500") }
    }

    func run() throws {
        try runReportingErrors {
            let report = try GuestCopyIn.copy(Array(paths.dropLast(2)), into: paths.last!, image: paths[paths.count - 2], owner: owner!,
                                              partition: input.partition, scratchDirectory: input.scratchDirectory,
                                              externalFiles: input.externalFiles, maxOutputSize: input.maxOutputBytes)
            if json { return try printJSON(report) }
            print("copied \(report.files) files (\(ByteCount.format(report.bytes))), \(report.directories) directories, "
                + "\(report.symlinks) symlinks into \(report.directory.escapedForTerminal()) of \(report.image.escapedForTerminal())")
        }
    }
}
