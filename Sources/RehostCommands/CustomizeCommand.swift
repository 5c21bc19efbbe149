import ArgumentParser
import GuestFixups
import ImageCore
import Pipeline

struct CustomizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "customize",
        abstract: "Change files, accounts and settings of the guest inside an image, in place (like virt-customize).",
        discussion: """
            Edits the guest inside an image in place, without root, mount, loop device or chroot: \
            directories, files and trees copied in, files written or appended to, deleted, chmod; the \
            host name and time zone; root's password; SSH keys for a user; scripts and commands run \
            once at the next boot. Owners come from the guest's own /etc/passwd and /etc/group, never \
            the host's; new files get the SELinux label the guest's policy gives them.

            The options apply in this order, whatever their order on the command line: --mkdir, \
            --copy-in, --write, --append-line, --delete, --chmod, --hostname, --timezone, \
            --root-password, --ssh-inject, then --firstboot scripts and --firstboot-command commands in \
            the order given. Guest paths are absolute; one that climbs out of the guest (../.., a \
            symlink pointing outside it) is refused.

            Root password without a chroot: `--root-password password:secret` (or file:FILE, random, \
            locked) writes a SHA-512 crypt hash (MD5 crypt where the guest's glibc predates 2.7), made \
            by rehost, into /etc/shadow, keeping the file's owner, mode and label.

            First boot: a small runner, started by the guest's own init system (a systemd unit, an \
            upstart job, or a SysV init script linked as S99 in runlevels 2 to 5), runs each queued \
            script once, logs its output to /var/log/rehost-firstboot.log and the console, and removes \
            it when it succeeds.

            Everything is planned on the read-only image first (`--dry-run` prints the plan); then the \
            guest's filesystems are edited in memory over the image (raw, qcow2, VDI, VHD, monolithicSparse \
            VMDK) and written only once complete: on any error (a missing host file, a full \
            filesystem, a path refused) the image is unchanged. gzip, OVA and other VMDK layouts are \
            refused.

            Examples:
              rehost customize vm.qcow2 --root-password password:changeme --hostname web1
              rehost customize disk.raw --ssh-inject root:$HOME/.ssh/id_ed25519.pub
              rehost customize vm.qcow2 --copy-in ./app:/opt --chown app:app
              rehost customize vm.qcow2 --firstboot ./setup.sh --timezone Europe/Paris
              rehost customize centos5.img --firstboot-command 'chkconfig httpd on'
            """)

    @Argument(help: ArgumentHelp("The image to change in place.", valueName: "disk"))
    var image: String

    @OptionGroup(title: "Customizations") var customizations: CustomizeOptionGroup

    @Flag(name: .customLong("dry-run"), help: "List every change that would be made; write nothing.")
    var dryRun = false

    @Flag(help: "Print a JSON report on standard output instead of text.")
    var json = false

    @OptionGroup(title: "Input") var input: FileAccessOptions

    func run() throws {
        try runReportingErrors {
            let options = try customizations.options()
            guard !options.isEmpty else { throw ValidationError("nothing to do: give at least one customization (see rehost help customize)") }
            let report = try GuestPrep.run(image: image, partition: input.partition, scratchDirectory: input.scratchDirectory,
                                           externalFiles: input.externalFiles, maxOutputSize: input.maxOutputBytes,
                                           clean: [], customize: options, dryRun: dryRun)
            if json { return try printJSON(report) }
            printPrepReport(report, verb: "customize")
        }
    }
}
