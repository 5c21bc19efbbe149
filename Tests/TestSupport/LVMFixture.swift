import Foundation
import Synchronization

extension Fixture {
    public static var lvmGuestDirectory: String { "/tmp/rehost-lvm-fixture-\(getuid())" }
    private static let lvmCache = Mutex<[Bool: Result<FixtureImage, TestSupportError>]>([:])

    /// The Xen fixture guest on LVM2 (Fixtures/make-lvm-guest.sh): `/boot` on partition 1, `/` and
    /// swap in VolGroup00 on partition 2; with `separateVar`, `/var` on partition 3. Built once
    /// per test process from the shared Xen instance.
    public static func lvmGuest(separateVar: Bool) throws -> FixtureImage {
        let result = lvmCache.withLock { results in
            if let known = results[separateVar] { return known }
            let made = Result { () throws(TestSupportError) -> FixtureImage in try buildLVMGuest(separateVar: separateVar) }
            results[separateVar] = made
            return made
        }
        return try result.get()
    }

    private static func buildLVMGuest(separateVar: Bool) throws(TestSupportError) -> FixtureImage {
        let script = "\(repositoryRoot)/Fixtures/make-lvm-guest.sh"
        let name = separateVar ? "lvm-var-guest" : "lvm-guest"
        do {
            let xen = try xenInstance()
            try FileManager.default.createDirectory(atPath: lvmGuestDirectory, withIntermediateDirectories: true)
            let result = try Command.run("/bin/bash", [script, lvmGuestDirectory] + (separateVar ? ["--separate-var"] : []),
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
