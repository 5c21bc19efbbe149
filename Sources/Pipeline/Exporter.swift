import ImageCore
import ImageFormats

public enum ExportError: RehostError {
    case notWholeSectors(path: String, size: UInt64)
    case empty(path: String)
    case foreign(path: String, format: ForeignFormat)
    case sameFile(path: String)

    public var description: String {
        switch self {
        case let .notWholeSectors(path, size):
            return "\(path): \(size) bytes is not a whole number of 512-byte sectors, so it is not a raw disk"
        case let .empty(path): return "\(path): the disk is empty"
        case let .foreign(path, format): return "\(path): \(format.advice)"
        case let .sameFile(path): return "\(path): the output would overwrite the input"
        }
    }
}

/// `rehost export`: an existing raw disk into other formats, without repairs (the qemu-img
/// convert job), every output written in one read of the disk.
public final class Exporter {
    let input: String
    let outputs: [OutputRequest]
    let options: WriterOptions
    let digests: Bool
    let progress: ProgressSink

    public init(input: String, outputs: [OutputRequest], options: WriterOptions, digests: Bool,
                progress: ProgressSink = SilentProgress()) {
        self.input = input
        self.outputs = outputs
        self.options = options
        self.digests = digests
        self.progress = progress
    }

    public func run() throws -> ExportReport {
        let started = monotonicSeconds()
        if let foreign = try ForeignFormat.detect(inFile: input) { throw ExportError.foreign(path: input, format: foreign) }
        let size = try RawFile(path: input, mode: .readOnly).size
        guard size > 0 else { throw ExportError.empty(path: input) }
        guard size % 512 == 0 else { throw ExportError.notWholeSectors(path: input, size: size) }
        for output in outputs where isSameFile(input, output.path) { throw ExportError.sameFile(path: output.path) }
        let set = try OutputSet(outputs, virtualSize: size, options: options)
        try set.stream(from: input, progress: progress)
        let reports = try set.commit(digests: digests)
        return ExportReport(input: input, virtualSize: size, outputs: reports, seconds: monotonicSeconds() - started)
    }
}
