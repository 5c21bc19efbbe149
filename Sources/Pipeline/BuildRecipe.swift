import Digests
import Ext2
import GuestFixups
import ImageCore
import ImageFormats
import Yams

#if canImport(Glibc)
import Glibc
#endif

/// A recipe for `rehost build`: a base image, what to change in it, and the outputs, read from
/// one YAML file. It is only a way of writing a `ConvertOptions`: `rehost build` runs the same
/// Converter as `rehost convert` (repairs, `--clean`, the customize options and every output in
/// one pass). Every path in it is relative to the recipe's directory and may not leave it.
public struct BuildRecipe: Sendable {
    /// The recipe file, as given, and its directory.
    public var file: String
    public var directory: String
    /// The name of the result record, NAME.build.json (default: the recipe's file name without
    /// its extension).
    public var name: String
    public var base: String
    public var partition: Int?
    public var externalFiles = ExternalFiles.contained
    public var target: Target = .kvm
    /// `firmware:`, as `convert --firmware` (auto unless given).
    public var firmware: FirmwareChoice = .auto
    /// `reproducible: true`, as `convert --reproducible`.
    public var reproducible = false
    public var diskSize: UInt64?
    public var kernel: String?
    public var skip: Set<String> = []
    /// nil: no clean step; otherwise the selection, as `--clean-operations` takes it (empty: the defaults).
    public var clean: [String]?
    public var keepUserSSH = false
    public var customize = CustomizeOptions()
    /// The packages to install at first boot, with the guest's own package manager.
    public var packages: [String] = []
    /// `cloud-init:`: a NoCloud seed written inside the guest, as `convert --cloud-init`.
    public var cloudInit: NoCloudSeed?
    public var outputs: [OutputRequest] = []
    public var writerOptions = WriterOptions()
    public var digests = DigestChoice.default
    /// The recipe's SHA-256.
    public var sha256: String

    public static let topKeys = ["name", "base", "target", "size", "kernel", "skip", "clean", "customize", "cloud-init", "outputs",
                                 "format-options", "digest", "firmware", "reproducible"]

    /// Reads and checks a recipe; every problem is a `RecipeError` naming the file and line.
    public static func load(_ file: String) throws -> BuildRecipe {
        guard let bytes = HostFiles.read(file, limit: 4 << 20) else {
            throw RecipeError(file: file, line: nil, message: access(file, F_OK) == 0 ? "cannot be read, or larger than 4 MiB" : "no such file")
        }
        let text = String(decoding: bytes, as: UTF8.self)
        let node: Node?
        do { node = try Yams.compose(yaml: text) } catch let error as YamlError {
            throw RecipeError(file: file, line: Self.line(of: error), message: "not valid YAML: \(Self.problem(of: error))")
        }
        let digest = Digest(.sha256)
        digest.update(bytes)
        let slash = file.lastIndex(of: "/")
        let directory = slash.map { file[..<$0].isEmpty ? "/" : String(file[..<$0]) } ?? "."
        let baseName = String(slash.map { file[file.index(after: $0)...] } ?? Substring(file))
        let stem = baseName.split(separator: ".", omittingEmptySubsequences: false).count > 1
            ? String(baseName[..<baseName.lastIndex(of: ".")!]) : baseName
        let reader = RecipeReader(file: file, directory: directory)
        guard let node, case .mapping = node else {
            throw RecipeError(file: file, line: node?.mark?.line ?? 1, message: "a recipe is a mapping with at least base: and outputs:")
        }
        return try reader.read(node, sha256: digest.finish(), name: stem.isEmpty ? "recipe" : stem)
    }

    static func line(of error: YamlError) -> Int? {
        switch error {
        case let .scanner(_, _, mark, _), let .parser(_, _, mark, _), let .composer(_, _, mark, _): return mark.line
        default: return nil
        }
    }

    static func problem(of error: YamlError) -> String {
        switch error {
        case let .scanner(context, problem, _, _), let .parser(context, problem, _, _), let .composer(context, problem, _, _):
            return [context?.text, problem].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: ", ")
        case let .reader(problem, _, _, _): return problem
        default: return "\(error)"
        }
    }

    /// The same work as `rehost convert` with these options.
    public func convertOptions(dryRun: Bool) throws -> ConvertOptions {
        var options = ConvertOptions(input: base, outputs: outputs)
        options.writerOptions = writerOptions
        options.digests = digests
        options.diskSize = diskSize
        options.target = target
        options.firmware = firmware
        options.kernel = kernel
        options.skip = skip
        options.dryRun = dryRun
        options.partition = partition
        options.externalFiles = externalFiles
        if let clean {
            options.clean = try CleanOperations.select(clean)
            if keepUserSSH { options.clean.removeAll { $0.name == "ssh-userdir" } }
        }
        options.customize = customize
        options.cloudInit = cloudInit
        if !packages.isEmpty {
            // Installed before the recipe's own first-boot scripts, which may need them.
            options.customize.firstboot.insert(.init(name: "packages", script: Self.packageScript(packages)), at: 0)
        }
        return options
    }

    /// A first-boot script that installs the packages with the package manager the guest has:
    /// dnf, yum, apt-get or zypper, looked for in that order when it boots.
    public static func packageScript(_ packages: [String]) -> String {
        let list = packages.joined(separator: " ")
        return """
            #!/bin/sh
            # Written by rehost build: install the recipe's packages with the guest's package manager.
            PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
            if command -v dnf >/dev/null 2>&1; then dnf -y install \(list)
            elif command -v yum >/dev/null 2>&1; then yum -y install \(list)
            elif command -v apt-get >/dev/null 2>&1; then DEBIAN_FRONTEND=noninteractive apt-get update && DEBIAN_FRONTEND=noninteractive apt-get -y install \(list)
            elif command -v zypper >/dev/null 2>&1; then zypper --non-interactive install \(list)
            else echo "rehost build: no dnf, yum, apt-get or zypper to install: \(list)" >&2; exit 1
            fi

            """
    }
}

/// A recipe problem: one line, `FILE:LINE: message`.
public struct RecipeError: RehostError {
    public var file: String
    public var line: Int?
    public var message: String

    public init(file: String, line: Int?, message: String) {
        self.file = file
        self.line = line
        self.message = message
    }

    public var description: String { "\(file)\(line.map { ":\($0)" } ?? ""): \(message)" }
}

/// Walks the composed YAML into a BuildRecipe, strictly: unknown keys, duplicate keys and wrong
/// types are errors with their line.
struct RecipeReader {
    let file: String
    let directory: String

    func fail(_ node: Node?, _ message: String) -> RecipeError {
        RecipeError(file: file, line: node?.mark?.line, message: message)
    }

    /// A mapping's entries by key, refusing keys not in `allowed`.
    func mapping(_ node: Node, _ what: String, allowed: [String]) throws -> [String: Node] {
        guard case let .mapping(mapping) = node else { throw fail(node, "\(what): expected a mapping (key: value lines)") }
        var result: [String: Node] = [:]
        for (key, value) in mapping {
            guard case let .scalar(scalar) = key else { throw fail(key, "\(what): keys are plain words") }
            guard allowed.contains(scalar.string) else {
                throw fail(key, "unknown key \"\(scalar.string)\" in \(what); the keys are \(allowed.joined(separator: ", "))")
            }
            guard result[scalar.string] == nil else { throw fail(key, "\(what): \"\(scalar.string)\" is given twice") }
            result[scalar.string] = value
        }
        return result
    }

    func string(_ node: Node, _ what: String) throws -> String {
        guard case let .scalar(scalar) = node else { throw fail(node, "\(what): expected a single value, not a list or mapping") }
        return scalar.string
    }

    func bool(_ node: Node, _ what: String) throws -> Bool {
        switch try string(node, what) {
        case "true", "yes": return true
        case "false", "no": return false
        default: throw fail(node, "\(what): expected true or false")
        }
    }

    func int(_ node: Node, _ what: String) throws -> Int {
        guard let value = Int(try string(node, what)) else { throw fail(node, "\(what): expected a whole number") }
        return value
    }

    func size(_ node: Node, _ what: String) throws -> UInt64 {
        guard let value = ByteCount.parse(try string(node, what)) else { throw fail(node, "\(what): expected a size such as 10G, 512M or 4294967296") }
        return value
    }

    func list(_ node: Node, _ what: String) throws -> [Node] {
        guard case let .sequence(sequence) = node else { throw fail(node, "\(what): expected a list (lines starting with \"- \")") }
        return Array(sequence)
    }

    func strings(_ node: Node, _ what: String) throws -> [String] {
        try list(node, what).map { try string($0, what) }
    }

    func choice<T: RawRepresentable & CaseIterable>(_ node: Node, _ what: String, _: T.Type) throws -> T where T.RawValue == String {
        let text = try string(node, what)
        guard let value = T(rawValue: text) else {
            throw fail(node, "\(what) \(text): expected \(T.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return value
    }

    /// A host path from the recipe: relative to the recipe's directory, and inside it.
    func hostPath(_ node: Node, _ what: String) throws -> String {
        try hostPath(try string(node, what), at: node, what)
    }

    func hostPath(_ path: String, at node: Node, _ what: String) throws -> String {
        guard !path.isEmpty else { throw fail(node, "\(what): an empty path") }
        guard !path.hasPrefix("/") else {
            throw fail(node, "\(what) \(path): paths in a recipe are relative to its directory, not absolute")
        }
        var depth = 0
        for component in path.split(separator: "/") {
            if component == ".." { depth -= 1 } else if component != "." { depth += 1 }
            if depth < 0 { throw fail(node, "\(what) \(path): outside the recipe's directory (\"..\" climbs out of it)") }
        }
        return directory == "." ? path : directory + "/" + path
    }

    func read(_ root: Node, sha256: String, name defaultName: String) throws -> BuildRecipe {
        let top = try mapping(root, "the recipe", allowed: BuildRecipe.topKeys)
        guard let baseNode = top["base"] else { throw fail(root, "no base: the image to start from") }
        guard let outputsNode = top["outputs"] else { throw fail(root, "no outputs: at least one image to write") }
        var recipe = BuildRecipe(file: file, directory: directory, name: defaultName, base: "", sha256: sha256)
        if let node = top["name"] {
            let name = try string(node, "name")
            guard !name.isEmpty, !name.contains("/"), name != ".", name != ".." else { throw fail(node, "name: a file name, without \"/\"") }
            recipe.name = name
        }

        // base: PATH, or a mapping with the input options.
        if case .scalar = baseNode {
            recipe.base = try hostPath(baseNode, "base")
        } else {
            let base = try mapping(baseNode, "base", allowed: ["path", "partition", "allow-external-files"])
            guard let path = base["path"] else { throw fail(baseNode, "base: no path: the image to start from") }
            recipe.base = try hostPath(path, "base: path")
            if let node = base["partition"] { recipe.partition = try int(node, "base: partition") }
            if let node = base["allow-external-files"], try bool(node, "base: allow-external-files") { recipe.externalFiles = .allowed }
        }
        guard access(recipe.base, F_OK) == 0 else {
            throw fail(baseNode.mark == nil ? root : baseNode, "base \(recipe.base): no such file")
        }

        if let node = top["target"] { recipe.target = try choice(node, "target", Target.self) }
        if let node = top["firmware"] { recipe.firmware = try choice(node, "firmware", FirmwareChoice.self) }
        if let node = top["reproducible"] { recipe.reproducible = try bool(node, "reproducible") }
        if let node = top["size"] { recipe.diskSize = try size(node, "size") }
        if let node = top["kernel"] { recipe.kernel = try string(node, "kernel") }
        if let node = top["skip"] {
            let known = Set(GuestRepairs.names.map(\.name))
            for item in try list(node, "skip") {
                let name = try string(item, "skip")
                guard known.contains(name) else { throw fail(item, "skip \(name): no such repair; the repairs are \(known.sorted().joined(separator: ", "))") }
                recipe.skip.insert(name)
            }
        }
        if let node = top["clean"] { try readClean(node, into: &recipe) }
        if let node = top["customize"] { try readCustomize(node, into: &recipe) }
        if let node = top["cloud-init"] {
            let given = try mapping(node, "cloud-init", allowed: ["user-data", "meta-data", "network-config"])
            func file(_ key: String) throws -> [UInt8]? {
                guard let item = given[key] else { return nil }
                let path = try hostPath(item, "cloud-init: \(key)")
                guard let bytes = HostFiles.read(path) else { throw fail(item, "cloud-init: \(key) \(path): cannot be read") }
                return bytes
            }
            guard let userData = try file("user-data") else { throw fail(node, "cloud-init: no user-data: (a file beside the recipe)") }
            recipe.cloudInit = NoCloudSeed(userData: userData, metaData: try file("meta-data"), networkConfig: try file("network-config"))
        }

        for item in try list(outputsNode, "outputs") {
            let path: String, format: ImageFormat?
            if case .scalar = item {
                path = try hostPath(item, "outputs")
                format = nil
            } else {
                let output = try mapping(item, "an output", allowed: ["path", "format"])
                guard let pathNode = output["path"] else { throw fail(item, "an output without path:") }
                path = try hostPath(pathNode, "outputs: path")
                format = try output["format"].map { try choice($0, "outputs: format", ImageFormat.self) }
            }
            let compression = OutputCompression.fromSuffix(of: path)
            guard let chosen = format ?? ImageFormat.fromExtension(of: compression?.stripped ?? path) else {
                throw fail(item, "outputs \(path): no format: name it .raw, .qcow2, .vmdk, .vdi, .vhd, .vhdx or .ova (optionally followed by .gz, .xz or .zst), or say format:")
            }
            guard !recipe.outputs.contains(where: { $0.path == path }) else { throw fail(item, "outputs \(path): named twice") }
            let parent = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
            var info = stat()
            guard stat(parent.isEmpty ? "/" : parent, &info) == 0, info.st_mode & S_IFMT == S_IFDIR else {
                throw fail(item, "outputs \(path): no directory \(parent) to write it in")
            }
            recipe.outputs.append(OutputRequest(path: path, format: chosen, compression: compression?.compression))
        }
        guard !recipe.outputs.isEmpty else { throw fail(outputsNode, "outputs: at least one image to write") }
        if let node = top["format-options"] { try readFormatOptions(node, into: &recipe) }
        if let node = top["digest"] {
            switch try string(node, "digest") {
            case "disk": recipe.digests = .default
            case "file": recipe.digests = DigestChoice(disk: false, files: true)
            case "all": recipe.digests = DigestChoice(disk: true, files: true)
            case "none": recipe.digests = .none
            default: throw fail(node, "digest: expected disk, file, all or none")
            }
        }
        return recipe
    }

    /// clean: true | false | [operations] | {operations: [...], keep-user-ssh: bool}
    func readClean(_ node: Node, into recipe: inout BuildRecipe) throws {
        var operations: Node?
        switch node {
        case .scalar:
            recipe.clean = try bool(node, "clean") ? [] : nil
            return
        case .sequence:
            operations = node
        case .mapping:
            let clean = try mapping(node, "clean", allowed: ["operations", "keep-user-ssh"])
            operations = clean["operations"]
            if let keep = clean["keep-user-ssh"] { recipe.keepUserSSH = try bool(keep, "clean: keep-user-ssh") }
        }
        var selection: [String] = []
        if let operations {
            let known = Set(CleanOperations.all.map(\.name))
            for item in try list(operations, "clean") {
                let name = try string(item, "clean")
                let bare = name.hasPrefix("-") ? String(name.dropFirst()) : name
                guard known.contains(bare) || bare == "all" || bare == "defaults" else {
                    throw fail(item, "clean \(name): no such operation; the operations are \(known.sorted().joined(separator: ", "))")
                }
                selection.append(name)
            }
            do { _ = try CleanOperations.select(selection) } catch { throw fail(operations, "clean: \(error)") }
        }
        recipe.clean = selection
    }

    static let customizeKeys = ["mkdir", "copy-in", "chown", "write", "append-line", "delete", "chmod", "hostname", "timezone",
                                "root-password", "ssh-inject", "packages", "firstboot", "firstboot-command"]

    func readCustomize(_ node: Node, into recipe: inout BuildRecipe) throws {
        let customize = try mapping(node, "customize", allowed: Self.customizeKeys)
        var options = CustomizeOptions()
        if let node = customize["mkdir"] { options.mkdirs = try strings(node, "customize: mkdir") }
        if let node = customize["copy-in"] {
            for item in try list(node, "customize: copy-in") {
                let copy = try mapping(item, "customize: copy-in", allowed: ["from", "to"])
                guard let from = copy["from"], let to = copy["to"] else { throw fail(item, "customize: copy-in: each needs from: (a host path) and to: (a guest directory)") }
                let host = try hostPath(from, "customize: copy-in: from")
                guard access(host, F_OK) == 0 else { throw fail(from, "customize: copy-in: from \(host): no such file or directory") }
                let tree: HostTree
                do { tree = try GuestPrep.hostTree(host) } catch { throw fail(from, "customize: copy-in: from \(host): \(error)") }
                options.copyIns.append(.init(tree: tree, directory: try string(to, "customize: copy-in: to")))
            }
        }
        if let node = customize["chown"] { options.copyOwner = try string(node, "customize: chown") }
        if let node = customize["write"] {
            for item in try list(node, "customize: write") {
                let write = try mapping(item, "customize: write", allowed: ["path", "content"])
                guard let path = write["path"], let content = write["content"] else { throw fail(item, "customize: write: each needs path: and content:") }
                options.writes.append(.init(path: try string(path, "customize: write: path"), text: try string(content, "customize: write: content")))
            }
        }
        if let node = customize["append-line"] {
            for item in try list(node, "customize: append-line") {
                let append = try mapping(item, "customize: append-line", allowed: ["path", "line"])
                guard let path = append["path"], let line = append["line"] else { throw fail(item, "customize: append-line: each needs path: and line:") }
                options.appendLines.append(.init(path: try string(path, "customize: append-line: path"), text: try string(line, "customize: append-line: line")))
            }
        }
        if let node = customize["delete"] { options.deletes = try strings(node, "customize: delete") }
        if let node = customize["chmod"] {
            for item in try list(node, "customize: chmod") {
                let chmod = try mapping(item, "customize: chmod", allowed: ["path", "mode"])
                guard let path = chmod["path"], let mode = chmod["mode"] else { throw fail(item, "customize: chmod: each needs path: and mode:") }
                guard let permissions = UInt16(try string(mode, "customize: chmod: mode"), radix: 8), permissions <= 0o7777 else {
                    throw fail(mode, "customize: chmod: mode: expected an octal mode such as \"0755\"")
                }
                options.chmods.append(.init(permissions: permissions, path: try string(path, "customize: chmod: path")))
            }
        }
        if let node = customize["hostname"] { options.hostname = try string(node, "customize: hostname") }
        if let node = customize["timezone"] { options.timezone = try string(node, "customize: timezone") }
        if let node = customize["root-password"] {
            let text = try string(node, "customize: root-password")
            if text.hasPrefix("file:") {
                let path = try hostPath(String(text.dropFirst(5)), at: node, "customize: root-password: file")
                guard let bytes = HostFiles.read(path, limit: 1 << 20) else { throw fail(node, "customize: root-password: \(path) cannot be read") }
                options.rootPassword = .password(String(String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).first ?? ""))
            } else {
                do { options.rootPassword = try RootPassword.parse(text) } catch { throw fail(node, "customize: root-password: expected password:PASSWORD, file:FILE, random or locked") }
            }
        }
        if let node = customize["ssh-inject"] {
            for item in try list(node, "customize: ssh-inject") {
                let inject = try mapping(item, "customize: ssh-inject", allowed: ["user", "key"])
                guard let user = inject["user"], let keyNode = inject["key"] else { throw fail(item, "customize: ssh-inject: each needs user: and key: (a public key file)") }
                let keyFile = try hostPath(keyNode, "customize: ssh-inject: key")
                guard let bytes = HostFiles.read(keyFile, limit: 1 << 20) else { throw fail(keyNode, "customize: ssh-inject: key \(keyFile) cannot be read") }
                let key = String(decoding: bytes, as: UTF8.self).split(separator: "\n").first.map(String.init) ?? ""
                guard key.hasPrefix("ssh-") || key.hasPrefix("ecdsa-") || key.hasPrefix("sk-") else {
                    throw fail(keyNode, "customize: ssh-inject: key \(keyFile) does not hold an OpenSSH public key")
                }
                options.sshKeys.append(.init(user: try string(user, "customize: ssh-inject: user"), key: key))
            }
        }
        if let node = customize["packages"] {
            for item in try list(node, "customize: packages") {
                let name = try string(item, "customize: packages")
                guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || "+-._:=~*".contains($0) }) else {
                    throw fail(item, "customize: packages \(name): a package name (letters, digits and + - . _ : = ~ *)")
                }
                recipe.packages.append(name)
            }
        }
        if let node = customize["firstboot"] {
            for item in try list(node, "customize: firstboot") {
                let path = try hostPath(item, "customize: firstboot")
                guard let bytes = HostFiles.read(path) else { throw fail(item, "customize: firstboot \(path): cannot be read") }
                options.firstboot.append(.init(name: path.split(separator: "/").last.map(String.init) ?? "script", script: String(decoding: bytes, as: UTF8.self)))
            }
        }
        if let node = customize["firstboot-command"] {
            for item in try list(node, "customize: firstboot-command") {
                options.firstboot.append(.init(name: "command", script: "#!/bin/sh\n" + (try string(item, "customize: firstboot-command")) + "\n"))
            }
        }
        do { try options.checkPaths() } catch { throw fail(node, "customize: \(error)") }
        recipe.customize = options
    }

    static let formatKeys = ["qcow2-compat", "cluster-size", "compress", "compression-level", "vmdk-subformat", "adapter", "hw-version",
                             "vdi-variant", "vhd-variant", "vhdx-variant", "vhdx-block-size", "uuid", "ova-profile", "manifest", "vm-name", "cpus", "memory"]

    func readFormatOptions(_ node: Node, into recipe: inout BuildRecipe) throws {
        let given = try mapping(node, "format-options", allowed: Self.formatKeys)
        var options = WriterOptions()
        if let node = given["qcow2-compat"] {
            switch try string(node, "format-options: qcow2-compat") {
            case "1.1", "3": options.qcow2Version = 3
            case "0.10", "2": options.qcow2Version = 2
            default: throw fail(node, "format-options: qcow2-compat: expected 1.1 or 0.10")
            }
        }
        if let node = given["cluster-size"] {
            let cluster = try size(node, "format-options: cluster-size")
            guard cluster >= 512, cluster <= 2 << 20, cluster & (cluster - 1) == 0 else { throw fail(node, "format-options: cluster-size: expected a power of two from 512 to 2M") }
            options.qcow2ClusterSize = Int(cluster)
        }
        if let node = given["compress"] { options.qcow2Compression = try choice(node, "format-options: compress", WriterOptions.QCOW2Compression.self) }
        if let node = given["compression-level"] { options.compressionLevel = Int32(try int(node, "format-options: compression-level")) }
        if let node = given["vmdk-subformat"] { options.vmdkSubformat = try choice(node, "format-options: vmdk-subformat", WriterOptions.VMDKSubformat.self) }
        if let node = given["adapter"] { options.vmdkAdapter = try choice(node, "format-options: adapter", WriterOptions.VMDKAdapter.self) }
        if let node = given["hw-version"] { options.vmdkHardwareVersion = try int(node, "format-options: hw-version") }
        if let node = given["vdi-variant"] { options.vdiVariant = try choice(node, "format-options: vdi-variant", WriterOptions.VDIVariant.self) }
        if let node = given["vhd-variant"] { options.vhdVariant = try choice(node, "format-options: vhd-variant", WriterOptions.VHDVariant.self) }
        if let node = given["vhdx-variant"] { options.vhdxVariant = try choice(node, "format-options: vhdx-variant", WriterOptions.VHDXVariant.self) }
        if let node = given["vhdx-block-size"] {
            let block = try size(node, "format-options: vhdx-block-size")
            guard block >= 1 << 20, block <= 256 << 20, block & (block - 1) == 0 else { throw fail(node, "format-options: vhdx-block-size: expected a power of two from 1M to 256M") }
            options.vhdxBlockSize = UInt32(block)
        }
        if let node = given["uuid"] {
            guard let uuid = UUIDBytes.parse(try string(node, "format-options: uuid")) else { throw fail(node, "format-options: uuid: expected 8-4-4-4-12 hexadecimal digits") }
            options.uuid = uuid
        }
        if let node = given["ova-profile"] { options.ovaProfile = try choice(node, "format-options: ova-profile", WriterOptions.OVAProfile.self) }
        if let node = given["manifest"] { options.ovaManifest = try choice(node, "format-options: manifest", WriterOptions.ManifestDigest.self) }
        if let node = given["vm-name"] { options.vmName = try string(node, "format-options: vm-name") }
        if let node = given["cpus"] {
            let cpus = try int(node, "format-options: cpus")
            guard (1...128).contains(cpus) else { throw fail(node, "format-options: cpus: expected 1 to 128") }
            options.cpus = cpus
        }
        if let node = given["memory"] {
            let bytes = try size(node, "format-options: memory")
            guard bytes >= 1 << 20 else { throw fail(node, "format-options: memory: expected a size such as 1024M or 2G") }
            options.memoryMiB = Int(bytes >> 20)
        }
        if given["compression-level"] == nil { options.compressionLevel = options.qcow2Compression == .zstd ? 3 : 6 }
        recipe.writerOptions = options
    }
}
