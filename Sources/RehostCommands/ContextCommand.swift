import ArgumentParser
import Contextualization
import GuestFixups
import ImageCore
import ISO9660

#if canImport(Glibc)
import Glibc
#endif

/// `rehost context`: writes contextualization for a guest that will run elsewhere, on the host,
/// without touching any image.
struct ContextCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "context",
        abstract: "Write an OpenNebula/StratusLab context file, a context CD, or a NoCloud seed CD.",
        discussion: """
            Contextualization hands a guest its SSH keys and user data when it first boots. This command \
            writes the media on the host; nothing is read from or written to an image. (To put a NoCloud \
            seed inside the guest's own disk instead, use `rehost convert --cloud-init USERDATA`.)

            Without --nocloud it writes an OpenNebula / StratusLab context file, `KEY='VALUE'` lines a \
            shell can source (`. context.sh`):
              CONTEXT_METHOD              cloud-init
              CLOUD_INIT_AUTHORIZED_KEYS  the SSH keys, one a line, base64; or none
              CLOUD_INIT_USER_DATA        the user data, gzip then base64; or none
              SSH_PUBLIC_KEY              the keys as text (OpenNebula)
              USER_DATA                   the same blob as CLOUD_INIT_USER_DATA
              USER_DATA_ENCODING          base64 (read by cloud-init's OpenNebula source)
            and any --set KEY=VALUE (SET_HOSTNAME, ETH0_IP, ...).

            With --iso the file is written as `context.sh` on an ISO 9660 CD labelled CONTEXT, as OpenNebula \
            attaches it.

            With --nocloud it writes a cloud-init NoCloud seed CD labelled `cidata` (what cloud-localds \
            makes): `user-data`, `meta-data` (--meta-data, else an instance id and the --ssh-key keys as \
            public-keys) and `network-config`. --iso is implied.

            User data is given as --user-data TYPE,FILE parts (StratusLab's form). TYPE is a MIME type \
            (`text/cloud-config`), or one without its `text/` (`x-shellscript`, `cloud-config`, \
            `cloud-boothook`, `part-handler`), and the parts make one multipart/mixed message, which \
            cloud-init splits by type; or `none`, alone: that one file is the user data, verbatim.

            The CD is Rehost's own ISO 9660 writer's (Joliet names, so cloud-init and the guest's kernel \
            see `user-data` and `context.sh` exactly). It is built without root and is the same byte for \
            byte for the same inputs: its dates are SOURCE_DATE_EPOCH when set, else the newest \
            modification time of the input files.

            Examples:
              rehost context --ssh-key ~/.ssh/id_ed25519.pub --user-data x-shellscript,setup.sh -o context.sh
              rehost context --ssh-key key.pub --user-data cloud-config,user.yaml --iso -o context.iso
              rehost context --nocloud --user-data none,user.yaml --meta-data meta.yaml -o seed.iso
              qemu-system-x86_64 ... -drive file=seed.iso,media=cdrom
            """)

    @Option(name: .customLong("ssh-key"), help: ArgumentHelp("A file of SSH public keys, one a line (repeatable).", valueName: "file"))
    var sshKeys: [String] = []

    @Option(name: .customLong("user-data"),
            help: ArgumentHelp("A part of the user data: its MIME type (or `none` for one verbatim file), a comma, and a file (repeatable).",
                               valueName: "type,file"))
    var userData: [String] = []

    @Option(name: .customLong("set"), help: ArgumentHelp("A further context variable, KEY=VALUE (repeatable; not with --nocloud).", valueName: "key=value"))
    var variables: [String] = []

    @Flag(help: "Write a NoCloud seed CD (label cidata) instead of an OpenNebula context.")
    var nocloud = false

    @Option(name: .customLong("meta-data"), help: ArgumentHelp("With --nocloud: the meta-data file.", valueName: "file"))
    var metaData: String?

    @Option(name: .customLong("network-config"), help: ArgumentHelp("With --nocloud: a network-config file (cloud-init network configuration v1 or v2).", valueName: "file"))
    var networkConfig: String?

    @Flag(help: "Write an ISO 9660 context CD (label CONTEXT, holding context.sh) instead of the bare file.")
    var iso = false

    @Option(name: .shortAndLong, help: ArgumentHelp("The file to write.", valueName: "file"))
    var output: String

    @Flag(help: "Print a JSON report instead of text.")
    var json = false

    func validate() throws {
        if !nocloud {
            if metaData != nil { throw ValidationError("--meta-data goes with --nocloud (OpenNebula's context has no meta-data file)") }
            if networkConfig != nil { throw ValidationError("--network-config goes with --nocloud") }
        } else {
            if !variables.isEmpty { throw ValidationError("--set goes with an OpenNebula context, not --nocloud (use --meta-data)") }
            if userData.isEmpty { throw ValidationError("--nocloud needs user data: --user-data TYPE,FILE") }
        }
        for part in userData where !part.contains(",") {
            throw ValidationError("--user-data \(part): expected TYPE,FILE, such as x-shellscript,setup.sh or none,user.yaml")
        }
        for variable in variables where !variable.contains("=") {
            throw ValidationError("--set \(variable): expected KEY=VALUE")
        }
    }

    struct Report: Encodable {
        var output: String
        var kind: String
        var label: String?
        var bytes: Int
        var files: [FileReport]
        var variables: [String]
        var sshKeys: Int
        var userDataParts: [String]
        var time: Int64?
    }

    struct FileReport: Encodable {
        var name: String
        var bytes: Int
    }

    func run() throws {
        try runReportingErrors {
            var inputs: [String] = []
            var keys: [String] = []
            for path in sshKeys {
                inputs.append(path)
                let text = String(decoding: try readWholeFile(path), as: UTF8.self)
                keys += text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters() }
                    .filter { !$0.isEmpty && !$0.hasPrefix("#") }
            }
            var parts: [ContextFile.Part] = []
            for spec in userData {
                let comma = spec.firstIndex(of: ",")!
                let type = String(spec[..<comma]), path = String(spec[spec.index(after: comma)...])
                inputs.append(path)
                parts.append(ContextFile.Part(mimeType: type, fileName: baseName(path), contents: try readWholeFile(path)))
            }
            let extra = variables.map { variable -> (key: String, value: String) in
                let equals = variable.firstIndex(of: "=")!
                return (String(variable[..<equals]), String(variable[variable.index(after: equals)...]))
            }
            let context = ContextFile(sshKeys: keys, parts: parts, extra: extra)

            var report = Report(output: output, kind: "", label: nil, bytes: 0, files: [], variables: [],
                                sshKeys: keys.count, userDataParts: parts.map(\.mimeType), time: nil)
            let bytes: [UInt8]
            if nocloud {
                let userDataBytes = try context.userData() ?? []
                var seed = NoCloudSeed(userData: userDataBytes)
                if let metaData {
                    inputs.append(metaData)
                    seed.metaData = try readWholeFile(metaData)
                } else {
                    seed.metaData = ContextMedia.noCloudMetaData(instanceID: seed.instanceID, sshKeys: keys)
                }
                if let networkConfig {
                    inputs.append(networkConfig)
                    seed.networkConfig = try readWholeFile(networkConfig)
                }
                let time = try Self.imageTime(inputs: inputs)
                bytes = try ContextMedia.noCloudISO(seed: seed, time: time)
                report.kind = "NoCloud seed CD (ISO 9660 + Joliet)"
                report.label = ContextMedia.noCloudLabel
                report.files = seed.files.map { FileReport(name: $0.name, bytes: $0.contents.count) }
                report.time = time
            } else {
                let file = try context.render()
                report.variables = try context.variables().map(\.key)
                if iso {
                    let time = try Self.imageTime(inputs: inputs)
                    bytes = try ContextMedia.openNebulaISO(contextFile: file, time: time)
                    report.kind = "OpenNebula context CD (ISO 9660 + Joliet)"
                    report.label = ContextMedia.openNebulaLabel
                    report.files = [FileReport(name: "context.sh", bytes: file.count)]
                    report.time = time
                } else {
                    bytes = file
                    report.kind = "OpenNebula/StratusLab context file"
                }
            }
            report.bytes = bytes.count
            let out = try AtomicOutput(finalPath: output)
            try out.file.write(bytes, at: 0)
            try out.commit()
            if json {
                try printJSON(report)
            } else {
                print("\(output.escapedForTerminal()): \(report.kind), \(bytes.count) bytes")
                if let label = report.label { print("  label: \(label)") }
                for file in report.files { print("  \(file.name): \(file.bytes) bytes") }
                if !report.variables.isEmpty { print("  variables: \(report.variables.joined(separator: " "))") }
                print("  ssh keys: \(keys.count); user data parts: \(parts.isEmpty ? "none" : parts.map(\.mimeType).joined(separator: ", "))")
            }
        }
    }

    /// SOURCE_DATE_EPOCH when set, else the newest modification time of the inputs (0 without any).
    static func imageTime(inputs: [String]) throws -> Int64 {
        if let text = getenv("SOURCE_DATE_EPOCH").map({ String(cString: $0) }), !text.isEmpty {
            guard let value = Int64(text), value >= 0 else {
                throw ContextCommandError.badSourceDateEpoch(text)
            }
            return value
        }
        var newest: Int64 = 0
        for path in inputs {
            var info = stat()
            if stat(path, &info) == 0 { newest = max(newest, Int64(info.st_mtim.tv_sec)) }
        }
        return newest
    }
}

enum ContextCommandError: RehostError {
    case badSourceDateEpoch(String)
    case tooLarge(path: String)

    var description: String {
        switch self {
        case let .badSourceDateEpoch(text): return "SOURCE_DATE_EPOCH=\(text): expected a whole number of seconds since 1970"
        case let .tooLarge(path): return "\(path): more than 64 MiB; context files carry small files"
        }
    }
}

/// The whole of a small input file (at most 64 MiB).
func readWholeFile(_ path: String) throws -> [UInt8] {
    let file = try RawFile(path: path, mode: .readOnly)
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 20)
    while true {
        let got = try chunk.withUnsafeMutableBytes { try file.read(into: $0, at: UInt64(bytes.count)) }
        if got == 0 { break }
        bytes += chunk[0..<got]
        if bytes.count > 64 << 20 { throw ContextCommandError.tooLarge(path: path) }
    }
    return bytes
}

private func baseName(_ path: String) -> String {
    path.split(separator: "/").last.map(String.init) ?? path
}

extension Substring {
    func trimmingCharacters() -> String {
        String(drop { $0 == " " || $0 == "\t" || $0 == "\r" }.reversed().drop { $0 == " " || $0 == "\t" || $0 == "\r" }.reversed())
    }
}
