import ImageCore

/// One entry a package installs.
public struct PackageFile: Sendable, Equatable {
    public enum Kind: String, Sendable, Codable {
        case regular, directory, symlink
        /// Another name for an earlier regular file of the package (`linkTarget`).
        case hardlink
    }

    /// Absolute and normalized: "/lib/modules/6.1.0-28-amd64/kernel/fs/ext4/ext4.ko"; no "." or
    /// ".." components, no doubled or trailing slashes.
    public var path: String
    public var kind: Kind
    /// The permission bits (0o7777: rwx for all three, setuid, setgid, sticky); the type is `kind`.
    public var mode: UInt16
    /// A regular file's contents; a hard link's too (the target's bytes, storage shared); empty
    /// for directories and symlinks.
    public var data: [UInt8]
    /// A symlink's target as stored (it may be relative or absolute, and is not resolved); for a
    /// hard link, the normalized absolute path of the file it names, which comes earlier in `files`.
    public var linkTarget: String?

    public init(path: String, kind: Kind, mode: UInt16, data: [UInt8] = [], linkTarget: String? = nil) {
        self.path = path
        self.kind = kind
        self.mode = mode
        self.data = data
        self.linkTarget = linkTarget
    }
}

/// A kernel a package installs, found by its paths:
/// ```
/// /boot/vmlinuz-<release>            (or /lib/modules/<release>/vmlinuz, as Fedora and RHEL 8+ ship it)
/// /boot/System.map-<release>         optional (or /lib/modules/<release>/System.map)
/// /boot/config-<release>             optional (or /lib/modules/<release>/config)
/// /lib/modules/<release>/            (or /usr/lib/modules/<release>/ on merged-/usr systems)
/// ```
public struct PackagedKernel: Sendable, Equatable {
    /// The directory name under /lib/modules: "2.6.18-398.el5", "6.1.0-28-amd64".
    public var release: String
    public var vmlinuzPath: String
    public var systemMapPath: String?
    public var configPath: String?
    /// "/lib/modules/<release>" or "/usr/lib/modules/<release>".
    public var modulesDirectory: String
    /// The kernel image judged by its bytes: a bzImage boots under GRUB, a Xen PV image does not.
    public var image: KernelImage
}

/// What any package holds, before asking whether it is a kernel.
public struct PackageContents: Sendable {
    public var format: KernelPackage.Format
    /// As in `KernelPackage`.
    public var name: String
    public var version: String
    public var architecture: String
    /// In archive order, except that a hard link always follows the file it names.
    public var files: [PackageFile]

    /// Reads an RPM or a DEB, told apart by their magic (never by the file name), without running
    /// anything from it.
    public static func read(path: String, limits: PackageLimits = .default) throws(KernelPackageError) -> PackageContents {
        let file: MappedFile
        do {
            file = try MappedFile(path: path)
        } catch let error as FileError {
            throw .file(error)
        } catch {
            throw .file(.open(path: path, errno: 0))
        }
        let bytes = file.bytes
        return try withExtendedLifetime(file) { () throws(KernelPackageError) -> PackageContents in
            if bytes.starts(with: RPMPackage.leadMagic) {
                return try RPMPackage.read(bytes, path: path, limits: limits)
            }
            if bytes.starts(with: ArArchive.magic) {
                return try DebPackage.read(bytes, path: path, limits: limits)
            }
            throw .notAPackage(path: path, found: bytes.isEmpty ? "an empty file" : hexBytes(bytes.prefix(8)))
        }
    }
}

/// A kernel package (an RPM such as kernel-2.6.18-398.el5.x86_64.rpm, or a DEB such as
/// linux-image-6.1.0-28-amd64_6.1.119-1_amd64.deb) read without running its scriptlets.
public struct KernelPackage: Sendable {
    public enum Format: String, Codable, Sendable { case rpm, deb }

    public var format: Format
    /// "kernel", "linux-image-6.1.0-28-amd64".
    public var name: String
    /// DEB: the Version field ("6.1.119-1"); RPM: [epoch:]version-release ("2.6.18-398.el5").
    public var version: String
    /// "x86_64", "amd64", "noarch"; "" when the package does not say.
    public var architecture: String
    /// Everything it installs, file contents included (see `PackageContents.files`).
    public var files: [PackageFile]
    /// The kernel release(s) it installs, sorted by release.
    public var kernels: [PackagedKernel]

    /// Reads the package at `path` and finds its kernels; refuses a package that installs none,
    /// saying what it found instead. Every file's bytes are held in memory (a distribution kernel
    /// with all its modules: 300–600 MiB; about twice that while the payload is unpacked), bounded
    /// by `limits`.
    public static func read(path: String, limits: PackageLimits = .default) throws(KernelPackageError) -> KernelPackage {
        let contents = try PackageContents.read(path: path, limits: limits)
        return try KernelPackage(contents, path: path)
    }

    /// Finds the kernels in already read contents; `path` names the package in messages.
    public init(_ contents: PackageContents, path: String) throws(KernelPackageError) {
        format = contents.format
        name = contents.name
        version = contents.version
        architecture = contents.architecture
        files = contents.files
        kernels = try KernelLayout.kernels(in: contents, path: path)
    }

    /// The file at an absolute path, if the package installs one there.
    public func file(at path: String) -> PackageFile? {
        files.first { $0.path == path }
    }
}

/// Finding kernels by the paths a package installs.
enum KernelLayout {
    static let moduleRoots = ["/lib/modules/", "/usr/lib/modules/"]

    static func kernels(in contents: PackageContents, path: String) throws(KernelPackageError) -> [PackagedKernel] {
        var byPath: [String: PackageFile] = [:]
        for file in contents.files { byPath[file.path] = file }
        // Release -> module root -> entries beneath it.
        var moduleTrees: [String: [String: Int]] = [:]
        for file in contents.files {
            for root in moduleRoots where file.path.hasPrefix(root) {
                let rest = file.path.dropFirst(root.count)
                guard let release = rest.split(separator: "/").first else { continue }
                moduleTrees[String(release), default: [:]][root + release, default: 0] += 1
            }
        }
        func installed(_ candidate: String) -> String? {
            guard let file = byPath[candidate], file.kind == .regular || file.kind == .hardlink else { return nil }
            return candidate
        }
        var kernels: [PackagedKernel] = []
        for (release, trees) in moduleTrees {
            // Both /lib/modules/R and /usr/lib/modules/R: the one with more entries.
            let modules = trees.max { $0.value < $1.value || ($0.value == $1.value && $0.key > $1.key) }!.key
            guard let vmlinuz = installed("/boot/vmlinuz-\(release)") ?? installed("\(modules)/vmlinuz") else { continue }
            let image = KernelImage.identify(byPath[vmlinuz]!.data, path: "\(path):\(vmlinuz)")
            kernels.append(PackagedKernel(
                release: release, vmlinuzPath: vmlinuz,
                systemMapPath: installed("/boot/System.map-\(release)") ?? installed("\(modules)/System.map"),
                configPath: installed("/boot/config-\(release)") ?? installed("\(modules)/config"),
                modulesDirectory: modules, image: image))
        }
        guard kernels.isEmpty else { return kernels.sorted { $0.release < $1.release } }
        throw .notAKernel(path: path, package: "'\(contents.name)' \(contents.version)",
                          reason: whatInstead(contents, moduleReleases: moduleTrees.keys.sorted()))
    }

    /// Why no kernel was found, naming what the package holds instead.
    private static func whatInstead(_ contents: PackageContents, moduleReleases: [String]) -> String {
        let images = contents.files.map(\.path).filter { $0.hasPrefix("/boot/vmlinuz-") }.sorted()
        if let image = images.first {
            let release = image.dropFirst("/boot/vmlinuz-".count)
            return "it has \(image) but no /lib/modules/\(release)/"
        }
        if let release = moduleReleases.first {
            return "it has /lib/modules/\(release)/ but no /boot/vmlinuz-\(release) or /lib/modules/\(release)/vmlinuz"
        }
        let nonDirectories = contents.files.filter { $0.kind != .directory }
        let tops = Set(nonDirectories.compactMap { file -> String? in
            let parts = file.path.split(separator: "/")
            return parts.count > 1 ? "/" + parts.prefix(parts.count > 2 && parts[0] == "usr" ? 2 : 1).joined(separator: "/") : nil
        }).sorted()
        var reason = "no /boot/vmlinuz-*"
        if !nonDirectories.isEmpty {
            let shown = tops.prefix(6).joined(separator: ", ") + (tops.count > 6 ? ", ..." : "")
            reason += "; its \(nonDirectories.count) file\(nonDirectories.count == 1 ? "" : "s") go\(nonDirectories.count == 1 ? "es" : "") to \(shown.isEmpty ? "/" : shown)"
        } else {
            reason += "; it holds no files"
        }
        return reason
    }
}
