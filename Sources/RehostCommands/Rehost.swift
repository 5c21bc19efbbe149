import ArgumentParser
import ImageCore

#if canImport(Glibc)
import Glibc
#endif

public struct Rehost: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "rehost",
        abstract: "Turn a Xen instance copy into a bootable KVM/VirtualBox disk, without root.",
        discussion: """
            Rehost reads a copy of a Xen guest (a bare ext2/3/4 filesystem image or a partitioned disk: raw, \
            gzip-, xz- or zstd-compressed, or in a qcow2, VMDK, VDI, VHD or VHDX image or an OVA), and builds a bootable partitioned raw disk \
            (GPT for BIOS and UEFI when the guest's kernel has an EFI stub, else MBR, each with GRUB 2), and an ext3 copy of \
            the guest whose Xen-specific settings (consoles, drivers, device names, boot configuration) are \
            repaired for the target hypervisor. It needs no root, loop device, mount, chroot or helper VM.

            Start with `rehost inspect IMAGE` to see what is inside and what would change, then \
            `rehost convert IMAGE -o disk.raw`. `rehost help convert` lists every option and repair; \
            `rehost export` converts an existing disk image between formats, like qemu-img convert, and \
            `rehost digest` prints the digest of the disk any image holds. \
            `rehost ls`, `cat` and `copy-out` read the files of a guest in any image, and `rehost copy-in` \
            writes into one in place, without mounting it. \
            `rehost clean` removes what an image should not carry to a new owner (histories, keys, logs), \
            and `rehost customize` sets passwords, keys, files and first-boot scripts, both in place.
            `rehost context` writes an OpenNebula context file or CD, or a cloud-init NoCloud seed CD.

            `rehost upload DISK --to glance|aws-ebs|aws-s3` sends an image to OpenStack Glance or AWS (an EBS \
            snapshot and AMI, or S3 and VM Import); `convert --upload` and `export --upload` do it in the \
            same pass as the conversion.

            `rehost build RECIPE.yaml` makes images from a base image and a declarative recipe: convert, \
            clean, customize and every output in one pass, with a record of each step and digest.

            `rehost batch run MANIFEST` converts a fleet from a JSON Lines manifest, resumably, on this host \
            or one entry per task of a Slurm array or a Kubernetes Indexed Job (`rehost batch emit`).
            """,
        version: "0.1.0",
        subcommands: [InspectCommand.self, ConvertCommand.self, ExportCommand.self, DigestCommand.self,
                      LsCommand.self, CatCommand.self, CopyOutCommand.self, CopyInCommand.self,
                      CleanCommand.self, CustomizeCommand.self, ContextCommand.self,
                      UploadCommand.self, BuildCommand.self, BatchCommand.self]
    )
    public init() {}
}

/// Runs a command's work with interrupt cleanup in place (partial outputs and scratch copies
/// are removed on SIGINT/SIGTERM/SIGHUP); prints a RehostError as one line and exits non-zero;
/// anything else goes to ArgumentParser.
func runReportingErrors(_ body: () throws -> Void) throws {
    TemporaryFiles.installSignalCleanup()
    do {
        try body()
    } catch let error as RehostError {
        // The description may quote the image (a label, a file name, a descriptor field): escaped,
        // it stays one line and cannot drive the terminal.
        printError("rehost: error: \(error.description.escapedForTerminal())")
        // 75 (EX_TEMPFAIL): a cloud fault that outlived the retries, or a fault of the host (out of
        // space, an I/O error); the same run may pass later, and batch engines retry it.
        exitAfterError(error.isTransient ? 75 : 1)
    }
}

/// Ends the process at once. Work in the background (a digest or a compressor of the disk that
/// failed) may still be running: exit() would run the C libraries' exit handlers under it, and
/// OpenSSL's, freeing what a digest thread is using, turned a clean error into a crash.
func exitAfterError(_ code: Int32) -> Never {
    TemporaryFiles.shared.removeAll()
    fflush(nil)
    _exit(code)
}

func printError(_ text: String) {
    var stderr = StandardError()
    print(text, to: &stderr)
}

struct StandardError: TextOutputStream {
    mutating func write(_ string: String) {
        FileHandleOutput.writeStandardError(string)
    }
}
