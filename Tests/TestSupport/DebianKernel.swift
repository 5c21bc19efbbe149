import Foundation
import Synchronization

/// Debian's current kernel package (`linux-image-amd64`'s versioned dependency), fetched once with
/// `apt-get download` and unpacked with `dpkg-deb -x` into a cache outside the repository:
/// `$REHOST_TEST_CACHE/kernel/<version>/` (default /var/cache/rehost-test), holding `boot/` and
/// `lib/modules/<version>/`. A `.complete` file marks a finished unpack, so an interrupted run
/// is redone rather than trusted. Without network, a complete unpack already in the cache is used.
/// The `.deb` itself is kept in `$REHOST_TEST_CACHE/kernel/packages/` for tests that read packages
/// (`package()`, fetched again on first use when an older cache holds only the unpack).
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
            // .complete names the .deb the tree came from (`unpackedPackageName`).
            _ = FileManager.default.createFile(atPath: "\(work)/tree/.complete", contents: Data(deb.utf8))
            try? FileManager.default.removeItem(atPath: target)
            try FileManager.default.moveItem(atPath: "\(work)/tree", toPath: target)
            try keep(deb: "\(work)/\(deb)", name: deb)
        } catch let error as TestSupportError {
            throw error
        } catch {
            throw fail("\(error)")
        }
        return DebianKernel(version: version, root: target)
    }

    /// Where the .deb files are kept.
    public static var packagesDirectory: String { "\(cacheRoot)/kernel/packages" }

    private static let packageLock = Mutex<Void>(())

    /// The path of `linux-image-<version>_*.deb` in the cache, downloading it (once, under a lock)
    /// when the cache holds only the unpacked tree.
    public func package() throws -> String {
        try Self.packageLock.withLock { _ in
            if let found = Self.keptPackage(version: version) { return found }
            let work = "\(Self.cacheRoot)/kernel/.work-deb-\(version)-\(getpid())"
            try? FileManager.default.removeItem(atPath: work)
            defer { try? FileManager.default.removeItem(atPath: work) }
            try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
            try Command.run("apt-get", ["download", "linux-image-\(version)"], timeout: .seconds(900), currentDirectory: work).requireSuccess()
            guard let deb = try FileManager.default.contentsOfDirectory(atPath: work).first(where: { $0.hasSuffix(".deb") }) else {
                throw TestSupportError.fixtureFailed(script: "DebianKernel", reason: "apt-get download linux-image-\(version) left no .deb in \(work)")
            }
            try Self.keep(deb: "\(work)/\(deb)", name: deb)
            guard let found = Self.keptPackage(version: version) else {
                throw TestSupportError.fixtureFailed(script: "DebianKernel", reason: "\(deb) is not in \(Self.packagesDirectory) after download")
            }
            return found
        }
    }

    /// The file name of the .deb `root` was unpacked from, when the cache recorded it (caches made
    /// before the .deb was kept did not): a test comparing `package()` with `root` checks this first.
    public var unpackedPackageName: String? {
        guard let data = FileManager.default.contents(atPath: "\(root)/.complete"), !data.isEmpty else { return nil }
        return String(decoding: data, as: UTF8.self)
    }

    private static func keptPackage(version: String) -> String? {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: packagesDirectory)) ?? []
        return names.filter { $0.hasPrefix("linux-image-\(version)_") && $0.hasSuffix(".deb") }.sorted().last
            .map { "\(packagesDirectory)/\($0)" }
    }

    /// Moves a downloaded .deb into `packagesDirectory` (by a rename inside the cache, so a reader
    /// never sees half a file).
    private static func keep(deb: String, name: String) throws {
        try FileManager.default.createDirectory(atPath: packagesDirectory, withIntermediateDirectories: true)
        try? FileManager.default.removeItem(atPath: "\(packagesDirectory)/\(name)")
        try FileManager.default.moveItem(atPath: deb, toPath: "\(packagesDirectory)/\(name)")
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
