import ImageCore
import Zlib

/// Reads back a sparse extent's metadata: the header, the embedded descriptor and, for a
/// streamOptimized file, every marker in file order. Used by tests and checks; it reads the whole
/// marker chain, so it is for verification, not for the hot path.
public struct VMDKFileReader {
    public let path: String
    public let header: VMDKHeader
    public let descriptor: VMDKDescriptor
    public let descriptorText: String
    private let file: RawFile

    /// One marker of a stream, with the byte offset where it starts.
    public struct Item: Equatable, Sendable {
        public var offset: UInt64
        public var marker: VMDKMarker
    }

    public init(path: String) throws {
        self.path = path
        file = try RawFile(path: path, mode: .readOnly)
        header = try VMDKHeader(decoding: try Self.read(file, count: VMDKHeader.size, at: 0), path: path)
        let descriptorBytes = try Self.read(file, count: Int(min(header.descriptorSize, 2048)) * VMDK.sectorSize,
                                            at: header.descriptorOffset * UInt64(VMDK.sectorSize))
        descriptorText = String(decoding: descriptorBytes.prefix { $0 != 0 }, as: UTF8.self)
        descriptor = try VMDKDescriptor(parsing: descriptorText, path: path)
    }

    static func read(_ file: RawFile, count: Int, at offset: UInt64) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        let got = try bytes.withUnsafeMutableBytes { try file.read(into: $0, at: offset) }
        guard got == count else { throw VMDKError.truncated(path: file.path, offset: offset, wanted: count, available: got) }
        return bytes
    }

    public func read(count: Int, at offset: UInt64) throws -> [UInt8] {
        try Self.read(file, count: count, at: offset)
    }

    /// Every marker from `overHead` to the end-of-stream marker, in file order. Metadata markers
    /// are followed by their `numSectors`; grains by their data padded to a sector.
    public func streamItems() throws -> [Item] {
        var items: [Item] = []
        var offset = header.overHead * UInt64(VMDK.sectorSize)
        let end = try file.size
        while offset < end {
            let marker = try VMDKMarker(decoding: try read(count: VMDK.sectorSize, at: offset), path: path, offset: offset)
            items.append(Item(offset: offset, marker: marker))
            switch marker {
            case let .grain(_, size):
                let total = UInt64(VMDKMarker.grainHeaderSize) + UInt64(size)
                offset += (total + 511) / 512 * 512
            case .metadata(.endOfStream, _):
                guard offset + UInt64(VMDK.sectorSize) == end else {
                    throw VMDKError.badMarker(path: path, offset: offset, reason: "end-of-stream marker is not the last sector (the file is \(end) bytes)")
                }
                return items
            case let .metadata(_, sectors):
                offset += (1 + sectors) * UInt64(VMDK.sectorSize)
            }
        }
        throw VMDKError.badMarker(path: path, offset: offset, reason: "the file ends without an end-of-stream marker")
    }

    /// The inflated data of the grain whose marker is at `offset`.
    public func grainData(markerAt offset: UInt64) throws -> (lba: UInt64, data: [UInt8]) {
        let head = try read(count: 16, at: offset)
        guard case let .grain(lba, size) = try VMDKMarker(decoding: head, path: path, offset: offset) else {
            throw VMDKError.badMarker(path: path, offset: offset, reason: "expected a grain marker")
        }
        let compressed = try read(count: Int(size), at: offset + UInt64(VMDKMarker.grainHeaderSize))
        let data = try compressed.withUnsafeBytes {
            try Deflate.decompress($0, raw: false, capacity: Int(header.grainSize) * VMDK.sectorSize, name: "\(path) grain at byte \(offset)")
        }
        return (lba, data)
    }

    /// `count` u32 entries at `sector` (a grain directory or grain table).
    public func entries(atSector sector: UInt64, count: Int) throws -> [UInt32] {
        let bytes = try read(count: count * 4, at: sector * UInt64(VMDK.sectorSize))
        return (0..<count).map { bytes.loadLE(UInt32.self, at: $0 * 4) }
    }

    /// The sector of the grain directory: the header's, or for GD_AT_END the footer's (the
    /// footer sits 1024 bytes before the end, between its marker and the end-of-stream marker).
    public func grainDirectorySector() throws -> UInt64 {
        guard header.gdOffset == VMDK.gdAtEnd else { return header.gdOffset }
        let size = try file.size
        guard size >= 1536 else { throw VMDKError.truncated(path: path, offset: 0, wanted: 1536, available: Int(size)) }
        let footer = try VMDKHeader(decoding: try read(count: VMDKHeader.size, at: size - 1024), path: path, offset: size - 1024)
        return footer.gdOffset
    }

    /// The data of grain `index` (64 KiB for the default grain size), through the grain directory
    /// and table; nil when the grain is unallocated.
    public func grain(_ index: UInt64) throws -> [UInt8]? {
        let perTable = UInt64(header.numGTEsPerGT)
        let tableCount = Int((header.capacity + header.grainSize * perTable - 1) / (header.grainSize * perTable))
        let directory = try entries(atSector: try grainDirectorySector(), count: tableCount)
        let table = Int(index / perTable)
        guard table < directory.count, directory[table] != 0 else { return nil }
        let sector = try entries(atSector: UInt64(directory[table]), count: Int(perTable))[Int(index % perTable)]
        guard sector != 0 else { return nil }
        if header.flags.contains(.compressedGrains) {
            let (lba, data) = try grainData(markerAt: UInt64(sector) * UInt64(VMDK.sectorSize))
            guard lba == index * header.grainSize else {
                throw VMDKError.badMarker(path: path, offset: UInt64(sector) * UInt64(VMDK.sectorSize),
                                          reason: "grain marker says LBA \(lba), the grain table says \(index * header.grainSize)")
            }
            return data
        }
        return try read(count: Int(header.grainSize) * VMDK.sectorSize, at: UInt64(sector) * UInt64(VMDK.sectorSize))
    }
}
