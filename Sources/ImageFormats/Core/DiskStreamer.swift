import ImageCore

/// One read of a raw disk feeding any number of writers.
public enum DiskStreamer {
    /// Streams `reader`'s data to every writer, then finishes them in order.
    public static func stream(_ reader: RawDiskReader, to writers: [any DiskImageWriter],
                              progress: (UInt64) -> Void = { _ in }) throws -> [WriterSummary] {
        for writer in writers where writer.virtualSize != reader.size {
            throw WriterError.unsupported(format: writer.format,
                                          what: "internal: writer sized \(writer.virtualSize) for a disk of \(reader.size) bytes")
        }
        try reader.forEachDataPiece(progress: progress) { offset, data in
            for writer in writers { try writer.write(data, at: offset) }
        }
        return try writers.map { try $0.finish() }
    }
}
