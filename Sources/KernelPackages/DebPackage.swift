import Compression

/// A Debian binary package, read without dpkg:
/// ```
/// ar archive (`ArArchive`)
///   debian-binary      "2.0\n" (format major 2), always the first member
///   control.tar[.gz|.xz|.zst]   ./control: "Package:", "Version:", "Architecture:" fields;
///                               the maintainer scripts (never run here)
///   data.tar[.gz|.xz|.zst|.bz2|.lzma]   the files, as a tar (`TarArchive`) of "./path" names
///   _*                 members starting with "_" (signatures) are skipped, as dpkg does
/// ```
enum DebPackage {
    /// The largest control.tar read, decompressed; a kernel's is a few KiB.
    static let controlLimit = 64 << 20

    static func read(_ bytes: UnsafeRawBufferPointer, path: String, limits: PackageLimits) throws(KernelPackageError) -> PackageContents {
        let members = try ArArchive.members(bytes, path: path)
        guard let first = members.first else {
            throw .truncated(path: path, offset: UInt64(bytes.count), needed: "the debian-binary member of a DEB (the ar archive is empty)")
        }
        guard first.name == "debian-binary" else {
            throw .corrupt(path: path, offset: UInt64(first.headerOffset), expected: "the first ar member to be debian-binary, found \(quoted(first.name.utf8))")
        }
        let formatVersion = bytes[first.dataOffset..<first.dataOffset + first.size]
        guard formatVersion.starts(with: Array("2.".utf8)) else {
            throw .unsupported(path: path, offset: UInt64(first.dataOffset), what: "DEB format \(quoted(formatVersion)) (2.x is read)")
        }
        func member(_ stem: String) throws(KernelPackageError) -> (ArArchive.Member, StreamCompression?) {
            let candidates: [(String, StreamCompression?)] = [("", nil), (".gz", .gzip), (".xz", .xz), (".zst", .zstd),
                                                                (".bz2", .bzip2), (".lzma", .lzma)]
            for member in members.dropFirst() {
                if let match = candidates.first(where: { member.name == stem + $0.0 }) { return (member, match.1) }
                if member.name.hasPrefix(stem) {
                    throw .unsupported(path: path, offset: UInt64(member.headerOffset), what: "DEB member \(quoted(member.name.utf8))")
                }
            }
            throw .corrupt(path: path, offset: UInt64(bytes.count), expected: "a \(stem) member in the DEB, found \(members.map(\.name).joined(separator: ", "))")
        }

        let (controlMember, controlCompression) = try member("control.tar")
        let controlTar = try contents(of: controlMember, compression: controlCompression, bytes: bytes, path: path,
                                      limit: min(controlLimit, limits.maxExpandedBytes))
        var control: [UInt8]?
        try TarArchive.walk(controlTar.bytes, path: controlTar.name) { entry throws(KernelPackageError) in
            if entry.kind == .regular, PackageTree.normalized(entry.name) == "/control" { control = entry.data }
        }
        guard let control else {
            throw .corrupt(path: path, offset: UInt64(controlMember.dataOffset), expected: "a ./control file in \(controlMember.name)")
        }
        let fields = controlFields(control)
        guard let name = fields["package"], let version = fields["version"] else {
            throw .corrupt(path: path, offset: UInt64(controlMember.dataOffset),
                           expected: "Package and Version fields in the control file of \(controlMember.name)")
        }

        let (dataMember, dataCompression) = try member("data.tar")
        let dataTar = try contents(of: dataMember, compression: dataCompression, bytes: bytes, path: path, limit: limits.maxExpandedBytes)
        var tree = PackageTree(path: dataTar.name, limits: limits)
        try TarArchive.walk(dataTar.bytes, path: dataTar.name) { entry throws(KernelPackageError) in
            let kind: PackageFile.Kind
            switch entry.kind {
            case .regular: kind = .regular
            case .directory: kind = .directory
            case .symlink: kind = .symlink
            case .hardlink: kind = .hardlink
            }
            try tree.add(name: entry.name, kind: kind, mode: entry.mode, data: entry.data,
                         linkTarget: entry.kind == .regular || entry.kind == .directory ? nil : entry.linkName,
                         offset: UInt64(entry.offset))
        }
        return PackageContents(format: .deb, name: name, version: version, architecture: fields["architecture"] ?? "",
                               files: tree.files)
    }

    /// A member's tar, decompressed; `name` says where offsets in it count from.
    private static func contents(of member: ArArchive.Member, compression: StreamCompression?, bytes: UnsafeRawBufferPointer,
                                 path: String, limit: Int) throws(KernelPackageError) -> (bytes: [UInt8], name: String) {
        let raw = UnsafeRawBufferPointer(rebasing: bytes[member.dataOffset..<member.dataOffset + member.size])
        guard let compression else {
            guard raw.count <= limit else {
                throw .tooLarge(path: path, what: "\(member.name) at byte \(member.dataOffset) (\(raw.count) bytes)", limit: limit)
            }
            return (Array(raw), "\(path) (\(member.name) at byte \(member.dataOffset))")
        }
        guard StreamCompression.detect(raw.prefix(8)) == compression else {
            throw .corrupt(path: path, offset: UInt64(member.dataOffset),
                           expected: "\(compression.rawValue) data in \(member.name), found \(hexBytes(raw.prefix(8)))")
        }
        let output = try decompress(raw, format: compression, at: member.dataOffset, path: path, what: member.name, limit: limit)
        return (output, "\(path) (\(member.name) at byte \(member.dataOffset), decompressed)")
    }

    /// The first paragraph's fields, names lowercased; continuation lines (leading space or tab)
    /// joined with newlines.
    static func controlFields(_ bytes: [UInt8]) -> [String: String] {
        var fields: [String: String] = [:]
        var current: String?
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false) {
            if line.trimmingCharacters(in: " \t\r").isEmpty {
                if !fields.isEmpty { break } else { continue }
            }
            if line.first == " " || line.first == "\t" {
                if let current { fields[current, default: ""] += "\n" + line.dropFirst() }
                continue
            }
            guard let colon = line.firstIndex(of: ":") else { continue }
            let key = line[..<colon].lowercased()
            fields[key] = line[line.index(after: colon)...].trimmingCharacters(in: " \t\r")
            current = key
        }
        return fields
    }
}

private extension StringProtocol {
    func trimmingCharacters(in set: String) -> String {
        let characters = Set(set)
        return String(drop { characters.contains($0) }.reversed().drop { characters.contains($0) }.reversed())
    }
}
