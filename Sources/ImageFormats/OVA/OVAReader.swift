import ImageCore

/// Reads the first disk of an OVA: a tar archive (see `TarReader`) of an OVF descriptor, an
/// optional manifest and certificate, and one or more disks, usually streamOptimized VMDKs.
///
/// The disk is the member the OVF's first `<Disk ovf:fileRef=...>` names through its
/// `<References><File ovf:href=...>` (see `OVFReferences`), else the first member whose name
/// ends in `.vmdk`. Its bytes are copied once into a sparse scratch file (all-zero 64 KiB chunks
/// stay holes) that lives as long as the reader, and read there by `VMDKReader`: a compressed
/// stream gains nothing from random access into the archive, and the copy costs far less than
/// inflating the grains. The manifest is not checked. Gzip-compressed and chunked members
/// (`ovf:compression`, `ovf:chunkSize`) are refused with advice.
public final class OVAReader: DiskImageReader {
    public let format = ImageFormat.ova
    public let path: String
    public var virtualSize: UInt64 { disk.virtualSize }
    public let variant: String
    public var inputFiles: [String] { [path] }
    /// The archive member the disk was read from.
    public let diskMember: String

    /// The largest OVF descriptor read (real ones are a few KiB).
    public static let maximumDescriptorSize: UInt64 = 1 << 20
    static let chunkSize = 64 * 1024
    static let copySize = 1 << 20
    static let extractAdvice = "extract the archive with `tar -xf`"

    let disk: VMDKReader
    let scratch: ScratchFile

    /// Lists the archive at `path`, picks the disk and copies it into a scratch file in
    /// `scratchDirectory` (nil: $TMPDIR or /tmp).
    public init(path: String, scratchDirectory: String? = nil) throws {
        self.path = path
        let file = try RawFile(path: path, mode: .readOnly)
        let members = try TarReader.members(of: file, path: path)
        let isVMDK = { (member: TarMember) in member.name.lowercased().hasSuffix(".vmdk") }

        var references: OVFReferences?
        if let ovf = members.first(where: { $0.name.lowercased().hasSuffix(".ovf") }) {
            guard ovf.size <= Self.maximumDescriptorSize else {
                throw ImageReadError.corrupt(format: .ova, path: path, offset: ovf.headerOffset,
                                             reason: "the OVF descriptor \(ovf.name) is \(ovf.size) bytes; descriptors are at most \(Self.maximumDescriptorSize)")
            }
            let text = try file.read(count: Int(ovf.size), at: ovf.dataOffset)
            references = OVFReferences(xml: String(decoding: text, as: UTF8.self))
        }

        let member: TarMember
        let diskCount: Int
        if let references, let reference = references.firstDiskFile {
            if reference.compression.map({ !$0.isEmpty && $0 != "identity" }) ?? false {
                throw ImageReadError.unsupported(
                    format: .ova, path: path, feature: "a \(reference.compression ?? "")-compressed disk member (\(reference.href))",
                    advice: "\(Self.extractAdvice), decompress it (`gunzip -c \(reference.href) > disk.vmdk`; the member may be named \(reference.href).gz) and give Rehost the .vmdk")
            }
            if reference.chunkSize != nil {
                throw ImageReadError.unsupported(
                    format: .ova, path: path, feature: "a disk split into chunks (ovf:chunkSize, \(reference.href))",
                    advice: "\(Self.extractAdvice), join the chunks in order (`cat \(reference.href).* > disk.vmdk`) and give Rehost the .vmdk")
            }
            guard let found = members.first(where: { Self.sameName($0.name, reference.href) }) else {
                throw ImageReadError.corrupt(format: .ova, path: path, offset: 0,
                                             reason: "the OVF names the disk file \"\(ReaderText.printable(reference.href.utf8))\" but the archive has no such member (members: \(Self.list(members)))")
            }
            member = found
            diskCount = max(references.diskFileRefs.count, 1)
        } else if let found = members.first(where: isVMDK) {
            member = found
            diskCount = members.filter(isVMDK).count
        } else {
            throw ImageReadError.corrupt(format: .ova, path: path, offset: 0,
                                         reason: "no disk: the OVF references none and no member is a .vmdk (members: \(Self.list(members)))")
        }
        diskMember = member.name

        let head = try file.read(count: Int(min(member.size, 512)), at: member.dataOffset)
        if ForeignFormat.isGzip(head) {
            throw ImageReadError.unsupported(
                format: .ova, path: path, feature: "a gzip-compressed disk member (\(member.name))",
                advice: "\(Self.extractAdvice), decompress the member with `gunzip` and give Rehost the .vmdk")
        }
        guard head.count >= 4, head.loadLE(UInt32.self, at: 0) == VMDK.magic else {
            let what = ForeignFormat.detect(head: head, tail: []).map { "\($0.rawValue) data" }
                ?? "data starting with \(TarHeader.printable(Array(head.prefix(8))))"
            throw ImageReadError.unsupported(
                format: .ova, path: path, feature: "a disk member that is not a sparse VMDK (\(member.name): \(what))",
                advice: "\(Self.extractAdvice) and give Rehost the disk file itself")
        }

        scratch = try ScratchFile(directory: scratchDirectory, hint: member.name)
        try Self.copy(file, path: path, member: member, to: scratch.file)
        do {
            disk = try VMDKReader(path: scratch.path)
        } catch let error as ImageReadError {
            throw Self.inArchive(error, path: path, member: member)
        }
        variant = "OVA member \(member.name), \(disk.variant)" + (diskCount > 1 ? ", disk 1 of \(diskCount)" : "")
    }

    public func forEachDataPiece(_ body: (UInt64, UnsafeRawBufferPointer) throws -> Void) throws {
        do {
            try disk.forEachDataPiece(body)
        } catch let error as ImageReadError where error.path == scratch.path {
            throw Self.inArchive(error, path: path, member: TarMember(name: diskMember, headerOffset: 0, dataOffset: 0, size: 0))
        }
    }

    /// Member names compare without a leading "./", as tar writers differ.
    static func sameName(_ member: String, _ href: String) -> Bool {
        func bare(_ name: String) -> Substring {
            var name = Substring(name)
            while name.hasPrefix("./") { name = name.dropFirst(2) }
            return name
        }
        return bare(member) == bare(href)
    }

    private static func list(_ members: [TarMember]) -> String {
        members.isEmpty ? "none" : members.prefix(8).map { ReaderText.printable($0.name.utf8) }.joined(separator: ", ")
            + (members.count > 8 ? ", ..." : "")
    }

    /// Copies the member's bytes, leaving all-zero 64 KiB chunks as holes.
    private static func copy(_ file: RawFile, path: String, member: TarMember, to output: RawFile) throws {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: copySize, alignment: 16)
        defer { buffer.deallocate() }
        var done: UInt64 = 0
        while done < member.size {
            let want = Int(min(UInt64(copySize), member.size - done))
            let got = try file.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<want]), at: member.dataOffset + done)
            guard got > 0 else {
                throw ImageReadError.truncated(format: .ova, path: path, offset: member.dataOffset + done,
                                               needed: member.size - done, fileSize: try file.size)
            }
            try ZeroDetection.forEachNonZeroRun(in: UnsafeRawBufferPointer(rebasing: buffer[0..<got]), at: done,
                                                granularity: chunkSize) { offset, run in try output.write(run, at: offset) }
            done += UInt64(got)
        }
        try output.truncate(to: member.size)
    }

    /// A VMDK error about the scratch copy, restated about the member of the archive.
    static func inArchive(_ error: ImageReadError, path: String, member: TarMember) -> ImageReadError {
        let name = "\(path): member \(member.name)"
        switch error {
        case let .truncated(format, _, offset, needed, fileSize):
            return .truncated(format: format, path: name, offset: offset, needed: needed, fileSize: fileSize)
        case let .corrupt(format, _, offset, reason):
            return .corrupt(format: format, path: name, offset: offset, reason: reason)
        case let .unsupported(format, _, feature, advice):
            return .unsupported(format: format, path: name, feature: feature, advice: advice)
        }
    }
}

extension ImageReadError {
    var path: String {
        switch self {
        case let .truncated(_, path, _, _, _), let .corrupt(_, path, _, _), let .unsupported(_, path, _, _): return path
        }
    }
}
