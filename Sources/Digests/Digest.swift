import CCrypto
import ImageCore

/// Streaming digests over OpenSSL's libcrypto: SHA-256 and SHA-1 for OVA manifests and output
/// reports; MD5 and SHA-512 for what clouds report back (Glance's `checksum` and `os_hash_value`,
/// S3's ETags).
public final class Digest {
    public enum Algorithm: String, Sendable, CaseIterable {
        case sha256 = "SHA256"
        case sha1 = "SHA1"
        case sha512 = "SHA512"
        case md5 = "MD5"
    }

    public let algorithm: Algorithm
    private let context: OpaquePointer

    public init(_ algorithm: Algorithm) {
        self.algorithm = algorithm
        guard let context = EVP_MD_CTX_new() else { fatalError("EVP_MD_CTX_new: out of memory") }
        self.context = context
        let type: OpaquePointer? = switch algorithm {
        case .sha256: EVP_sha256()
        case .sha1: EVP_sha1()
        case .sha512: EVP_sha512()
        case .md5: EVP_md5()
        }
        guard EVP_DigestInit_ex(context, type, nil) == 1 else { fatalError("EVP_DigestInit_ex failed for \(algorithm)") }
    }

    deinit { EVP_MD_CTX_free(context) }

    public func update(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        _ = EVP_DigestUpdate(context, bytes.baseAddress, bytes.count)
    }

    public func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    /// The digest as lowercase hex; the object cannot be updated afterwards.
    public func finish() -> String {
        Digest.hex(finishBytes())
    }

    /// The digest's bytes; the object cannot be updated afterwards.
    public func finishBytes() -> [UInt8] {
        var output = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        _ = EVP_DigestFinal_ex(context, &output, &length)
        return Array(output.prefix(Int(length)))
    }

    /// The digest of `bytes` in one call.
    public static func bytes(_ algorithm: Algorithm, of bytes: UnsafeRawBufferPointer) -> [UInt8] {
        let digest = Digest(algorithm)
        digest.update(bytes)
        return digest.finishBytes()
    }

    public static func bytes(_ algorithm: Algorithm, of bytes: [UInt8]) -> [UInt8] {
        bytes.withUnsafeBytes { Digest.bytes(algorithm, of: $0) }
    }

    /// Lowercase hex of `bytes`.
    public static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var text = [UInt8]()
        text.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 15)])
        }
        return String(decoding: text, as: UTF8.self)
    }

    /// `count` zero bytes, hashed from one shared buffer of zeros: a hole costs neither a read nor
    /// an allocation. SHA-256 and SHA-1 have no shortcut for zeros (each block's work depends on
    /// the state before it), so this is as fast as the hash itself, about 1.8 GB/s with SHA-NI.
    public func updateZeros(_ count: UInt64) {
        Self.zeros.withUnsafeBytes { zeros in
            var left = count
            while left > 0 {
                let n = Int(min(UInt64(zeros.count), left))
                update(UnsafeRawBufferPointer(rebasing: zeros[0..<n]))
                left -= UInt64(n)
            }
        }
    }

    private static let zeros = [UInt8](repeating: 0, count: 1 << 20)

    /// The digest of a whole file, read in large pieces.
    public static func ofFile(_ path: String, _ algorithm: Algorithm = .sha256) throws -> String {
        try of(RawFile(path: path, mode: .readOnly), algorithm)
    }

    /// The digest of an open file: its data ranges (SEEK_DATA/SEEK_HOLE) are read, its holes are
    /// hashed as zeros without being read.
    public static func of(_ file: RawFile, _ algorithm: Algorithm = .sha256) throws -> String {
        let digest = Digest(algorithm)
        let size = try file.size
        var buffer = [UInt8](repeating: 0, count: 4 << 20)
        var position: UInt64 = 0
        for range in try file.dataRanges() {
            let start = max(range.lowerBound, position), end = min(range.upperBound, size)
            guard start < end else { continue }
            digest.updateZeros(start - position)
            var offset = start
            while offset < end {
                let count = Int(min(UInt64(buffer.count), end - offset))
                let got = try buffer.withUnsafeMutableBytes { try file.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<count]), at: offset) }
                guard got == count else { throw FileError.shortRead(path: file.path, offset: offset, wanted: count, got: got) }
                buffer.withUnsafeBytes { digest.update(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
                offset += UInt64(count)
            }
            position = end
        }
        digest.updateZeros(size - position)
        return digest.finish()
    }
}

/// The digest of a finished file computed on another thread, so it overlaps what follows (the
/// fsync of the outputs, the streaming of the other outputs, the other digests). The file is
/// opened at once, so it can be renamed into place while the digest runs.
public final class BackgroundDigest: Sendable {
    private let work: BackgroundWork<String>

    public init(path: String, _ algorithm: Digest.Algorithm = .sha256) throws {
        // The file is read only by the digest thread from here on, and closed when it is done.
        nonisolated(unsafe) let file = try RawFile(path: path, mode: .readOnly)
        work = BackgroundWork { try Digest.of(file, algorithm) }
    }

    /// Waits for the digest; rethrows a read failure.
    public func wait() throws -> String { try work.wait() }
}

/// HMAC-SHA-256 (RFC 2104) over libcrypto: the key chain of AWS Signature Version 4.
public enum HMAC {
    public static func sha256(key: [UInt8], data: [UInt8]) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        key.withUnsafeBytes { key in
            data.withUnsafeBytes { data in
                _ = CCrypto.HMAC(EVP_sha256(), key.baseAddress, Int32(key.count), data.baseAddress?.assumingMemoryBound(to: UInt8.self),
                                 data.count, &output, &length)
            }
        }
        return Array(output.prefix(Int(length)))
    }
}
