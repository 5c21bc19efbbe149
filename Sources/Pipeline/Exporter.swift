import ImageCore
import ImageFormats

public enum ExportError: RehostError {
    case sameFile(path: String)

    public var description: String {
        switch self {
        case let .sameFile(path): return "\(path): the output would overwrite the input"
        }
    }
}

/// `rehost export`: an existing disk image (raw, qcow2, VMDK, VDI or VHD) into other formats,
/// without repairs (the qemu-img convert job), every output written in one read of the disk.
public final class Exporter {
    let input: String
    let outputs: [OutputRequest]
    let options: WriterOptions
    let digests: DigestChoice
    let scratchDirectory: String?
    let externalFiles: ExternalFiles
    let maxOutputSize: UInt64?
    let progress: ProgressSink
    /// Writers beyond the files (uploads) that take the disk in the same read.
    public var streamConsumers: StreamConsumers?

    /// `maxOutputSize` bounds the data read from the input and so written to every output (nil:
    /// `ExpansionLimit`'s default for the input).
    public init(input: String, outputs: [OutputRequest], options: WriterOptions, digests: DigestChoice = .default,
                scratchDirectory: String? = nil, externalFiles: ExternalFiles = .contained, maxOutputSize: UInt64? = nil,
                progress: ProgressSink = SilentProgress()) {
        self.externalFiles = externalFiles
        self.maxOutputSize = maxOutputSize
        self.input = input
        self.outputs = outputs
        self.options = options
        self.digests = digests
        self.scratchDirectory = scratchDirectory
        self.progress = progress
    }

    public func run() throws -> ExportReport {
        let started = monotonicSeconds()
        let opened = try DiskImageReaders.open(path: input, scratchDirectory: scratchDirectory, externalFiles: externalFiles,
                                                maxOutputSize: maxOutputSize)
        // A raw disk hands out only its own data and keeps its zero-copy path; every other format
        // is counted against the limit.
        let reader: any DiskImageReader = opened is RawDiskReader
            ? opened : LimitedDiskImageReader(opened, limit: .resolve(maxOutputSize, inputs: opened.inputFiles))
        for output in outputs where reader.inputFiles.contains(where: { isSameFile($0, output.path) }) {
            throw ExportError.sameFile(path: output.path)
        }
        let set = try OutputSet(outputs, virtualSize: reader.virtualSize, options: options, consumers: streamConsumers)
        try set.stream(from: reader, diskDigest: digests.disk, progress: progress)
        let reports = try set.commit(fileDigests: digests.files)
        return ExportReport(input: input, inputFormat: reader.format, inputVariant: reader.variant,
                            inputFiles: reader.inputFiles,
                            virtualSize: reader.virtualSize, outputs: reports, seconds: monotonicSeconds() - started)
    }
}
