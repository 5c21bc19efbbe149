import ImageCore

/// Makes the writer for a format.
public enum WriterFactory {
    /// `fileName` is the output's final base name: formats that name their own file inside (a
    /// VMDK's extent line) must not see the temporary name it is written under.
    public static func make(_ format: ImageFormat, sink: OutputSink, virtualSize: UInt64, options: WriterOptions,
                            fileName: String) throws -> any DiskImageWriter {
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
