import ImageCore
#if canImport(Glibc)
import Glibc
#endif

/// Reads a VMDK disk: either one hosted sparse extent (monolithicSparse, streamOptimized: the
/// file starts with "KDMV", see `VMDK` and `VMDKSparseExtent`), or a text descriptor whose extent
/// lines name the files that hold the disk, in order:
/// ```
/// # Disk DescriptorFile                       disk.vmdk (at most 64 KiB of text)
/// version=1
/// CID=a04a1169
/// parentCID=ffffffff                          anything else: a delta link (not read)
/// createType="twoGbMaxExtentSparse"
/// RW 4194304 SPARSE "disk-s001.vmdk"          sectors 0 ..< 4194304: a sparse extent file
/// RW 311296 SPARSE "disk-s002.vmdk"           the next 311296 sectors
/// RW 4505600 FLAT "disk-flat.vmdk" 0          raw data from sector 0 of the file
/// RW 2048 ZERO                                reads as zeros, no file
/// RDONLY 2048 VMFS "disk-flat.vmdk"           as FLAT at offset 0
/// ```
/// Extent file names are relative to the descriptor's directory. By default only regular files in
/// that directory are opened, judged after resolving symlinks (`ExternalFiles.contained`):
/// absolute paths, `../` and links leading out are refused before anything is opened, naming
/// `--allow-external-files`, which follows them as VMware does. The virtual size is the sum of the extent lines (for one sparse file, its
/// capacity). Delta links (`parentCID`, `parentFileNameHint`), VMFSSPARSE/SESPARSE/COWD extents
/// and raw device mappings are refused as unsupported.
///
/// Differences from qemu: qemu skips RDONLY and ZERO extent lines (its virtual size leaves them
/// out); Rehost reads them as VMware does. A sparse extent whose header capacity differs from its
/// extent line is refused here; qemu trusts the header.
public final class VMDKReader: DiskImageReader {
    public let format = ImageFormat.vmdk
    public let path: String
    public let virtualSize: UInt64
    public let variant: String
    /// The descriptor's createType (for a sparse file without one: what its header says it is).
    public let createType: String
    /// The files holding the disk's data, in disk order (the sparse file itself for a monolithic
    /// sparse or stream-optimized disk).
    public var extentPaths: [String] { extents.compactMap(\.path) }
    public var inputFiles: [String] { [path] + extentPaths.filter { $0 != path } }

    /// The largest descriptor file (or embedded descriptor) read.
    public static let maximumDescriptorSize = 64 << 10
    /// The createTypes whose extents Rehost reads.
    static let supportedCreateTypes: Set<String> = [
        "monolithicSparse", "streamOptimized", "monolithicFlat", "twoGbMaxExtentSparse", "twoGbMaxExtentFlat", "vmfs",
    ]
    static let flattenAdvice = "flatten it into one standalone disk first, e.g. `qemu-img convert -O vmdk child.vmdk flat.vmdk` or VMware's `vmware-vdiskmanager -r child.vmdk -t 0 flat.vmdk`"

    enum ExtentData {
        case zero
        case flat(path: String, offset: UInt64)
        case sparse(VMDKSparseExtent)
    }

    struct Extent {
        /// Byte offset in the disk, and size.
        let start: UInt64
        let size: UInt64
        let data: ExtentData

        var path: String? {
            switch data {
            case .zero: return nil
            case let .flat(path, _): return path
            case let .sparse(sparse): return sparse.path
            }
        }
    }

    let extents: [Extent]

    public init(path: String, externalFiles: ExternalFiles = .contained) throws {
        self.path = path
        let file = try RawFile(path: path, mode: .readOnly)
        let fileSize = try file.size
        let head = try file.read(count: Int(min(fileSize, 512)), at: 0)
        if head.count >= 4 && head.loadLE(UInt32.self, at: 0) == VMDK.magic {
            var descriptor: VMDKDescriptor?
            let sparse = try VMDKSparseExtent(path: path) { text, offset in
                let embedded = try Self.parseDescriptor(text, path: path, at: offset)
                try Self.refuseDeltaLinks(embedded, path: path)
                descriptor = embedded
            }
            createType = descriptor?.fields["createType"] ?? (sparse.compressed ? "streamOptimized" : "monolithicSparse")
            virtualSize = sparse.capacityBytes
            extents = [Extent(start: 0, size: sparse.capacityBytes, data: .sparse(sparse))]
            variant = "VMDK \(createType)" + (sparse.grainBytes == VMDK.grainBytes ? "" : ", \(sparse.grainBytes) byte grains")
            return
        }
        if head.count >= 4 && head.loadLE(UInt32.self, at: 0) == VMDKSparseExtent.cowdMagic {
            _ = try VMDKSparseExtent(path: path)  // throws .unsupported
        }
        let signature = Array("# Disk DescriptorFile".utf8)
        guard head.starts(with: signature) else {
            let found = head.prefix(4).map { $0 < 16 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined(separator: " ")
            throw ImageReadError.corrupt(format: .vmdk, path: path, offset: 0,
                                         reason: "neither a sparse extent (magic \"KDMV\") nor a text descriptor (\"# Disk DescriptorFile\"); the file starts with \(found)")
        }
        guard fileSize <= UInt64(Self.maximumDescriptorSize) else {
            throw ImageReadError.corrupt(format: .vmdk, path: path, offset: 0,
                                         reason: "a descriptor file of \(fileSize) bytes; descriptors are at most \(Self.maximumDescriptorSize) bytes of text")
        }
        let bytes = try file.read(count: Int(fileSize), at: 0)
        let descriptor = try Self.parseDescriptor(String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self), path: path, at: 0)
        try Self.refuseDeltaLinks(descriptor, path: path)
        guard let createType = descriptor.fields["createType"] else {
            throw ImageReadError.corrupt(format: .vmdk, path: path, offset: 0, reason: "the descriptor has no createType")
        }
        guard Self.supportedCreateTypes.contains(createType) else {
            throw ImageReadError.unsupported(format: .vmdk, path: path, feature: "createType \"\(createType)\"",
                                             advice: "Rehost reads \(Self.supportedCreateTypes.sorted().joined(separator: ", ")); "
                                                 + "convert the disk to one of them first, e.g. with `qemu-img convert -O vmdk`")
        }
        guard !descriptor.extents.isEmpty else {
            throw ImageReadError.corrupt(format: .vmdk, path: path, offset: 0, reason: "the descriptor has no extent lines")
        }
        self.createType = createType
        let lineOffsets = Self.lineOffsets(bytes)
        var extents: [Extent] = []
        var total: UInt64 = 0
        // The bytes each extent reads from which file (device, inode): two lines may not read the
        // same bytes (a small file would make a disk of any size), and the grain directories
        // held for all sparse extents stay within the table budget.
        var reads: [(device: UInt64, inode: UInt64, range: Range<UInt64>, line: Int)] = []
        var directoryBytes: UInt64 = 0
        for (index, line) in descriptor.extents.enumerated() {
            let lineNumber = descriptor.extentLines[index]
            let lineOffset = lineOffsets[lineNumber - 1]
            let extent = try Self.openExtent(line, number: lineNumber, at: lineOffset, start: total, descriptorPath: path,
                                             externalFiles: externalFiles)
            if let extentPath = extent.path {
                var st = stat()
                guard stat(extentPath, &st) == 0 else { throw FileError.stat(path: extentPath, errno: errno) }
                let range: Range<UInt64>
                switch extent.data {
                case let .flat(_, offset): range = offset..<(offset + extent.size)
                case let .sparse(sparse):
                    range = 0..<UInt64.max
                    directoryBytes += UInt64(sparse.directory.count) * 4
                    guard directoryBytes <= DiskImageReaders.tableMemoryBudget else {
                        throw ImageReadError.corrupt(format: .vmdk, path: path, offset: lineOffset,
                                                     reason: "extent line \(lineNumber): the grain directories of the sparse extents so far take \(directoryBytes) bytes, more than the \(DiskImageReaders.tableMemoryBudget) Rehost holds in memory")
                    }
                case .zero: range = 0..<0
                }
                let device = UInt64(st.st_dev), inode = UInt64(st.st_ino)
                if let other = reads.first(where: { $0.device == device && $0.inode == inode && $0.range.overlaps(range) }) {
                    throw ImageReadError.corrupt(format: .vmdk, path: path, offset: lineOffset,
                                                 reason: "extent lines \(other.line) and \(lineNumber) read the same bytes of \"\(ReaderText.printable(line.fileName.utf8))\": shared extents are refused")
                }
                reads.append((device, inode, range, lineNumber))
            }
            let (sum, overflow) = total.addingReportingOverflow(extent.size)
            guard !overflow, sum <= UInt64.max - UInt64(DiskImageReaders.maxPieceSize) else {
                throw ImageReadError.corrupt(format: .vmdk, path: path, offset: lineOffset, reason: "the extents add up to more than 2^64 bytes")
            }
            total = sum
            if extent.size > 0 { extents.append(extent) }
        }
        self.extents = extents
        virtualSize = total
        variant = "VMDK \(createType)" + (descriptor.extents.count > 1 ? ", \(descriptor.extents.count) extents" : "")
    }

    /// One extent line: its file opened and checked against the line.
    private static func openExtent(_ line: VMDKDescriptor.Extent, number: Int, at lineOffset: UInt64, start: UInt64,
                                   descriptorPath: String, externalFiles: ExternalFiles) throws -> Extent {
        func corrupt(_ reason: String) -> ImageReadError {
            .corrupt(format: .vmdk, path: descriptorPath, offset: lineOffset, reason: "extent line \(number): \(reason)")
        }
        let sectorSize = UInt64(VMDK.sectorSize)
        guard line.sectors <= UInt64.max / sectorSize else { throw corrupt("\(line.sectors) sectors do not fit in 64 bits of bytes") }
        let size = line.sectors * sectorSize
        switch line.access {
        case "RW", "RDONLY": break
        case "NOACCESS":
            throw ImageReadError.unsupported(format: .vmdk, path: descriptorPath, feature: "a NOACCESS extent (line \(number))",
                                             advice: "its data cannot be read; \(flattenAdvice)")
        default: throw corrupt("access is \(line.access), expected RW, RDONLY or NOACCESS")
        }
        switch line.type {
        case "ZERO":
            return Extent(start: start, size: size, data: .zero)
        case "FLAT", "VMFS", "SPARSE":
            break
        case "VMFSSPARSE", "SESPARSE":
            throw ImageReadError.unsupported(format: .vmdk, path: descriptorPath, feature: "a \(line.type) (ESXi snapshot delta) extent",
                                             advice: flattenAdvice)
        case "VMFSRDM", "VMFSRAW", "VMFSRDMP":
            throw ImageReadError.unsupported(format: .vmdk, path: descriptorPath, feature: "a \(line.type) (raw device mapping) extent",
                                             advice: "copy the mapped device itself instead, e.g. with `dd`")
        default:
            throw corrupt("extent type \(line.type), expected FLAT, SPARSE, ZERO or VMFS")
        }
        guard !line.fileName.isEmpty else { throw corrupt("a \(line.type) extent needs a quoted file name") }
        guard line.sectors > 0 else { return Extent(start: start, size: 0, data: .zero) }
        let what = "extent line \(number)"
        let extentPath = try externalFiles.resolve(line.fileName, namedBy: descriptorPath, format: .vmdk, at: lineOffset, what: what)
        // Opened to be checked, then closed until the disk is streamed.
        let file: RawFile
        do {
            file = try RawFile(path: extentPath, mode: .readOnlyNoFollow)
        } catch FileError.open(_, let code) where code == ENOENT {
            throw corrupt("the extent file \"\(ReaderText.printable(line.fileName.utf8))\" does not exist (looked for \(extentPath))")
        }
        try externalFiles.check(file, reference: line.fileName, namedBy: descriptorPath, format: .vmdk, at: lineOffset, what: what)
        switch line.type {
        case "SPARSE":
            guard line.offset == 0 else { throw corrupt("a SPARSE extent has no offset, found \(line.offset)") }
            let sparse = try VMDKSparseExtent(path: extentPath, openMode: .readOnlyNoFollow)
            guard sparse.header.capacity == line.sectors else {
                throw corrupt("\"\(line.fileName)\" holds \(sparse.header.capacity) sectors, the extent line says \(line.sectors)")
            }
            return Extent(start: start, size: size, data: .sparse(sparse))
        default:
            guard line.offset <= UInt64.max / sectorSize else { throw corrupt("offset \(line.offset) sectors does not fit in 64 bits of bytes") }
            let offset = line.offset * sectorSize
            let fileSize = try file.size
            // A flat file must hold the whole extent (qemu would read zeros past its end).
            guard offset <= fileSize, size <= fileSize - offset else {
                throw ImageReadError.truncated(format: .vmdk, path: extentPath, offset: offset, needed: size, fileSize: fileSize)
            }
            return Extent(start: start, size: size, data: .flat(path: extentPath, offset: offset))
        }
    }

    /// Parses descriptor text; a bad line is reported at its byte offset (`base` is where the
    /// text starts in the file).
    static func parseDescriptor(_ text: String, path: String, at base: UInt64) throws -> VMDKDescriptor {
        do {
            return try VMDKDescriptor(parsing: text, path: path)
        } catch let VMDKError.badDescriptor(_, line, reason) {
            let offsets = lineOffsets(Array(text.utf8))
            throw ImageReadError.corrupt(format: .vmdk, path: path, offset: base + offsets[min(line, offsets.count) - 1],
                                         reason: "descriptor line \(line): \(reason)")
        }
    }

    /// A delta disk needs its parent, which Rehost does not follow.
    static func refuseDeltaLinks(_ descriptor: VMDKDescriptor, path: String) throws {
        let parentCID = descriptor.fields["parentCID"]?.lowercased() ?? "ffffffff"
        let parentHint = descriptor.fields["parentFileNameHint"] ?? ""
        guard parentCID == "ffffffff" && parentHint.isEmpty else {
            let parent = parentHint.isEmpty ? "parentCID \(parentCID)" : "\"\(parentHint)\""
            throw ImageReadError.unsupported(format: .vmdk, path: path, feature: "a delta link to a parent disk (\(parent))", advice: flattenAdvice)
        }
    }

    /// The byte offset where each line starts.
    static func lineOffsets(_ bytes: [UInt8]) -> [UInt64] {
        var offsets: [UInt64] = [0]
        for (index, byte) in bytes.enumerated() where byte == UInt8(ascii: "\n") { offsets.append(UInt64(index + 1)) }
        return offsets
    }

    public func forEachDataPiece(_ body: (_ offset: UInt64, _ data: UnsafeRawBufferPointer) throws -> Void) throws {
        let scratch = VMDKScratch()
        for extent in extents {
            switch extent.data {
            case .zero:
                continue
            case let .sparse(sparse):
                try sparse.forEachDataPiece(base: extent.start, scratch: scratch, body)
            case let .flat(path, offset):
                // Holes in the file read as zeros: the run streamer reads only its data ranges.
                let runs = try HostRunStreamer(file: RawFile(path: path, mode: .readOnlyNoFollow), format: .vmdk, diskSize: extent.size)
                try runs.add(virtual: extent.start, host: offset, length: extent.size, body)
                try runs.flush(body)
            }
        }
    }
}
