import Digests
import Testing

/// MD5, SHA-512 and HMAC-SHA-256 against published test vectors (RFC 1321, FIPS 180-2 and
/// RFC 4231), so a wrong EVP choice or a truncated output fails here rather than at a cloud.
struct DigestAlgorithmsTests {
    @Test func md5AndSHA512MatchPublishedVectors() {
        #expect(Digest.hex(Digest.bytes(.md5, of: Array("abc".utf8))) == "900150983cd24fb0d6963f7d28e17f72")
        #expect(Digest.hex(Digest.bytes(.md5, of: [])) == "d41d8cd98f00b204e9800998ecf8427e")
        #expect(Digest.hex(Digest.bytes(.sha512, of: Array("abc".utf8))) ==
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f")
    }

    @Test func hmacSHA256MatchesRFC4231() {
        // Test case 1: a 20-byte key of 0x0b, "Hi There".
        let one = HMAC.sha256(key: [UInt8](repeating: 0x0b, count: 20), data: Array("Hi There".utf8))
        #expect(Digest.hex(one) == "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
        // Test case 6: a key longer than the block size is hashed first.
        let six = HMAC.sha256(key: [UInt8](repeating: 0xaa, count: 131),
                              data: Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8))
        #expect(Digest.hex(six) == "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")
    }
}
