import Compression
import ImageCore
import Initrd

/// An RPM package (format v3 and v4, as rpm 2.1 through 4.x write it), read without rpm:
/// ```
/// 0       lead, 96 bytes: magic ed ab ee db, major (3 or 4), minor, be16 type (0 binary,
///         1 source), be16 arch, name[66], be16 os, be16 signature type (5: a header), 16 reserved
/// 96      signature: an `RPMHeader`, then zeros to a multiple of 8 bytes
/// S       main header: an `RPMHeader` (NAME 1000, VERSION 1001, RELEASE 1002, ARCH 1022, the
///         file list, PAYLOADFORMAT 1124, PAYLOADCOMPRESSOR 1125, ...)
/// H       payload to the end (the signature's SIZE 1000 / LONGSIZE 270 gives header + payload):
///         a cpio newc archive (070701) of "./path" entries, compressed with gzip, bzip2, xz,
///         lzma or zstd (or not at all), as PAYLOADCOMPRESSOR says and its magic confirms
/// ```
/// Payload entries are checked against the main header's file list (DIRNAMES/BASENAMES/
/// DIRINDEXES or OLDFILENAMES) and sizes (FILESIZES or LONGFILESIZES); files the header lists
/// but the payload lacks (%ghost) are not installed, as rpm does. In a newc archive, hard-linked
/// names share an inode number and only the last carries the data.
enum RPMPackage {
    static let leadMagic: [UInt8] = [0xED, 0xAB, 0xEE, 0xDB]
    static let leadSize = 96

    /// Main header tags (lib/rpmtag.h numbers, documented in rpm's docs/manual/tags.md).
    enum Tag {
        static let name: UInt32 = 1000, version: UInt32 = 1001, release: UInt32 = 1002, epoch: UInt32 = 1003
        static let arch: UInt32 = 1022
        static let fileSizes: UInt32 = 1028, fileModes: UInt32 = 1030, fileLinkTos: UInt32 = 1036
        static let oldFileNames: UInt32 = 1027
        static let dirIndexes: UInt32 = 1116, baseNames: UInt32 = 1117, dirNames: UInt32 = 1118
        static let payloadFormat: UInt32 = 1124, payloadCompressor: UInt32 = 1125
        static let longFileSizes: UInt32 = 5008
    }

    /// Signature tags: the size of the main header plus the compressed payload.
    enum SignatureTag {
        static let size: UInt32 = 1000, longSize: UInt32 = 270
    }

    static func read(_ bytes: UnsafeRawBufferPointer, path: String, limits: PackageLimits) throws(KernelPackageError) -> PackageContents {
        guard bytes.count >= leadSize else {
            throw .truncated(path: path, offset: UInt64(bytes.count), needed: "the 96-byte RPM lead")
        }
        let major = bytes[4]
        guard major == 3 || major == 4 else {
            throw .unsupported(path: path, offset: 4, what: "RPM lead version \(major) (3 and 4 are read)")
        }
        if bytes.loadBE(UInt16.self, at: 6) == 1 {
            throw .unsupported(path: path, offset: 6, what: "a source RPM (lead type 1); give the binary kernel package")
        }
        let signatureType = bytes.loadBE(UInt16.self, at: 78)
        guard signatureType == 5 else {
            throw .unsupported(path: path, offset: 78, what: "RPM signature type \(signatureType) (only 5, a header, is written since RPM 2.1)")
        }

        let signature = try RPMHeader(bytes, at: leadSize, path: path, what: "signature")
        let headerStart = (signature.end + 7) & ~7
        guard headerStart <= bytes.count else {
            throw .truncated(path: path, offset: UInt64(bytes.count), needed: "the padding after the RPM signature (to byte \(headerStart))")
        }
        let header = try RPMHeader(bytes, at: headerStart, path: path, what: "header")

        // The signature says where the payload ends: a cut file is caught here, by size.
        var payloadEnd = bytes.count
        var declaredSize = try signature.integers(SignatureTag.longSize)?.first
        if declaredSize == nil { declaredSize = try signature.integers(SignatureTag.size)?.first }
        if let size = declaredSize {
            let (end, overflow) = UInt64(headerStart).addingReportingOverflow(size)
            guard !overflow, end >= UInt64(header.end) else {
                throw .corrupt(path: path, offset: signature.offset(of: SignatureTag.size),
                               expected: "a signature SIZE of at least the \(header.end - headerStart)-byte header, found \(size)")
            }
            guard end <= UInt64(bytes.count) else {
                throw .truncated(path: path, offset: UInt64(bytes.count),
                                 needed: "the payload, which the signature says ends at byte \(end)")
            }
            payloadEnd = Int(end)
        }

        guard let name = try header.string(Tag.name), let version = try header.string(Tag.version),
              let release = try header.string(Tag.release) else {
            throw .corrupt(path: path, offset: UInt64(headerStart), expected: "NAME, VERSION and RELEASE tags (1000-1002) in the RPM header")
        }
        let epoch = try header.integers(Tag.epoch)?.first
        let architecture = try header.string(Tag.arch) ?? ""
        let listed = try fileList(header, path: path)

        if let format = try header.string(Tag.payloadFormat), format != "cpio" {
            throw .unsupported(path: path, offset: header.offset(of: Tag.payloadFormat), what: "RPM payload format \"\(format)\" (only cpio)")
        }
        let payload = UnsafeRawBufferPointer(rebasing: bytes[header.end..<payloadEnd])
        let archive = try expand(payload, at: header.end, compressor: header.string(Tag.payloadCompressor),
                                 compressorOffset: header.offset(of: Tag.payloadCompressor), path: path, limits: limits)
        let files = try files(of: archive.bytes, name: archive.name, payloadOffset: UInt64(header.end),
                              listed: listed, path: path, limits: limits)
        let fullVersion = (epoch.map { "\($0):" } ?? "") + version + "-" + release
        return PackageContents(format: .rpm, name: name, version: fullVersion, architecture: architecture, files: files)
    }

    /// The payload decompressed; `name` says where its offsets are counted, for cpio errors.
    private static func expand(_ payload: UnsafeRawBufferPointer, at start: Int, compressor: String?, compressorOffset: UInt64,
                               path: String, limits: PackageLimits) throws(KernelPackageError) -> (bytes: [UInt8], name: String) {
        let stored = "\(path) (uncompressed payload at byte \(start))"
        if payload.starts(with: Array("0707".utf8)) {
            guard payload.count <= limits.maxExpandedBytes else {
                throw .tooLarge(path: path, what: "the uncompressed payload at byte \(start) (\(payload.count) bytes)", limit: limits.maxExpandedBytes)
            }
            return (Array(payload), stored)
        }
        guard let format = StreamCompression.detect(payload.prefix(8)) else {
            throw .corrupt(path: path, offset: UInt64(start),
                           expected: "a compressed payload (gzip, bzip2, xz, lzma or zstd magic) or cpio \"0707\", found \(hexBytes(payload.prefix(8)))")
        }
        let named: [String: StreamCompression] = ["gzip": .gzip, "bzip2": .bzip2, "xz": .xz, "lzma": .lzma, "zstd": .zstd]
        if let compressor, compressor != "identity" {
            guard let declared = named[compressor] else {
                throw .unsupported(path: path, offset: compressorOffset, what: "RPM payload compressor \"\(compressor)\"")
            }
            guard declared == format else {
                throw .corrupt(path: path, offset: UInt64(start),
                               expected: "a \(compressor) payload as PAYLOADCOMPRESSOR says, found \(format.rawValue) magic \(hexBytes(payload.prefix(4)))")
            }
        }
        guard named.values.contains(format) else {
            throw .unsupported(path: path, offset: UInt64(start), what: "a \(format.rawValue)-compressed RPM payload")
        }
        let output = try decompress(payload, format: format, at: start, path: path, what: "payload", limit: limits.maxExpandedBytes)
        return (output, "\(path) (\(format.rawValue) payload at byte \(start), decompressed)")
    }

    /// The main header's file list: normalized path -> (size, mode, link target).
    struct ListedFile {
        var size: UInt64?
        var mode: UInt16?
    }

    static func fileList(_ header: RPMHeader, path: String) throws(KernelPackageError) -> [String: ListedFile] {
        var names: [String] = []
        if let baseNames = try header.stringArray(Tag.baseNames) {
            guard let dirNames = try header.stringArray(Tag.dirNames), let dirIndexes = try header.integers(Tag.dirIndexes),
                  dirIndexes.count == baseNames.count else {
                throw .corrupt(path: path, offset: header.offset(of: Tag.baseNames),
                               expected: "DIRNAMES and as many DIRINDEXES as the \(baseNames.count) BASENAMES")
            }
            for (base, index) in zip(baseNames, dirIndexes) {
                guard index < UInt64(dirNames.count) else {
                    throw .corrupt(path: path, offset: header.offset(of: Tag.dirIndexes),
                                   expected: "DIRINDEXES below the \(dirNames.count) DIRNAMES, found \(index)")
                }
                names.append(dirNames[Int(index)] + base)
            }
        } else if let old = try header.stringArray(Tag.oldFileNames) {
            names = old
        }
        var sizes = try header.integers(Tag.longFileSizes)
        if sizes == nil { sizes = try header.integers(Tag.fileSizes) }
        let modes = try header.integers(Tag.fileModes)
        if let sizes, sizes.count != names.count {
            throw .corrupt(path: path, offset: header.offset(of: Tag.fileSizes), expected: "\(names.count) file sizes, found \(sizes.count)")
        }
        if let modes, modes.count != names.count {
            throw .corrupt(path: path, offset: header.offset(of: Tag.fileModes), expected: "\(names.count) file modes, found \(modes.count)")
        }
        var listed: [String: ListedFile] = [:]
        for (number, name) in names.enumerated() {
            guard let normalized = PackageTree.normalized(name) else {
                throw .unsafePath(path: path, offset: header.offset(of: Tag.baseNames), name: name)
            }
            listed[normalized] = ListedFile(size: sizes?[number], mode: modes.map { UInt16(truncatingIfNeeded: $0[number]) })
        }
        return listed
    }

    /// The cpio entries as package files, checked against the header's list.
    private static func files(of archive: [UInt8], name: String, payloadOffset: UInt64, listed: [String: ListedFile],
                              path: String, limits: PackageLimits) throws(KernelPackageError) -> [PackageFile] {
        if archive.starts(with: Array("07070X".utf8)) {
            throw .unsupported(path: path, offset: payloadOffset,
                               what: "the stripped cpio payload (07070X) of RPM v6 and of packages with files over 4 GiB")
        }
        var result: Result<[CpioEntry], CpioError> = .success([])
        archive.withUnsafeBytes { raw in
            result = Result { () throws(CpioError) in
                try CpioNewc.read(raw, from: 0, name: name, baseOffset: 0,
                                  limits: CpioLimits(maxEntries: limits.maxFiles, maxNameLength: limits.maxNameLength)).entries
            }
        }
        let entries: [CpioEntry]
        switch result {
        case let .success(read): entries = read
        case let .failure(.tooManyEntries(_, _, limit)):
            throw .tooLarge(path: path, what: "the number of payload entries", limit: limit)
        case let .failure(error): throw .cpio(error)
        }
        func problem(_ number: Int, _ entry: CpioEntry, _ expected: String) -> KernelPackageError {
            .corrupt(path: path, offset: payloadOffset, expected: "payload entry \(number) (\(entry.name)) \(expected)")
        }
        // Hard links: same inode, nlink > 1; the data travels with the last name.
        struct Inode: Hashable { var ino, major, minor: UInt32 }
        var links: [Inode: [Int]] = [:]
        for (number, entry) in entries.enumerated() where entry.kind == .regular && entry.nlink > 1 {
            links[Inode(ino: entry.ino, major: entry.devMajor, minor: entry.devMinor), default: []].append(number)
        }
        var tree = PackageTree(path: path, limits: limits)
        var written: Set<Int> = []
        for (number, entry) in entries.enumerated() where !written.contains(number) {
            guard let normalized = PackageTree.normalized(entry.name) else {
                throw .unsafePath(path: path, offset: payloadOffset, name: entry.name)
            }
            if normalized != "/" {
                guard let known = listed[normalized] else { throw problem(number, entry, "to be a file the RPM header lists") }
                if let mode = known.mode, UInt32(mode) & 0o170000 != entry.mode & 0o170000 {
                    throw problem(number, entry, "to have the file type of header mode \(String(mode, radix: 8)), found mode \(String(entry.mode, radix: 8))")
                }
            }
            switch entry.kind {
            case .directory:
                try tree.add(name: entry.name, kind: .directory, mode: entry.mode, data: [], linkTarget: nil, offset: payloadOffset)
            case .symlink:
                try tree.add(name: entry.name, kind: .symlink, mode: entry.mode, data: [], linkTarget: entry.linkTarget, offset: payloadOffset)
            case .regular:
                let group = entry.nlink > 1 ? links[Inode(ino: entry.ino, major: entry.devMajor, minor: entry.devMinor)] ?? [number] : [number]
                let primaryNumber = group.last { !entries[$0].data.isEmpty } ?? group[0]
                let primary = entries[primaryNumber]
                if let size = listed[PackageTree.normalized(primary.name) ?? ""]?.size, size != UInt64(primary.data.count) {
                    throw problem(primaryNumber, primary, "to hold the \(size) bytes the RPM header lists, found \(primary.data.count)")
                }
                try tree.add(name: primary.name, kind: .regular, mode: primary.mode, data: primary.data, linkTarget: nil, offset: payloadOffset)
                written.insert(primaryNumber)
                for other in group where other != primaryNumber {
                    guard entries[other].data.isEmpty else {
                        throw problem(other, entries[other], "to carry no data: its hard link \(primary.name) carries it")
                    }
                    try tree.add(name: entries[other].name, kind: .hardlink, mode: entries[other].mode, data: [],
                                 linkTarget: primary.name, offset: payloadOffset)
                    written.insert(other)
                }
            default:
                throw .unsupported(path: path, offset: payloadOffset,
                                   what: "payload entry \(number) (\(entry.name)), a \(entry.kind) and not a file, directory or symlink,")
            }
        }
        return tree.files
    }
}

/// Every member of a compressed stream from `start` (members concatenated, zero padding between
/// and after them allowed), its output bounded by `limit`; errors name file offsets.
func decompress(_ input: UnsafeRawBufferPointer, format: StreamCompression, at start: Int, path: String, what: String,
                limit: Int) throws(KernelPackageError) -> [UInt8] {
    var output: [UInt8] = []
    var position = 0
    repeat {
        let rest = UnsafeRawBufferPointer(rebasing: input[position...])
        if position > 0 && StreamCompression.detect(rest.prefix(8)) != format {
            throw .corrupt(path: path, offset: UInt64(start + position),
                           expected: "the end of the \(format.rawValue) \(what), or another \(format.rawValue) member, found \(hexBytes(rest.prefix(8)))")
        }
        do {
            let member = try format.decompressMember(rest, name: path, baseOffset: UInt64(start + position), limit: limit - output.count)
            if output.isEmpty { output = member.output } else { output.append(contentsOf: member.output) }
            position += max(member.consumed, 1)
        } catch {
            if case .outputTooLarge = error {
                throw .tooLarge(path: path, what: "the \(format.rawValue) \(what) at byte \(start), decompressed,", limit: limit)
            }
            throw .compression(error)
        }
        while position < input.count && input[position] == 0 { position += 1 }
    } while position < input.count
    return output
}
