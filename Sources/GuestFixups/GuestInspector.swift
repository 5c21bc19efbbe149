/// Reads a guest without changing it: which distribution, which kernels, what ties it to Xen.
public enum GuestInspector {
    /// `target` and `rootFilesystemType` are what the verdicts on each kernel are made for.
    /// `kernel` (a file-name version or a release) picks the kernel to boot instead of the newest
    /// that boots; it must exist and boot on the target.
    public static func inspect(_ fs: any GuestFilesystem, target: Target = .kvm,
                               rootFilesystemType: String = "ext3", kernel: String? = nil) throws -> GuestReport {
        let kernels = try findKernels(fs).map { try $0.report(rootFilesystemType: rootFilesystemType) }
        var bootable = kernels.first { $0.verdict(for: target)?.boots == true }
        if let kernel {
            guard let asked = kernels.first(where: { $0.version == kernel || $0.release == kernel || $0.path == kernel }) else {
                throw RepairError.noSuchKernel(kernel, available: kernels.map(\.version))
            }
            guard let verdict = asked.verdict(for: target), verdict.boots else {
                throw RepairError.kernelDoesNotBoot(kernel, target: target.rawValue,
                                                    because: asked.verdict(for: target)?.because ?? asked.image.detail)
            }
            bootable = asked
        }
        return GuestReport(
            os: try detectOperatingSystem(fs),
            kernels: kernels,
            target: target,
            bootableKernel: bootable,
            kernelProblem: bootable == nil ? kernelProblem(kernels, target: target).description : nil,
            xenTraits: try findXenTraits(fs),
            bootloaderConfigs: try GuestPaths.bootloaderConfigs.filter { try fs.exists($0) },
            initSystem: try detectInitSystem(fs))
    }

    static func kernelProblem(_ kernels: [Kernel], target: Target) -> RepairError {
        guard !kernels.isEmpty else { return .noKernels }
        return .noBootableKernel(target: target.rawValue, reasons: kernels.map { kernel in
            "\(kernel.path): \(kernel.verdict(for: target)?.because ?? kernel.image.detail)"
        })
    }

    // MARK: Distribution

    static func detectOperatingSystem(_ fs: any GuestFilesystem) throws -> OperatingSystem {
        if let line = try firstLine(fs, "/etc/redhat-release") {
            return redhatRelease(line, source: "/etc/redhat-release")
        }
        if let text = try fs.readText("/etc/os-release") {
            return osRelease(text, source: "/etc/os-release")
        }
        if let text = try fs.readText("/etc/SuSE-release") {
            return suseRelease(text, source: "/etc/SuSE-release")
        }
        if let text = try fs.readText("/etc/lsb-release"), let os = lsbRelease(text, source: "/etc/lsb-release") {
            return os
        }
        if let line = try firstLine(fs, "/etc/debian_version") {
            return OperatingSystem(family: .debian, name: "Debian GNU/Linux", version: line,
                                   majorVersion: leadingNumber(line), source: "/etc/debian_version")
        }
        return .unknown
    }

    /// "CentOS release 5.11 (Final)", "Red Hat Enterprise Linux Server release 6.10 (Santiago)".
    static func redhatRelease(_ line: String, source: String) -> OperatingSystem {
        guard let range = line.firstRange(of: " release ") else {
            return OperatingSystem(family: .redhat, name: line, version: nil, majorVersion: nil, source: source)
        }
        let name = String(line[..<range.lowerBound])
        let version = line[range.upperBound...].blankSeparatedFields.first.map(String.init)
        return OperatingSystem(family: .redhat, name: name, version: version,
                               majorVersion: version.flatMap(leadingNumber), source: source)
    }

    static func osRelease(_ text: String, source: String) -> OperatingSystem {
        let fields = keyValues(text)
        let ids = ([fields["ID"]] + (fields["ID_LIKE"]?.split(separator: " ").map(String.init) ?? []))
            .compactMap { $0?.lowercased() }
        let family: OSFamily
        if ids.contains(where: { ["rhel", "centos", "fedora", "redhat"].contains($0) }) {
            family = .redhat
        } else if ids.contains(where: { ["debian", "ubuntu"].contains($0) }) {
            family = .debian
        } else if ids.contains(where: { $0.contains("suse") || $0 == "sles" }) {
            family = .suse
        } else {
            family = .other
        }
        let version = fields["VERSION_ID"]
        return OperatingSystem(family: family, name: fields["NAME"] ?? "Linux", version: version,
                               majorVersion: version.flatMap(leadingNumber), source: source)
    }

    /// "SUSE Linux Enterprise Server 11 (x86_64)" then "VERSION = 11", "PATCHLEVEL = 4".
    static func suseRelease(_ text: String, source: String) -> OperatingSystem {
        let lines = text.split(separator: "\n").map { String($0) }
        var name = lines.first ?? "SUSE Linux"
        if let parenthesis = name.firstRange(of: " (") { name = String(name[..<parenthesis.lowerBound]) }
        var version: String?
        var patchLevel: String?
        for line in lines.dropFirst() {
            let parts = line.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: " \t") }
            guard parts.count == 2 else { continue }
            if parts[0] == "VERSION" { version = parts[1] }
            if parts[0] == "PATCHLEVEL" { patchLevel = parts[1] }
        }
        if let number = version.flatMap(leadingNumber),
           name.hasSuffix(" \(number)") { name = String(name.dropLast(" \(number)".count)) }
        let full = version.map { v in patchLevel.map { "\(v).\($0)" } ?? v }
        return OperatingSystem(family: .suse, name: name, version: full,
                               majorVersion: version.flatMap(leadingNumber), source: source)
    }

    static func lsbRelease(_ text: String, source: String) -> OperatingSystem? {
        let fields = keyValues(text)
        guard let id = fields["DISTRIB_ID"] else { return nil }
        let lowered = id.lowercased()
        let family: OSFamily = ["ubuntu", "debian"].contains(lowered) ? .debian
            : (lowered.contains("suse") ? .suse
            : (["redhat", "centos", "fedora"].contains { lowered.contains($0) } ? .redhat : .other))
        let version = fields["DISTRIB_RELEASE"]
        return OperatingSystem(family: family, name: id, version: version,
                               majorVersion: version.flatMap(leadingNumber), source: source)
    }

    /// KEY=value and KEY="value" lines; comments and others ignored.
    static func keyValues(_ text: String) -> [String: String] {
        var result: [String: String] = [:]
        for line in text.split(separator: "\n") where !line.isCommentOrBlank {
            let parts = line.split(separator: "=", maxSplits: 1)
            guard parts.count == 2 else { continue }
            var value = parts[1].trimmingCharacters(in: " \t\r")
            if value.count >= 2, let first = value.first, first == "\"" || first == "'", value.last == first {
                value = String(value.dropFirst().dropLast())
            }
            result[parts[0].trimmingCharacters(in: " \t")] = value
        }
        return result
    }

    static func leadingNumber(_ text: String) -> Int? {
        Int(text.prefix { $0.isASCII && $0.isNumber })
    }

    private static func firstLine(_ fs: any GuestFilesystem, _ path: String) throws -> String? {
        guard let text = try fs.readText(path) else { return nil }
        let line = text.split(separator: "\n").first.map { $0.trimmingCharacters(in: " \t\r") } ?? ""
        return line.isEmpty ? nil : line
    }

    // MARK: Kernels

    /// Every /boot/vmlinuz-V, newest first, each judged by its bytes.
    static func findKernels(_ fs: any GuestFilesystem) throws -> [KernelAnalysis] {
        var kernels: [KernelAnalysis] = []
        for name in try fs.listDirectory("/boot") where name.hasPrefix("vmlinuz-") && !name.hasSuffix(".hmac")
            && !name.hasSuffix(".pre-rehost") {
            let path = "/boot/\(name)"
            let size: UInt64
            switch try fs.entry(at: path) {
            case .regularFile(let fileSize)?: size = fileSize
            case .symlink?:
                guard let bytes = try fs.readFile(path) else { continue }
                size = UInt64(bytes.count)
            default: continue
            }
            let version = String(name.dropFirst("vmlinuz-".count))
            kernels.append(try KernelAnalysis(fs: fs, version: version, path: path, size: size,
                                              initrdPath: try findInitrd(fs, version: version)))
        }
        return kernels.sorted { KernelVersion.isOlder($1.version, than: $0.version) }
    }

    static func findInitrd(_ fs: any GuestFilesystem, version: String) throws -> String? {
        for name in ["initrd-\(version).img", "initramfs-\(version).img", "initrd.img-\(version)", "initrd-\(version)"] {
            let path = "/boot/\(name)"
            switch try fs.entry(at: path) {
            case .regularFile?: return path
            case .symlink?: if try fs.readFile(path) != nil { return path }
            default: continue
            }
        }
        return nil
    }

    // MARK: Xen traits

    static func findXenTraits(_ fs: any GuestFilesystem) throws -> [XenTrait] {
        var traits: [XenTrait] = []
        func scan(_ path: String, _ kind: XenTrait.Kind, where matches: (String) -> Bool) throws {
            guard let lines = try fs.readLines(path) else { return }
            for (index, text) in lines.texts.enumerated() where matches(text) {
                traits.append(XenTrait(kind: kind, file: path, line: index + 1, text: text))
            }
        }
        try scan(GuestPaths.inittab, .consoleGetty) { InittabEntry($0)?.isXenConsoleGetty ?? false }
        for path in try GuestPaths.xenSerialGettyUnits(fs) {
            traits.append(XenTrait(kind: .consoleGetty, file: path, line: nil, text: nil))
        }
        try scan(GuestPaths.securetty, .secureTTY) { line in
            let name = line.trimmingCharacters(in: " \t")
            return GuestPaths.isXenConsole(Substring(name))
        }
        for path in try GuestPaths.modprobeFiles(fs) {
            try scan(path, .modprobeAlias) { line in
                GuestPaths.moduleAlias(in: line).flatMap(GuestPaths.xenAliasKind) != nil
            }
        }
        try scan(GuestPaths.fstab, .fstabDevice) { line in
            guard !line.isCommentOrBlank, let device = line.blankSeparatedFields.first else { return false }
            return ["/dev/xvd", "/dev/sd", "/dev/hd"].contains { device.hasPrefix($0) }
        }
        for path in try GuestPaths.ifcfgFiles(fs) {
            try scan(path, .hardwareAddress, where: GuestPaths.isHardwareAddressLine)
        }
        for path in try GuestPaths.persistentNetRules(fs) {
            traits.append(XenTrait(kind: .persistentNetRules, file: path, line: nil, text: nil))
        }
        for path in GuestPaths.blkidCaches where try fs.exists(path) {
            traits.append(XenTrait(kind: .blkidCache, file: path, line: nil, text: nil))
        }
        return traits
    }

    // MARK: Init system

    static func detectInitSystem(_ fs: any GuestFilesystem) throws -> InitSystem {
        if case .symlink(let target)? = try fs.entry(at: "/sbin/init"), target.contains("systemd") {
            return .systemd
        }
        if let lines = try fs.readLines(GuestPaths.inittab),
           lines.texts.contains(where: { InittabEntry($0)?.getty != nil }) {
            return .sysvinit
        }
        if try fs.listDirectory("/etc/init").contains(where: { $0.hasSuffix(".conf") }) {
            return .upstart
        }
        for path in ["/lib/systemd/systemd", "/usr/lib/systemd/systemd"] where try fs.exists(path) {
            return .systemd
        }
        return .unknown
    }
}

extension StringProtocol {
    func trimmingCharacters(in characters: String) -> String {
        let set = Set(characters)
        var slice = Substring(self)
        while let first = slice.first, set.contains(first) { slice.removeFirst() }
        while let last = slice.last, set.contains(last) { slice.removeLast() }
        return String(slice)
    }
}
