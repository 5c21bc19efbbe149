import ArgumentParser
import Cloud
import Foundation
import GuestFixups
import ImageCore
import ImageFormats

extension Target: ExpressibleByArgument {}
extension RootReferenceChoice: ExpressibleByArgument {}
extension SELinuxMode: ExpressibleByArgument {}

/// Options every command that reads a guest shares.
struct GuestOptions: ParsableArguments {
    @Argument(help: ArgumentHelp("The Xen instance copy: a bare ext2/3/4 image or a partitioned disk; raw, gzip, qcow2, VMDK, VDI, VHD or OVA.",
                                 valueName: "input"))
    var input: String

    @Argument(help: ArgumentHelp("More disks of the same guest, for an LVM2 volume group spread over several disks (each raw, gzip, qcow2, VMDK, VDI, VHD or OVA).",
                                 valueName: "disk"))
    var moreDisks: [String] = []

    @Option(help: ArgumentHelp("For a partitioned input disk, the partition number of the root filesystem (default: the ext filesystem holding /etc/fstab: the bootable, else the largest, Linux partition, else another partition or an LVM2 logical volume).",
                               valueName: "n"))
    var partition: Int?

    @Option(help: ArgumentHelp("The hypervisor the disk is for; it picks the drivers the repairs write: kvm (virtio), virtualbox (ahci, e1000), vmware (mptspi, e1000), generic (ata_piix, e1000).",
                               valueName: "kvm|virtualbox|vmware|generic"))
    var target: Target = .kvm

    @Option(name: .customLong("root-ref"),
            help: ArgumentHelp("How fstab and the kernel command line name the root filesystem: auto (LABEL= when the filesystem has a usable label, else UUID=), label, uuid, or device (/dev/vda1 on kvm, /dev/sda1 otherwise; with convert --keep-layout, /dev/vdaN for partition N, and fstab names every kept filesystem the same way).",
                               valueName: "auto|label|uuid|device"))
    var rootReference: RootReferenceChoice = .auto

    @Option(help: ArgumentHelp("The kernel to boot, by the version in its file name (/boot/vmlinuz-VERSION) or its release (uname -r); it must boot on the target. Default: the newest kernel that does.",
                               valueName: "version"))
    var kernel: String?

    @Option(name: .customLong("add-kernel"),
            help: ArgumentHelp("Install this kernel package (an RPM such as kernel-2.6.18-*.el5.x86_64.rpm, or a DEB such as linux-image-*.deb) into the guest without running its scriptlets, with its module index and an initrd derived from the guest's own, and boot it (repeatable). For guests that have only Xen PV kernels.",
                               valueName: "package"))
    var addKernel: [String] = []

    @OptionGroup(title: "Reading the input") var access: ImageAccessOptions

    @Flag(help: "Print a JSON report on standard output instead of text.")
    var json = false

    var scratchDirectory: String? { access.scratchDirectory }
    var externalFiles: ExternalFiles { access.externalFiles }
    var maxOutputBytes: UInt64? { access.maxOutputBytes }
}

func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

/// `value`'s JSON object with the key `uploads` added: a report of a lower layer that knows
/// nothing of clouds, and what the uploads of the same run did.
func printJSON<T: Encodable>(_ value: T, uploads: [UploadReport]) throws {
    guard !uploads.isEmpty else { return try printJSON(value) }
    let encoder = JSONEncoder()
    var object = try JSONSerialization.jsonObject(with: try encoder.encode(value)) as? [String: Any] ?? [:]
    object["uploads"] = try JSONSerialization.jsonObject(with: try encoder.encode(uploads))
    let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
    print(String(decoding: data, as: UTF8.self))
}
