import Foundation

/// The partitions of a disk Rehost wrote, as util-linux's `sfdisk -J` reads them (an independent
/// reader of both MBR and GPT), so that a test can find the guest's filesystems whichever
/// firmware the disk was made for: on an MBR disk the Linux partitions come first; on a GPT
/// disk they follow the BIOS boot partition and the EFI System Partition.
public struct DiskPartitions {
    public struct Partition: Sendable {
        public var number: Int
        public var start: UInt64
        public var size: UInt64
        public var type: String
        /// Linux filesystem data: MBR type 83, GPT type 0FC63DAF-8483-4772-8E79-3D69D8477DE4.
        public var isLinux: Bool { type == "83" || type.uppercased() == "0FC63DAF-8483-4772-8E79-3D69D8477DE4" }
    }

    /// "dos" or "gpt".
    public let label: String
    public let partitions: [Partition]

    public init(disk: String) throws {
        let json = try Command.run("sfdisk", ["-J", disk]).requireSuccess().stdout
        guard let table = (try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])?["partitiontable"] as? [String: Any],
              let label = table["label"] as? String, let entries = table["partitions"] as? [[String: Any]] else {
            throw TestSupportError.commandFailed(commandLine: "sfdisk -J \(disk)", status: 0, stderr: "no partition table in its output: \(json)")
        }
        let sectorSize = (table["sectorsize"] as? NSNumber)?.uint64Value ?? 512
        self.label = label
        partitions = entries.enumerated().map { index, entry in
            let node = entry["node"] as? String ?? ""
            let number = Int(String(node.reversed().prefix { $0.isNumber }.reversed())) ?? index + 1
            return Partition(number: number, start: ((entry["start"] as? NSNumber)?.uint64Value ?? 0) * sectorSize,
                             size: ((entry["size"] as? NSNumber)?.uint64Value ?? 0) * sectorSize, type: entry["type"] as? String ?? "")
        }
    }

    /// The Linux filesystem partitions in disk order: the root of a converted guest is the first
    /// (the second with a separate /boot).
    public var linux: [Partition] { partitions.filter(\.isLinux) }

    /// The byte offset of the first Linux partition: where a converted guest's root (or /boot) starts.
    public static func firstLinuxOffset(_ disk: String) throws -> UInt64 {
        guard let first = try DiskPartitions(disk: disk).linux.first else {
            throw TestSupportError.commandFailed(commandLine: "sfdisk -J \(disk)", status: 0, stderr: "no Linux partition")
        }
        return first.start
    }
}
