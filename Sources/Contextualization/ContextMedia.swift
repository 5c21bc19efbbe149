import GuestFixups
import ImageCore
import ISO9660

/// What `rehost context` writes: an OpenNebula/StratusLab context file, or the same on a context
/// CD, or a NoCloud seed CD.
public enum ContextMedia {
    /// The volume label OpenNebula's context CD has, and cloud-init's OpenNebula datasource looks
    /// for (it also accepts `CDROM`).
    public static let openNebulaLabel = "CONTEXT"
    /// The label cloud-init's NoCloud datasource looks for.
    public static let noCloudLabel = "cidata"

    /// The OpenNebula context CD: `context.sh` and any further files in its root.
    public static func openNebulaISO(contextFile: [UInt8], extraFiles: [ISO9660.File] = [], time: Int64) throws -> [UInt8] {
        try ISO9660.image(label: openNebulaLabel, files: [ISO9660.File(name: "context.sh", contents: contextFile)] + extraFiles,
                          time: time)
    }

    /// The NoCloud seed CD (what `cloud-localds` makes): `user-data`, `meta-data`, and
    /// `network-config` when given.
    public static func noCloudISO(seed: NoCloudSeed, time: Int64) throws -> [UInt8] {
        try ISO9660.image(label: noCloudLabel, files: seed.files.map { ISO9660.File(name: $0.name, contents: $0.contents) }, time: time)
    }

    /// NoCloud meta-data naming the SSH keys (`public-keys:`) and an instance id, for a seed built
    /// from `--ssh-key` without `--meta-data`.
    public static func noCloudMetaData(instanceID: String, sshKeys: [String]) -> [UInt8] {
        var text = "instance-id: \(instanceID)\n"
        if !sshKeys.isEmpty {
            text += "public-keys:\n" + sshKeys.map { "  - \"\(yamlEscaped($0))\"\n" }.joined()
        }
        return Array(text.utf8)
    }

    static func yamlEscaped(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case _ where scalar.value < 0x20: out += "\\x" + (scalar.value < 16 ? "0" : "") + String(scalar.value, radix: 16)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}
