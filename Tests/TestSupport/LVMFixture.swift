import Foundation
import Synchronization

/// The layouts Fixtures/make-lvm-guest.sh builds.
public enum LVMGuestLayout: String, Sendable, CaseIterable {
    /// `/boot` on partition 1, `/` and swap in VolGroup00 on partition 2.
    case bootPartition = "lvm-guest"
    /// The same and `/var` on partition 3.
    case separateVar = "lvm-var-guest"
    /// One partition, the PV: `/boot` inside the root LV.
    case allLVM = "lvm-only-guest"
    /// As `bootPartition`, with VolGroup00 spread over a second disk (`DISK2` in the environment)
    /// whose PV holds LogVol02, mounted on `/home`.
    case twoDisks = "lvm-two-guest"

    var option: [String] {
        switch self {
        case .bootPartition: return []
        case .separateVar: return ["--separate-var"]
        case .allLVM: return ["--all-lvm"]
        case .twoDisks: return ["--two-disks"]
        }
    }
}

extension Fixture {
    public static var lvmGuestDirectory: String { "/tmp/rehost-lvm-fixture-\(getuid())" }
    private static let lvmCache = Mutex<[LVMGuestLayout: Result<FixtureImage, TestSupportError>]>([:])

    /// The Xen fixture guest on LVM2 (Fixtures/make-lvm-guest.sh) in one of its layouts. Built
    /// once per test process from the shared Xen instance.
    public static func lvmGuest(_ layout: LVMGuestLayout) throws -> FixtureImage {
        let result = lvmCache.withLock { results in
            if let known = results[layout] { return known }
            let made = Result { () throws(TestSupportError) -> FixtureImage in try buildLVMGuest(layout) }
            results[layout] = made
            return made
        }
        return try result.get()
    }

    private static func buildLVMGuest(_ layout: LVMGuestLayout) throws(TestSupportError) -> FixtureImage {
        let script = "\(repositoryRoot)/Fixtures/make-lvm-guest.sh"
        let name = layout.rawValue
        do {
            let xen = try xenInstance()
            try FileManager.default.createDirectory(atPath: lvmGuestDirectory, withIntermediateDirectories: true)
            let result = try Command.run("/bin/bash", [script, lvmGuestDirectory] + layout.option,
                                         environment: ["REHOST_XEN_INSTANCE": xen.imagePath], timeout: .seconds(1800))
            guard result.succeeded else {
                throw TestSupportError.fixtureFailed(script: script, reason: "status \(result.status): \(TestSupportError.lastLine(of: result.stderr))")
            }
            guard let env = FileManager.default.contents(atPath: "\(lvmGuestDirectory)/\(name).env") else {
                throw TestSupportError.fixtureFailed(script: script, reason: "it exited 0 but wrote no \(name).env")
            }
            return FixtureImage(imagePath: "\(lvmGuestDirectory)/\(name).img", directory: lvmGuestDirectory,
                                environment: parseEnvironmentFile(String(decoding: env, as: UTF8.self)))
        } catch let error as TestSupportError {
            throw error
        } catch {
            throw .fixtureFailed(script: script, reason: "\(error)")
        }
    }
}
