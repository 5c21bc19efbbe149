import ImageCore

/// What `ls`, `cat`, `copy-out` and `copy-in` refuse, each with the image or host path, the
/// guest path, and what was expected. Every refusal comes before anything is written.
public enum FileAccessError: RehostError, Equatable {
    case notAbsolute(path: String)
    /// A guest path whose ".." components climb above the guest's root.
    case outsideGuest(path: String)
    case notFound(image: String, path: String)
    case notADirectory(image: String, path: String)
    case notARegularFile(image: String, path: String, found: String)
    case hostMissing(path: String)
    case hostNotADirectory(path: String)
    case hostExists(path: String)
    case hostUnsupported(path: String, found: String)
    case hostUnreadable(path: String, reason: String)
    case badName(path: String, reason: String)
    case guestExists(image: String, path: String)
    /// copy-in into an input Rehost reads but does not write in place.
    case readOnlyInput(path: String, format: String)
    /// copy-in into a gzip-compressed image, which `export` does not read either.
    case compressedInput(path: String, format: String = "gzip")
    case readOnlyVolume(image: String, path: String, volume: String)
    case noSpace(image: String, path: String, neededBlocks: UInt64, freeBlocks: UInt64, blockSize: Int)
    case noInodes(image: String, path: String, needed: UInt64, free: UInt64)
    case needsRecovery(image: String)
    case tooDeep(path: String, limit: Int)
    case symlinkTooLong(path: String, length: Int, limit: Int)
    /// More written than `copy-in` keeps in memory before it writes into a qcow2, VDI, VHD or VMDK image.
    case stagingLimit(image: String, limit: UInt64)

    public var description: String {
        switch self {
        case let .notAbsolute(path):
            return "\(path): guest paths are absolute (they start with /, the guest's root)"
        case let .outsideGuest(path):
            return "\(path): leads above the guest's root; guest paths stay inside the guest"
        case let .notFound(image, path): return "\(image): \(path): no such file or directory in the guest"
        case let .notADirectory(image, path): return "\(image): \(path): not a directory in the guest"
        case let .notARegularFile(image, path, found): return "\(image): \(path): \(found), not a regular file"
        case let .hostMissing(path): return "\(path): no such file or directory on the host"
        case let .hostNotADirectory(path): return "\(path): not a directory on the host"
        case let .hostExists(path): return "\(path): already exists on the host; nothing is overwritten"
        case let .hostUnsupported(path, found):
            return "\(path): \(found); only regular files, directories and symlinks are copied in"
        case let .hostUnreadable(path, reason): return "\(path): cannot be read: \(reason)"
        case let .badName(path, reason): return "\(path): \(reason)"
        case let .guestExists(image, path):
            return "\(image): \(path): already exists in the guest; nothing is overwritten (the image is unchanged)"
        case let .readOnlyInput(path, format):
            return "\(path): \(format) input is read-only for copy-in (the image is unchanged); "
                + "convert it to raw with `rehost export \(path) -o disk.raw`, copy in there, and export it back"
        case let .compressedInput(path, format):
            return "\(path): \(format)-compressed input is read-only for copy-in (the image is unchanged); "
                + "decompress it (`\(format) -dk \(path)`), copy into the raw image, and compress that again"
        case let .readOnlyVolume(image, path, volume):
            return "\(image): \(path) is on \(volume), which is not one run of the input file and cannot be written in place (the image is unchanged)"
        case let .noSpace(image, path, needed, free, blockSize):
            return "\(image): not enough space for \(path): about \(needed) blocks of \(blockSize) bytes needed, \(free) free (the image is unchanged)"
        case let .noInodes(image, path, needed, free):
            return "\(image): not enough inodes for \(path): \(needed) needed, \(free) free (the image is unchanged)"
        case let .needsRecovery(image):
            return "\(image): the journal holds transactions not yet replayed (not cleanly unmounted); run e2fsck on it first (the image is unchanged)"
        case let .tooDeep(path, limit): return "\(path): directories nested more than \(limit) deep"
        case let .stagingLimit(image, limit):
            return "\(image): a copy-in into a qcow2, VDI, VHD or VMDK image is held in memory until it is complete, at most \(ByteCount.format(limit)); "
                + "this one is larger (the image is unchanged): export to raw, copy in there, and export back"
        case let .symlinkTooLong(path, length, limit):
            return "\(path): a symlink target of \(length) bytes; at most \(limit) fit in one block"
        }
    }
}
