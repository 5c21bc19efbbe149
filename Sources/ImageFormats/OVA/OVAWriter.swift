import Digests
import ImageCore
#if canImport(Glibc)
import Glibc
#endif

/// An OVA: a tar archive of an OVF 1.0 descriptor, its manifest and a streamOptimized VMDK,
/// written in one pass over the disk without ever copying the VMDK.
///
/// ```
/// byte 0          ustar header  NAME.ovf   (size R)
///      512        descriptor, R bytes: the XML padded with trailing spaces + "\n"
///                 zero padding to a 512 boundary
///      M          ustar header  NAME.mf    (size L)
///      M+512      manifest, L bytes:  "SHA256(NAME.ovf)= <hex>\n" "SHA256(NAME-disk1.vmdk)= <hex>\n"
///                 zero padding to a 512 boundary
///      D-512      ustar header  NAME-disk1.vmdk (size S; GNU base-256 size if S >= 8 GiB)
///      D          the VMDK, S bytes, streamed by VMDKWriter as the disk is read
///                 zero padding to a 512 boundary
///      D+S'       two zero blocks (end of archive)
/// ```
/// The .ovf must be the first member (importers read it before anything else), so the start of
/// the archive is reserved before the disk is read: every field of the descriptor except the
/// VMDK's size is known up front, so R is the descriptor's length with the widest size there
/// can be (20 digits), and the final descriptor is padded with spaces to exactly R. The manifest's
/// lines have a fixed length once the names and the digest are chosen, so L is known too. Hence
/// D is fixed at the start; the VMDK writer writes at `D` through its own `OutputSink`, which
/// hashes its bytes as they go out (streamOptimized output is strictly sequential). `finish`
/// then fills in what only the end knows: the VMDK's tar header (its size), the descriptor (the
/// VMDK's `ovf:size`), the manifest (both digests; the descriptor's digest is taken of its final
/// padded bytes) and the end-of-archive blocks. Nothing is read back.
public final class OVAWriter: DiskImageWriter {
    public let format = ImageFormat.ova
    public var virtualSize: UInt64 { disk.virtualSize }

    /// The archive's member names: NAME.ovf, NAME.mf, NAME-disk1.vmdk.
    public let descriptorName: String
    public let manifestName: String
    public let diskName: String

    private let sink: OutputSink
    private let diskSink: OutputSink
    private let disk: any DiskImageWriter
    private let descriptor: OVFDescriptor
    private let algorithm: Digest.Algorithm
    private let options: WriterOptions
    private let modificationTime: UInt64
    private let descriptorLength: Int
    private let manifestLength: Int
    /// Where the disk member's data starts (D above), relative to the sink's base.
    public let diskDataOffset: UInt64

    /// An OVA whose disk is a streamOptimized VMDK, whatever `options.vmdkSubformat` says.
    public convenience init(sink: OutputSink, virtualSize: UInt64, options: WriterOptions) throws {
        try self.init(sink: sink, virtualSize: virtualSize, options: options) { diskSink, size, diskOptions, name in
            try VMDKWriter(sink: diskSink, virtualSize: size, options: diskOptions, extentFileName: name)
        }
    }

    /// An OVA whose disk member is written by `makeDiskWriter(sink, virtualSize, options,
    /// memberName)`, which must write its sink sequentially (streamOptimized VMDK does).
    init(sink: OutputSink, virtualSize: UInt64, options: WriterOptions,
         makeDiskWriter: (OutputSink, UInt64, WriterOptions, String) throws -> any DiskImageWriter) throws {
        self.sink = sink
        self.options = options
        let base = Self.memberBaseName(options.vmName)
        descriptorName = base + ".ovf"
        manifestName = base + ".mf"
        diskName = base + "-disk1.vmdk"
        algorithm = options.ovaManifest == .sha1 ? .sha1 : .sha256
        descriptor = OVFDescriptor(diskFileName: diskName, virtualSize: virtualSize, options: options)
        descriptorLength = descriptor.reservedLength
        manifestLength = Self.manifestLine(algorithm, descriptorName, digestHexLength: algorithm.hexLength).utf8.count
            + Self.manifestLine(algorithm, diskName, digestHexLength: algorithm.hexLength).utf8.count
        modificationTime = UInt64(max(0, Reproducibility.now()))
        let block = UInt64(TarHeader.blockSize)
        diskDataOffset = block + TarHeader.blocks(for: UInt64(descriptorLength))
            + block + TarHeader.blocks(for: UInt64(manifestLength)) + block
        guard let file = sink.file else { throw WriterError.unsupported(format: .ova, what: "an OVA is written to a file, not streamed") }
        diskSink = OutputSink(file: file, base: sink.base + diskDataOffset)
        diskSink.startDigest(algorithm)
        var diskOptions = options
        diskOptions.vmdkSubformat = .streamOptimized
        disk = try makeDiskWriter(diskSink, virtualSize, diskOptions, diskName)
    }

    public func write(_ data: UnsafeRawBufferPointer, at offset: UInt64) throws {
        try disk.write(data, at: offset)
    }

    public func finish() throws -> WriterSummary {
        let diskSummary = try disk.finish()
        let diskSize = diskSink.length
        guard let diskDigest = diskSink.finishDigest() else {
            throw OVAError.diskDigestMissing(path: sink.path, offset: diskDataOffset)
        }

        // Descriptor and manifest, with their headers, in one write from byte 0 up to D.
        let descriptorBytes = descriptor.bytes(diskFileSize: diskSize)
        guard descriptorBytes.count == descriptorLength else {
            throw OVAError.descriptorOverflow(path: sink.path, reserved: descriptorLength, needed: descriptorBytes.count)
        }
        let descriptorDigest = Digest(algorithm)
        descriptorDigest.update(descriptorBytes)
        let manifest = Array((Self.manifestLine(algorithm, descriptorName, digest: descriptorDigest.finish())
            + Self.manifestLine(algorithm, diskName, digest: diskDigest)).utf8)
        precondition(manifest.count == manifestLength, "manifest lines have a fixed length")

        var head: [UInt8] = []
        head.reserveCapacity(Int(diskDataOffset))
        try appendMember(descriptorName, descriptorBytes, to: &head)
        try appendMember(manifestName, manifest, to: &head)
        head += try TarHeader(name: diskName, size: diskSize, modificationTime: modificationTime).encoded()
        precondition(UInt64(head.count) == diskDataOffset, "the reserved head matches what was laid out")
        try sink.write(head, at: 0)

        // The disk member's padding and the two end-of-archive blocks.
        let tail = [UInt8](repeating: 0, count: TarHeader.padding(after: diskSize) + 2 * TarHeader.blockSize)
        let tailOffset = diskDataOffset + diskSize
        try sink.write(tail, at: tailOffset)
        let archiveSize = tailOffset + UInt64(tail.count)

        let profile = options.ovaProfile == .vmware ? descriptor.systemType : "virtualbox"
        return WriterSummary(format: format,
                             variant: "OVA (OVF 1.0, \(profile), \(algorithm.rawValue) manifest) with \(diskSummary.variant)",
                             virtualSize: virtualSize, fileSize: archiveSize,
                             allocatedUnits: diskSummary.allocatedUnits, unitSize: diskSummary.unitSize)
    }

    private func appendMember(_ name: String, _ content: [UInt8], to head: inout [UInt8]) throws {
        head += try TarHeader(name: name, size: UInt64(content.count), modificationTime: modificationTime).encoded()
        head += content
        head += [UInt8](repeating: 0, count: TarHeader.padding(after: UInt64(content.count)))
    }

    /// `SHA256(name)= hex` and a newline, the form VMware's ovftool and VirtualBox check.
    static func manifestLine(_ algorithm: Digest.Algorithm, _ name: String, digest: String) -> String {
        "\(algorithm.rawValue)(\(name))= \(digest)\n"
    }

    private static func manifestLine(_ algorithm: Digest.Algorithm, _ name: String, digestHexLength: Int) -> String {
        manifestLine(algorithm, name, digest: String(repeating: "0", count: digestHexLength))
    }

    /// A file-name-safe form of the VM name: letters, digits, '.', '_' and '-' kept, anything
    /// else made '_', no leading dot or dash, at most 64 bytes (so "-disk1.vmdk" still fits the
    /// 100-byte ustar name field with room to spare).
    static func memberBaseName(_ vmName: String) -> String {
        var scalars = vmName.unicodeScalars.map { scalar -> Character in
            let allowed = scalar.isASCII && (scalar.properties.isAlphabetic || ("0"..."9").contains(scalar)
                || scalar == "." || scalar == "_" || scalar == "-")
            return allowed ? Character(scalar) : "_"
        }
        while let first = scalars.first, first == "." || first == "-" { scalars.removeFirst() }
        let name = String(scalars.prefix(64))
        return name.isEmpty ? "vm" : name
    }
}

extension Digest.Algorithm {
    /// Hex digits in a digest: 64 for SHA-256, 40 for SHA-1 (the two an OVA manifest uses).
    var hexLength: Int {
        switch self {
        case .sha256: 64
        case .sha1: 40
        case .sha512: 128
        case .md5: 32
        }
    }
}
