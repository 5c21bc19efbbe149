import Compression

/// A whole-file compression wrapped around an output: `x.raw.gz`, `x.raw.xz`, `x.raw.zst`,
/// `x.qcow2.gz`. Orthogonal to the format: the format comes from the name without the trailing
/// compression suffix (`x.raw`), and the report keeps saying `raw` (or `qcow2`), its variant
/// naming the compression.
public typealias OutputCompression = StreamEncoding

extension StreamEncoding {
    /// The compression a trailing suffix names: `.gz`, `.xz`, `.zst`/`.zstd`; and the name
    /// without it. nil when the name ends in none of them.
    public static func fromSuffix(of path: String) -> (compression: StreamEncoding, stripped: String)? {
        guard let dot = path.lastIndex(of: "."), !path[dot...].contains("/") else { return nil }
        let compression: StreamEncoding
        switch path[path.index(after: dot)...].lowercased() {
        case "gz": compression = .gzip
        case "xz": compression = .xz
        case "zst", "zstd": compression = .zstd
        default: return nil
        }
        return (compression, String(path[..<dot]))
    }
}
