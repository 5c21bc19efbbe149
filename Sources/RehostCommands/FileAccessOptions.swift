import ArgumentParser
import ImageCore
import ImageFormats
import Pipeline

#if canImport(Glibc)
import Glibc
#endif

/// The input options `ls`, `cat`, `copy-out` and `copy-in` share: how the image is found and opened.
struct FileAccessOptions: ParsableArguments {
    @Option(help: ArgumentHelp("For a partitioned disk, the partition whose filesystem to use as the root (default: the ext filesystem holding /etc/fstab, with the filesystems its fstab mounts at their mount points).",
                               valueName: "n"))
    var partition: Int?

    @Option(name: .customLong("scratch-dir"),
            help: ArgumentHelp("Where a gzip input is expanded, or an OVA's disk copied out, for reading; removed at the end (default: $TMPDIR or /tmp).", valueName: "dir"))
    var scratchDirectory: String?

    @Flag(name: .customLong("allow-external-files"),
          help: ArgumentHelp("Let a VMDK descriptor's extent lines name files outside its own directory (absolute paths, ../, symlinks leading out) and block devices. For trusted local images only."))
    var allowExternalFiles = false

    @Option(name: .customLong("max-output-size"),
            help: ArgumentHelp("The most data expanding the input may produce (a gzip stream inflated, a scratch copy), e.g. 200G.",
                               valueName: "size"))
    var maxOutputSize: String?

    func validate() throws { try validateMaxOutputSize(maxOutputSize) }

    var externalFiles: ExternalFiles { allowExternalFiles ? .allowed : .contained }

    /// The guest's files, read-only, with its fstab mounts in place.
    func openTree(_ image: String) throws -> GuestFileTree {
        try GuestFileTree(path: image, partition: partition, scratchDirectory: scratchDirectory,
                          externalFiles: externalFiles, maxOutputSize: maxOutputSize.flatMap(ByteCount.parse))
    }
}

/// Writes bytes to standard output, whole; a closed pipe (`rehost cat ... | head`) ends quietly.
enum StandardOutput {
    static func write(_ bytes: UnsafeRawBufferPointer) throws {
        var done = 0
        while done < bytes.count {
            let wrote = Glibc.write(1, bytes.baseAddress! + done, bytes.count - done)
            if wrote < 0 && errno == EINTR { continue }
            if wrote < 0 && errno == EPIPE { throw ExitCode(0) }
            guard wrote > 0 else { throw FileError.write(path: "standard output", offset: UInt64(done), errno: errno) }
            done += wrote
        }
    }
}
