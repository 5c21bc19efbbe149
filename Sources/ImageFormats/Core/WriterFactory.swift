import ImageCore

/// Makes the writer for a format.
public enum WriterFactory {
    /// `compression` wraps the output in a whole-file compression (`x.raw.gz`): a raw disk is
    /// compressed as it streams past, other formats once written (`CompressedImageWriter`).
    /// `fileName` is the output's final base name: formats that name their own file inside (a
    /// VMDK's extent line) must not see the temporary name it is written under.
    public static func make(_ format: ImageFormat, sink: OutputSink, virtualSize: UInt64, options: WriterOptions,
                            fileName: String, compression: OutputCompression? = nil) throws -> any DiskImageWriter {
        if let compression {
            switch format {
            case .raw:
                return try CompressedRawWriter(sink: sink, virtualSize: virtualSize, compression: compression,
                                               level: options.streamCompressionLevel)
            case .ova:
                throw WriterError.unsupported(format: format, what: "an OVA is not compressed as a whole (its disk is a compressed VMDK already)")
            case .qcow2, .vmdk, .vdi, .vhd, .vhdx:
                return try CompressedImageWriter(sink: sink, format: format, virtualSize: virtualSize, compression: compression,
                                                 level: options.streamCompressionLevel) { inner in
                    try make(format, sink: inner, virtualSize: virtualSize, options: options, fileName: fileName)
                }
            }
        }
        switch format {
        case .raw: return RawWriter(sink: sink, virtualSize: virtualSize)
        case .qcow2: return try QCOW2Writer(sink: sink, virtualSize: virtualSize, options: options)
        case .vmdk: return try VMDKWriter(sink: sink, virtualSize: virtualSize, options: options, extentFileName: fileName)
        case .vdi: return try VDIWriter(sink: sink, virtualSize: virtualSize, options: options)
        case .vhd: return try VHDWriter(sink: sink, virtualSize: virtualSize, options: options)
        case .vhdx: return try VHDXWriter(sink: sink, virtualSize: virtualSize, options: options)
        case .ova: return try OVAWriter(sink: sink, virtualSize: virtualSize, options: options)
        }
    }
}
