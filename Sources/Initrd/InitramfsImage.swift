import Compression
import ImageCore

/// One member of an initramfs image: an uncompressed cpio run, or one compressed stream whose
/// content is a sequence of cpio archives.
public struct InitramfsMember: Sendable {
    public var offset: Int
    /// Bytes of the image this member occupies (zeros between members belong to none).
    public var length: Int
    /// nil: uncompressed cpio.
    public var compression: StreamCompression?
    /// Every entry of every archive in the member, in order; trailers are not entries.
    public var entries: [CpioEntry]
    /// Index ranges into `entries`, one per archive (each closed by a TRAILER!!! or by the end of
    /// the member); the kernel forgets hard links at each trailer.
    public var archives: [Range<Int>]

    public init(offset: Int, length: Int, compression: StreamCompression?, entries: [CpioEntry],
                archives: [Range<Int>]? = nil) {
        self.offset = offset
        self.length = length
        self.compression = compression
        self.entries = entries
        self.archives = archives ?? [0..<entries.count]
    }
}

/// An initramfs image as the kernel reads it (init/initramfs.c, `unpack_to_rootfs`):
/// ```
/// image   := ( zeros | newc-run | compressed-member )*
/// newc-run           starts with '0' at a 4-aligned offset of the image; entries follow one
///                    another until a byte other than '0' (or the end); after it, zeros, and the
///                    next member must start 4-aligned ("broken padding" otherwise)
/// compressed-member  starts with a known magic at any offset; its content is
///                    ( zeros | newc entries at 4-aligned content offsets )* and must end between
///                    entries ("junk at the end of compressed archive")
/// ```
/// The walk here checks what the kernel checks, so an image it accepts unpacks fully; tools that
/// stop at the first TRAILER!!! (cpio -t, lsinitramfs) miss appended members.
public struct InitramfsImage: Sendable {
    public var members: [InitramfsMember]
    public var size: Int

    /// Walks the image as the kernel does (see the type's comment). Anything else throws a typed
    /// error naming the offset. `limits` bound the total decompressed bytes, the entry count and
    /// the name length.
    public init(bytes: UnsafeRawBufferPointer, name: String, limits: InitramfsLimits = .default) throws(InitrdError) {
        var members: [InitramfsMember] = []
        var position = 0
        var decompressed = 0
        var entryCount = 0
        // After an uncompressed run, the kernel's reset state insists the next member be aligned.
        var afterUncompressed = false
        func cpioLimits() -> CpioLimits {
            CpioLimits(maxEntries: max(0, limits.maxEntries - entryCount), maxNameLength: limits.maxNameLength)
        }
        while position < bytes.count {
            let byte = bytes[position]
            if byte == 0 {
                position += 1
                continue
            }
            if afterUncompressed && position % 4 != 0 {
                throw .notInitramfs(name: name, offset: UInt64(position), detail:
                    "broken padding: after an uncompressed cpio archive the next member must start at a 4-aligned offset, found \(hexByte(byte))")
            }
            if byte == UInt8(ascii: "0") && position % 4 == 0 {
                let run: (entries: [CpioEntry], end: Int, trailer: Bool)
                do {
                    run = try CpioNewc.readEntries(bytes, from: position, name: name, baseOffset: 0, limits: cpioLimits(),
                                                   requireTrailer: false, stopAtOtherBytes: true)
                } catch {
                    throw Self.mapped(error, name: name, limits: limits)
                }
                entryCount += run.entries.count
                members.append(InitramfsMember(offset: position, length: run.end - position, compression: nil, entries: run.entries))
                position = run.end
                afterUncompressed = true
                continue
            }
            guard let format = StreamCompression.detect(UnsafeRawBufferPointer(rebasing: bytes[position...])) else {
                let why = byte == UInt8(ascii: "0")
                    ? "an uncompressed cpio archive at an offset that is not a multiple of 4"
                    : "invalid magic \(hexByte(byte)) (neither a newc archive nor a known compression)"
                throw .notInitramfs(name: name, offset: UInt64(position), detail: why)
            }
            let member: (output: [UInt8], consumed: Int)
            do {
                member = try format.decompressMember(UnsafeRawBufferPointer(rebasing: bytes[position...]), name: name,
                                                     baseOffset: UInt64(position),
                                                     limit: max(0, limits.maxDecompressedBytes - decompressed))
            } catch {
                throw .compression(error)
            }
            decompressed += member.output.count
            let contentName = "\(name) (\(format.rawValue) member at byte \(position), decompressed)"
            let runLimits = cpioLimits()
            let content = try member.output.withUnsafeBytes { content in
                Result { () throws(InitrdError) in
                    try Self.archives(in: content, name: contentName, memberOffset: position, format: format,
                                      limits: runLimits, imageName: name, imageLimits: limits)
                }
            }.get()
            entryCount += content.entries.count
            members.append(InitramfsMember(offset: position, length: member.consumed, compression: format,
                                           entries: content.entries, archives: content.archives))
            position += member.consumed
            afterUncompressed = false
        }
        self.members = members
        self.size = bytes.count
    }

    /// The archives inside a compressed member's content, as the kernel's `flush_buffer` takes
    /// them: zeros may sit between entries, '0' starts the next entry (4-aligned), anything else
    /// is junk, and the content must end between entries.
    private static func archives(in content: UnsafeRawBufferPointer, name: String, memberOffset: Int,
                                 format: StreamCompression, limits: CpioLimits, imageName: String,
                                 imageLimits: InitramfsLimits) throws(InitrdError) -> (entries: [CpioEntry], archives: [Range<Int>]) {
        var entries: [CpioEntry] = []
        var archives: [Range<Int>] = []
        var archiveStart = 0
        var position = 0
        while position < content.count {
            let byte = content[position]
            if byte == 0 {
                position += 1
                continue
            }
            guard byte == UInt8(ascii: "0") else {
                throw .junkInCompressedMember(name: imageName, memberOffset: UInt64(memberOffset), format: format,
                                              detail: "junk byte \(hexByte(byte)) at decompressed byte \(position), between cpio entries")
            }
            guard position % 4 == 0 else {
                throw .junkInCompressedMember(name: imageName, memberOffset: UInt64(memberOffset), format: format,
                                              detail: "broken padding: a cpio header at decompressed byte \(position) is not 4-aligned")
            }
            var runLimits = limits
            runLimits.maxEntries = max(0, limits.maxEntries - entries.count)
            let run: (entries: [CpioEntry], end: Int, trailer: Bool)
            do {
                run = try CpioNewc.readEntries(content, from: position, name: name, baseOffset: 0, limits: runLimits,
                                               requireTrailer: false, stopAtOtherBytes: true)
            } catch {
                if case .truncated = error {
                    throw .junkInCompressedMember(name: imageName, memberOffset: UInt64(memberOffset), format: format,
                                                  detail: "the content ends inside a cpio entry (\(error.description))")
                }
                throw mapped(error, name: imageName, limits: imageLimits)
            }
            entries += run.entries
            if run.trailer {
                archives.append(archiveStart..<entries.count)
                archiveStart = entries.count
            }
            position = run.end
        }
        if archiveStart < entries.count { archives.append(archiveStart..<entries.count) }
        return (entries, archives)
    }

    private static func mapped(_ error: CpioError, name: String, limits: InitramfsLimits) -> InitrdError {
        if case .tooManyEntries = error { return .tooManyEntries(name: name, limit: limits.maxEntries) }
        return .cpio(error)
    }

    /// The bytes to put between `image` (the original initrd) and a new member so the kernel
    /// unpacks it: zeros up to 4-byte alignment (an uncompressed archive must start aligned, and
    /// one after an uncompressed run too), and at least 4 zero bytes after an lz4 member, whose
    /// stream has no end marker: the kernel's unlz4 reads block sizes until it meets a zero.
    public static func paddingBeforeAppending(to image: InitramfsImage) -> Int {
        var padding = (4 - image.size % 4) % 4
        if let last = image.members.last, last.compression == .lz4 {
            let zerosAlready = image.size - (last.offset + last.length)
            while zerosAlready + padding < 4 { padding += 4 }
        }
        return padding
    }
}
