import ImageCore

/// Image and compression formats recognised by their magic: disk images go to their readers;
/// gzip, xz and zstd files are expanded (`GzipExpansion`), bzip2 refused with advice rather than
/// misread as a raw disk.
public enum ForeignFormat: String, Sendable, Equatable {
    case qcow2, vmdk, vdi, vhd, vhdx, ova, xz, bzip2, zstd

    /// One clause for the formats Rehost cannot read: what to run to get something it can.
    /// Disk image formats have readers and need none.
    public var advice: String? {
        switch self {
        case .qcow2, .vmdk, .vdi, .vhd, .vhdx, .ova: return nil
        case .xz: return "xz-compressed data where a disk image was expected (a compressed disk is read only as a whole file); decompress it first with `xz -dk`"
        case .bzip2: return "bzip2-compressed input is not readable yet; decompress it first with `bzip2 -dk`"
        case .zstd: return "zstd-compressed data where a disk image was expected (a compressed disk is read only as a whole file); decompress it first with `zstd -d`"
        }
    }

    /// `head` is the first bytes of the file (up to 4 KiB), `tail` its last 512 bytes (empty if
    /// the file is shorter).
    static func detect(head: [UInt8], tail: [UInt8]) -> ForeignFormat? {
        func starts(with magic: [UInt8], in bytes: [UInt8], at offset: Int = 0) -> Bool {
            bytes.count >= offset + magic.count && Array(bytes[offset..<offset + magic.count]) == magic
        }
        if starts(with: [0x51, 0x46, 0x49, 0xfb], in: head) { return .qcow2 }                 // "QFI\xfb"
        if starts(with: Array("KDMV".utf8), in: head) { return .vmdk }                          // sparse extent
        if starts(with: Array("# Disk DescriptorFile".utf8), in: head) { return .vmdk }         // text descriptor
        if starts(with: Array("<<< ".utf8), in: head), head.count >= 0x44,
           head.loadLE(UInt32.self, at: 0x40) == 0xbeda_107f { return .vdi }
        if starts(with: VHDX.signature, in: head) { return .vhdx }
        let conectix = Array("conectix".utf8)
        // Dynamic VHDs start with a footer copy; fixed ones only end with it.
        if starts(with: conectix, in: head) || starts(with: conectix, in: tail) { return .vhd }
        if isOVA(head) { return .ova }
        if starts(with: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], in: head) { return .xz }
        if starts(with: Array("BZh".utf8), in: head), head.count > 3, (0x31...0x39).contains(head[3]) { return .bzip2 }
        if starts(with: [0x28, 0xb5, 0x2f, 0xfd], in: head) { return .zstd }
        return nil
    }

    /// A ustar (or GNU) tar whose first member is an OVF descriptor, as every OVA starts. Any
    /// other tar is left undetected (and read as raw data if it is whole sectors).
    static func isOVA(_ head: [UInt8]) -> Bool {
        guard head.count >= TarHeader.blockSize,
              head[TarHeader.Field.magic].starts(with: Array("ustar".utf8)),
              let block = try? TarHeader.decodeBlock(Array(head[0..<TarHeader.blockSize])) else { return false }
        var name = block.name
        // A GNU long name header holds the descriptor's name as its data, in the next block.
        if block.typeflag == UInt8(ascii: "L"), head.count >= 2 * TarHeader.blockSize {
            name = String(decoding: head[TarHeader.blockSize..<(2 * TarHeader.blockSize)].prefix { $0 != 0 }, as: UTF8.self)
        }
        return name.lowercased().hasSuffix(".ovf")
    }

    static func isGzip(_ head: [UInt8]) -> Bool {
        head.count >= 3 && head[0] == 0x1f && head[1] == 0x8b && head[2] == 0x08
    }
}
