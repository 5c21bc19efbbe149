import ArgumentParser
import ImageCore
import ImageFormats

/// How an input image may be opened: the options every command that reads an image shares.
struct ImageAccessOptions: ParsableArguments {
    @Option(name: .customLong("scratch-dir"),
            help: ArgumentHelp("Where an input that cannot be read in place (a gzip stream, an OVA's disk member) is copied for reading, removed at the end (default: $TMPDIR or /tmp). qcow2, VMDK, VDI, VHD and raw inputs need no copy.",
                               valueName: "dir"))
    var scratchDirectory: String?

    @Flag(name: .customLong("allow-external-files"),
          help: ArgumentHelp("Let a VMDK descriptor's extent lines name files outside its own directory (absolute paths, ../, symlinks leading out) and block devices. Off by default: an image may read only files beside it. For trusted local images only."))
    var allowExternalFiles = false

    @Option(name: .customLong("max-output-size"),
            help: ArgumentHelp("The most data the input may expand to (what is read from it, a scratch copy, a gzip stream inflated), e.g. 200G. Default: \(ExpansionLimit.defaultFactor) times the bytes the input occupies on disk, at least \(ByteCount.format(ExpansionLimit.defaultFloor)). A hostile image that claims more is refused.",
                               valueName: "size"))
    var maxOutputSize: String?

    func validate() throws {
        if let text = maxOutputSize, ByteCount.parse(text) == nil || ByteCount.parse(text) == 0 {
            throw ValidationError("--max-output-size \(text): expected a size such as 200G, 512M or 4294967296")
        }
    }

    var externalFiles: ExternalFiles { allowExternalFiles ? .allowed : .contained }

    /// `--max-output-size` in bytes; `validate` has checked it parses.
    var maxOutputBytes: UInt64? { maxOutputSize.flatMap(ByteCount.parse) }
}
