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

    @OptionGroup(title: "Reading the input") var access: ImageAccessOptions

    var scratchDirectory: String? { access.scratchDirectory }
    var externalFiles: ExternalFiles { access.externalFiles }
    var maxOutputBytes: UInt64? { access.maxOutputBytes }

    /// The guest's files, read-only, with its fstab mounts in place.
    func openTree(_ image: String) throws -> GuestFileTree {
        try GuestFileTree(path: image, partition: partition, scratchDirectory: scratchDirectory,
                          externalFiles: externalFiles, maxOutputSize: maxOutputBytes)
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
