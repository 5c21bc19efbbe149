import ImageCore

/// Makes the writer for a format.
public enum WriterFactory {
    public static func make(_ format: ImageFormat, sink: OutputSink, virtualSize: UInt64,
                            options: WriterOptions) throws -> any DiskImageWriter {
        switch format {
        case .raw: return RawWriter(sink: sink, virtualSize: virtualSize)
        case .qcow2, .vmdk, .vdi, .vhd, .ova:
            throw WriterError.unsupported(format: format, what: "this format is not written yet")
        }
    }
}
