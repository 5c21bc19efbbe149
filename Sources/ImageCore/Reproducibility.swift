import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Byte-reproducible outputs (`--reproducible`, or SOURCE_DATE_EPOCH in the environment): every
/// value Rehost would otherwise draw at random (image and filesystem UUIDs, VMDK CIDs, the MBR
/// signature, directory hash seeds, password salts) is derived from a seed (the inputs' SHA-256)
/// and what it is for, and every timestamp Rehost writes itself is SOURCE_DATE_EPOCH. Set once,
/// by the command line, before any work; off, everything is random and "now" as before.
public enum Reproducibility {
    struct Settings {
        var seed: [UInt8]?
        var epoch: Int64?
    }

    private static let settings = Mutex(Settings())

    public static func configure(seed: [UInt8]?, epoch: Int64?) {
        settings.withLock { $0 = Settings(seed: seed, epoch: epoch) }
    }

    public static var isOn: Bool { settings.withLock { $0.seed != nil } }

    /// The time to write where Rehost stamps "now": SOURCE_DATE_EPOCH's when set, else now.
    public static func now() -> Int64 {
        settings.withLock { $0.epoch } ?? Int64(time(nil))
    }

    /// `count` random bytes, or, reproducibly, bytes derived from the seed and `purpose`: the same
    /// purpose gives the same bytes, so each value needs a purpose of its own ("vdi uuid out.vdi").
    public static func bytes(_ count: Int, for purpose: String) -> [UInt8] {
        guard let seed = settings.withLock({ $0.seed }) else {
            var generator = SystemRandomNumberGenerator()
            return (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
        }
        // FNV-1a over the seed and the purpose, then SplitMix64: uniqueness is all that is asked
        // of these values, not secrecy (a salt or a UUID is public).
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in seed + [0] + Array(purpose.utf8) {
            hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
        }
        var state = hash
        var out: [UInt8] = []
        while out.count < count {
            state &+= 0x9e37_79b9_7f4a_7c15
            var z = state
            z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
            z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
            z ^= z >> 31
            withUnsafeBytes(of: z.littleEndian) { out.append(contentsOf: $0) }
        }
        return Array(out.prefix(count))
    }

    public static func uint32(for purpose: String) -> UInt32 {
        bytes(4, for: purpose).withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }
    }
}
