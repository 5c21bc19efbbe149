import Digests
import Testing
import TestSupport

/// Rehost's SHA-512 and MD5 crypt against glibc's, through Python's crypt module (deprecated,
/// present in Debian 12's Python 3.11), with the same salts: short, long and empty passwords
/// (the 64-byte and 16-byte block boundaries of each digest), salts cut at their limits, and
/// an explicit rounds count.
struct PasswordCryptTests {
    static let passwords = ["", "a", "s3cret", "correct horse battery staple", "päss wörd ✓",
                            String(repeating: "x", count: 63), String(repeating: "y", count: 64), String(repeating: "z", count: 65),
                            String(repeating: "long-password-", count: 12)]

    func python(_ password: String, _ setting: String) throws -> String {
        let script = "import sys, warnings\nwarnings.simplefilter('ignore')\nimport crypt\nsys.stdout.write(crypt.crypt(sys.argv[1], sys.argv[2]))"
        return try Command.run("/usr/bin/python3", ["-c", script, password, setting]).requireSuccess().stdout
    }

    @Test func sha512MatchesGlibc() throws {
        for (index, password) in Self.passwords.enumerated() {
            let salt = ["saltstring", "abcdefghijklmnop", "./09AZaz", PasswordCrypt.randomSalt()][index % 4]
            let ours = PasswordCrypt.hash(password, salt: salt, method: .sha512)
            #expect(ours == (try python(password, "$6$\(salt)$")), "password \(password.count) chars, salt \(salt)")
        }
        // Drepper's own test vector, and a salt longer than 16 characters cut as glibc cuts it.
        #expect(PasswordCrypt.hash("Hello world!", salt: "saltstring", method: .sha512)
            == "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1")
        let long = PasswordCrypt.hash("Hello world!", salt: "toolongsaltstringforsha", method: .sha512)
        #expect(long == (try python("Hello world!", "$6$toolongsaltstringforsha$")))
        let rounds = PasswordCrypt.hash("Hello world!", salt: "saltstringsaltst", method: .sha512, rounds: 10000)
        #expect(rounds == (try python("Hello world!", "$6$rounds=10000$saltstringsaltst$")))
    }

    @Test func md5MatchesGlibc() throws {
        for (index, password) in Self.passwords.enumerated() {
            let salt = ["saltsalt", "ab", "./09AZaz", PasswordCrypt.randomSalt(count: 8)][index % 4]
            let ours = PasswordCrypt.hash(password, salt: salt, method: .md5)
            #expect(ours == (try python(password, "$1$\(salt)$")), "password \(password.count) chars, salt \(salt)")
        }
        #expect(PasswordCrypt.hash("x", salt: "longerthan8", method: .md5) == (try python("x", "$1$longerth$")))
    }

    @Test func randomSaltsUseCryptsAlphabet() {
        let salts = (0..<50).map { _ in PasswordCrypt.randomSalt() }
        #expect(Set(salts).count == 50)
        let alphabet = Set("./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
        #expect(salts.allSatisfy { $0.count == 16 && $0.allSatisfy(alphabet.contains) })
    }
}
