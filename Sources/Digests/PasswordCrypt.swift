import ImageCore
import CCrypto

/// Password hashes for `/etc/shadow`, made here rather than by the host's libc: SHA-512 crypt
/// (`$6$`, Ulrich Drepper's "Unix crypt using SHA-256 and SHA-512", glibc 2.7 and later) and MD5
/// crypt (`$1$`, Poul-Henning Kamp's, for guests whose glibc predates SHA-512 crypt), both over
/// libcrypto's digests. Checked against Python's `crypt.crypt` with the same salt.
public enum PasswordCrypt {
    public enum Method: String, Sendable {
        case sha512 = "6"
        case md5 = "1"
    }

    /// The alphabet of crypt's salts and of its base-64 encoding ("./0-9A-Za-z").
    static let alphabet = Array("./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".utf8)

    /// A fresh salt of `count` characters from the kernel's random source (derived from
    /// `purpose` when outputs are to be reproducible: a salt must be unique, not secret).
    public static func randomSalt(count: Int = 16, for purpose: String = "salt") -> String {
        String(decoding: Reproducibility.bytes(count, for: purpose).map { alphabet[Int($0) & 63] }, as: UTF8.self)
    }

    /// `count` bytes from the system's random source (getrandom(2), through the standard library).
    public static func randomBytes(_ count: Int) -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
    }

    /// The full crypt string, such as `$6$salt$...`; the salt is cut as crypt cuts it (16
    /// characters for SHA-512, 8 for MD5).
    public static func hash(_ password: String, salt: String, method: Method, rounds: Int? = nil) -> String {
        let key = Array(password.utf8)
        switch method {
        case .sha512: return sha512Crypt(key, salt: Array(salt.utf8.prefix(16)), rounds: rounds)
        case .md5: return md5Crypt(key, salt: Array(salt.utf8.prefix(8)))
        }
    }

    // MARK: SHA-512 crypt

    static func sha512Crypt(_ key: [UInt8], salt: [UInt8], rounds requested: Int?) -> String {
        let rounds = min(max(requested ?? 5000, 1000), 999_999_999)
        var b = EVPHash.sha512()
        b.update(key); b.update(salt); b.update(key)
        let digestB = b.finish()
        var a = EVPHash.sha512()
        a.update(key); a.update(salt)
        var remaining = key.count
        while remaining > 64 { a.update(digestB); remaining -= 64 }
        a.update(Array(digestB.prefix(remaining)))
        var bits = key.count
        while bits > 0 {
            a.update(bits & 1 != 0 ? digestB : key)
            bits >>= 1
        }
        let digestA = a.finish()
        var dp = EVPHash.sha512()
        for _ in 0..<key.count { dp.update(key) }
        let p = repeated(dp.finish(), to: key.count)
        var ds = EVPHash.sha512()
        for _ in 0..<(16 + Int(digestA[0])) { ds.update(salt) }
        let s = repeated(ds.finish(), to: salt.count)
        var c = digestA
        for i in 0..<rounds {
            var round = EVPHash.sha512()
            round.update(i & 1 != 0 ? p : c)
            if i % 3 != 0 { round.update(s) }
            if i % 7 != 0 { round.update(p) }
            round.update(i & 1 != 0 ? c : p)
            c = round.finish()
        }
        let order: [(Int, Int, Int)] = [
            (0, 21, 42), (22, 43, 1), (44, 2, 23), (3, 24, 45), (25, 46, 4), (47, 5, 26), (6, 27, 48),
            (28, 49, 7), (50, 8, 29), (9, 30, 51), (31, 52, 10), (53, 11, 32), (12, 33, 54), (34, 55, 13),
            (56, 14, 35), (15, 36, 57), (37, 58, 16), (59, 17, 38), (18, 39, 60), (40, 61, 19), (62, 20, 41),
        ]
        var encoded: [UInt8] = []
        for (x, y, z) in order { encode(c[x], c[y], c[z], 4, into: &encoded) }
        encode(0, 0, c[63], 2, into: &encoded)
        let roundsField = requested == nil ? "" : "rounds=\(rounds)$"
        return "$6$" + roundsField + String(decoding: salt, as: UTF8.self) + "$" + String(decoding: encoded, as: UTF8.self)
    }

    /// `digest` repeated and cut to `count` bytes.
    static func repeated(_ digest: [UInt8], to count: Int) -> [UInt8] {
        var result: [UInt8] = []
        result.reserveCapacity(count)
        while result.count < count { result += digest.prefix(count - result.count) }
        return result
    }

    /// crypt's base-64: three bytes as a 24-bit number, `count` characters from the low bits up.
    static func encode(_ b2: UInt8, _ b1: UInt8, _ b0: UInt8, _ count: Int, into output: inout [UInt8]) {
        var w = (UInt32(b2) << 16) | (UInt32(b1) << 8) | UInt32(b0)
        for _ in 0..<count {
            output.append(alphabet[Int(w & 0x3F)])
            w >>= 6
        }
    }

    // MARK: MD5 crypt

    static func md5Crypt(_ key: [UInt8], salt: [UInt8]) -> String {
        let magic = Array("$1$".utf8)
        var alternate = EVPHash.md5()
        alternate.update(key); alternate.update(salt); alternate.update(key)
        var final = alternate.finish()
        var context = EVPHash.md5()
        context.update(key); context.update(magic); context.update(salt)
        var remaining = key.count
        while remaining > 0 {
            context.update(Array(final.prefix(min(remaining, 16))))
            remaining -= 16
        }
        var bits = key.count
        while bits > 0 {
            context.update(bits & 1 != 0 ? [0] : [key.first ?? 0])
            bits >>= 1
        }
        final = context.finish()
        for i in 0..<1000 {
            var round = EVPHash.md5()
            round.update(i & 1 != 0 ? key : final)
            if i % 3 != 0 { round.update(salt) }
            if i % 7 != 0 { round.update(key) }
            round.update(i & 1 != 0 ? final : key)
            final = round.finish()
        }
        var encoded: [UInt8] = []
        for (x, y, z) in [(0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)] {
            encode(final[x], final[y], final[z], 4, into: &encoded)
        }
        encode(0, 0, final[11], 2, into: &encoded)
        return "$1$" + String(decoding: salt, as: UTF8.self) + "$" + String(decoding: encoded, as: UTF8.self)
    }
}

/// One libcrypto digest context (SHA-512 or MD5), used once.
struct EVPHash: ~Copyable {
    private let context: OpaquePointer

    private init(_ type: OpaquePointer?) {
        guard let context = EVP_MD_CTX_new() else { fatalError("EVP_MD_CTX_new: out of memory") }
        self.context = context
        guard EVP_DigestInit_ex(context, type, nil) == 1 else { fatalError("EVP_DigestInit_ex failed") }
    }

    static func sha512() -> EVPHash { EVPHash(EVP_sha512()) }
    static func md5() -> EVPHash { EVPHash(EVP_md5()) }

    mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { _ = EVP_DigestUpdate(context, $0.baseAddress, $0.count) }
    }

    consuming func finish() -> [UInt8] {
        var output = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        _ = EVP_DigestFinal_ex(context, &output, &length)
        return Array(output.prefix(Int(length)))
    }

    deinit { EVP_MD_CTX_free(context) }
}
