import CCrypto
import ImageCore

/// Streaming SHA-256 and SHA-1 over OpenSSL's libcrypto: for OVA manifests and output reports.
public final class Digest {
    public enum Algorithm: String, Sendable, CaseIterable {
        case sha256 = "SHA256"
        case sha1 = "SHA1"
    }

    public let algorithm: Algorithm
    private let context: OpaquePointer

    public init(_ algorithm: Algorithm) {
        self.algorithm = algorithm
        guard let context = EVP_MD_CTX_new() else { fatalError("EVP_MD_CTX_new: out of memory") }
        self.context = context
        let type = algorithm == .sha256 ? EVP_sha256() : EVP_sha1()
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
        var output = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        _ = EVP_DigestFinal_ex(context, &output, &length)
        return output.prefix(Int(length)).map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined()
    }

    /// The digest of a whole file, read in large pieces.
    public static func ofFile(_ path: String, _ algorithm: Algorithm = .sha256) throws -> String {
        let file = try RawFile(path: path, mode: .readOnly)
        let digest = Digest(algorithm)
        let size = try file.size
        var buffer = [UInt8](repeating: 0, count: 4 << 20)
        var offset: UInt64 = 0
        while offset < size {
            let count = Int(min(UInt64(buffer.count), size - offset))
            let got = try buffer.withUnsafeMutableBytes { try file.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<count]), at: offset) }
            guard got == count else { throw FileError.shortRead(path: path, offset: offset, wanted: count, got: got) }
            buffer.withUnsafeBytes { digest.update(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
            offset += UInt64(count)
        }
        return digest.finish()
    }
}
