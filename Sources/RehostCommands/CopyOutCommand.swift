import ArgumentParser
import ImageCore
import Pipeline

struct CopyOutCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "copy-out",
        abstract: "Copy files and trees out of the guest inside an image to a host directory, like cp -a.",
        discussion: """
            Copies each guest path into the host directory under its own name (/ copies the root's \
            entries), without root, mount or loop device: directories recursively, regular files with \
            their holes, symlinks as symlinks (never followed), hard links as hard links, FIFOs, and device \
            nodes when running as root; modes and access and modification times kept; owners kept only \
            when running as root, as cp -a does. Nothing on the host is overwritten: a name that already \
            exists in the host directory is refused before anything is written. Guest paths resolve \
            inside the guest (symlinks in the path followed within it, a named symlink copied as one), \
            with its fstab mounts in place (a separate /boot, LVM2 volumes). Any input format works. \
            Sockets, and device nodes when not root, are skipped with a warning.

            Examples:
              rehost copy-out vm.qcow2 /var/log/bootstrap ./reports
              rehost copy-out centos5.img /etc/fstab /etc/sysconfig /tmp/guest-etc
              rehost copy-out --json disk.raw /root/results .
            """)

    @Argument(help: ArgumentHelp("The image: a bare ext2/3/4 filesystem or a partitioned disk; raw, gzip, qcow2, VMDK, VDI, VHD or OVA.", valueName: "disk"))
    var disk: String

    @Argument(help: ArgumentHelp("One or more absolute guest paths, then the existing host directory to copy them into.",
                                 valueName: "guest-path... host-dir"))
    var paths: [String] = []

    @Flag(help: "Print a JSON report on standard output instead of text.")
    var json = false

    @OptionGroup(title: "Input") var input: FileAccessOptions

    func validate() throws {
        guard paths.count >= 2 else { throw ValidationError("expected one or more guest paths and then a host directory") }
    }

    func run() throws {
        try runReportingErrors {
            let tree = try input.openTree(disk)
            var copier = GuestCopyOut(tree: tree)
            let report = try copier.copy(Array(paths.dropLast()), into: paths.last!)
            for skipped in report.skipped { printError("rehost: warning: skipped \(skipped.escapedForTerminal())") }
            if json { return try printJSON(report) }
            print("copied \(report.files) files (\(ByteCount.format(report.bytes))), \(report.directories) directories, "
                + "\(report.symlinks) symlinks, \(report.hardLinks) hard links, \(report.others) other nodes into \(paths.last!.escapedForTerminal())")
        }
    }
}
