import Foundation
import Synchronization

/// Debian's current kernel package (`linux-image-amd64`'s versioned dependency), fetched once with
/// `apt-get download` and unpacked with `dpkg-deb -x` into a cache outside the repository:
/// `$REHOST_TEST_CACHE/kernel/<version>/` (default /var/cache/rehost-test), holding `boot/` and
/// `lib/modules/<version>/`. A `.complete` file marks a finished unpack, so an interrupted run
/// is redone rather than trusted. Without network, a complete unpack already in the cache is used.
public struct DebianKernel: Sendable, Equatable {
    /// "6.1.0-57-amd64".
    public let version: String
    /// The unpacked package.
    public let root: String

    /// `lib/modules/<version>` inside `root`.
    public var modulesDirectory: String { "\(root)/lib/modules/\(version)" }
    public var vmlinuz: String { "\(root)/boot/vmlinuz-\(version)" }
    public var config: String { "\(root)/boot/config-\(version)" }

    public static var cacheRoot: String {
        ProcessInfo.processInfo.environment["REHOST_TEST_CACHE"] ?? "/var/cache/rehost-test"
    }

    private static let cached = Mutex<Result<DebianKernel, TestSupportError>?>(nil)

    /// The kernel, downloading and unpacking it on first use (the lock makes parallel tests wait
    /// for one download).
    public static func current() throws -> DebianKernel {
        try cached.withLock { slot in
            if let slot { return slot }
            let made = Result { () throws(TestSupportError) -> DebianKernel in try prepare() }
            slot = made
            return made
        }.get()
    }

    private static func prepare() throws(TestSupportError) -> DebianKernel {
        let kernels = "\(cacheRoot)/kernel"
        let fail = { (reason: String) in TestSupportError.fixtureFailed(script: "DebianKernel", reason: reason) }
        do {
            try FileManager.default.createDirectory(atPath: kernels, withIntermediateDirectories: true)
        } catch {
            throw fail("cannot create \(kernels): \(error)")
        }
        let package: String
        do {
            let result = try Command.run("apt-cache", ["depends", "linux-image-amd64"], timeout: .seconds(120))
            guard result.succeeded, let line = result.stdout.split(separator: "\n").first(where: {
                $0.contains("Depends: linux-image-") && $0.split(separator: " ").last.map { $0.dropFirst("linux-image-".count).first?.isNumber == true } == true
            }), let name = line.split(separator: " ").last else {
                return try cachedFallback(kernels, reason: "apt-cache depends linux-image-amd64 names no versioned kernel")
            }
            package = String(name)
        } catch let error as TestSupportError {
            return try cachedFallback(kernels, reason: error.description)
        } catch {
            return try cachedFallback(kernels, reason: "\(error)")
        }
        let version = String(package.dropFirst("linux-image-".count))
        let target = "\(kernels)/\(version)"
        if FileManager.default.fileExists(atPath: "\(target)/.complete") {
            return DebianKernel(version: version, root: target)
        }

        // Download and unpack beside the target, then rename, so a half-done unpack is never used.
        let work = "\(kernels)/.work-\(version)-\(getpid())"
        try? FileManager.default.removeItem(atPath: work)
        defer { try? FileManager.default.removeItem(atPath: work) }
        do {
            try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
            try Command.run("apt-get", ["download", package], timeout: .seconds(900), currentDirectory: work).requireSuccess()
            guard let deb = try FileManager.default.contentsOfDirectory(atPath: work).first(where: { $0.hasSuffix(".deb") }) else {
                throw fail("apt-get download \(package) left no .deb in \(work)")
            }
            try Command.run("dpkg-deb", ["-x", "\(work)/\(deb)", "\(work)/tree"], timeout: .seconds(900)).requireSuccess()
            _ = FileManager.default.createFile(atPath: "\(work)/tree/.complete", contents: Data())
            try? FileManager.default.removeItem(atPath: target)
            try FileManager.default.moveItem(atPath: "\(work)/tree", toPath: target)
        } catch let error as TestSupportError {
            throw error
        } catch {
            throw fail("\(error)")
        }
        return DebianKernel(version: version, root: target)
    }

    /// The newest complete unpack in the cache, when apt cannot say which kernel is current.
    private static func cachedFallback(_ kernels: String, reason: String) throws(TestSupportError) -> DebianKernel {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: kernels)) ?? [])
            .filter { FileManager.default.fileExists(atPath: "\(kernels)/\($0)/.complete") }
            .sorted { $0.compare($1, options: .numeric) == .orderedAscending }
        guard let newest = names.last else {
            throw .fixtureFailed(script: "DebianKernel", reason: "\(reason), and \(kernels) holds no unpacked kernel")
        }
        return DebianKernel(version: newest, root: "\(kernels)/\(newest)")
    }
}
