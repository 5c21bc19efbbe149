import ImageCore

extension ForeignFormat {
    /// The foreign format of the file at `path` by its magic, or nil for anything else (raw).
    public static func detect(inFile path: String) throws -> ForeignFormat? {
        let file = try RawFile(path: path, mode: .readOnly)
        let size = try file.size
        let head = try file.read(count: Int(min(size, 4096)), at: 0)
        let tail = size >= 512 ? try file.read(count: 512, at: size - 512) : []
        return detect(head: head, tail: tail)
    }
}
