import ArgumentParser
import Digests
import Foundation
import ImageFormats
import ImageCore
import Pipeline

extension ImageFormat: ExpressibleByArgument {}
extension WriterOptions.QCOW2Compression: ExpressibleByArgument {}
extension WriterOptions.VMDKSubformat: ExpressibleByArgument {}
extension WriterOptions.VMDKAdapter: ExpressibleByArgument {}
extension WriterOptions.VDIVariant: ExpressibleByArgument {}
extension WriterOptions.VHDVariant: ExpressibleByArgument {}
extension WriterOptions.VHDXVariant: ExpressibleByArgument {}
extension WriterOptions.OVAProfile: ExpressibleByArgument {}
extension WriterOptions.ManifestDigest: ExpressibleByArgument {}
extension WriterOptions.Firmware: ExpressibleByArgument {}

/// The outputs and their format options, shared by `convert` and `export`.
struct OutputOptions: ParsableArguments {
    @Option(name: .shortAndLong, help: ArgumentHelp("An output disk (repeatable). The format comes from the extension: .raw/.img, .qcow2, .vmdk, .vdi, .vhd, .vhdx, .ova; a trailing .gz, .xz or .zst compresses the whole file (x.raw.gz, x.raw.xz, x.raw.zst, x.qcow2.gz); every output is written in the same pass.",
                                                    valueName: "file"))
    var output: [String] = []

    @Option(name: .customLong("upload"),
            help: ArgumentHelp("Also send the disk to a cloud, in the same pass (see `rehost help upload` and the upload options). With no -o, nothing is kept locally.",
                               valueName: "glance|aws-ebs|aws-s3"))
    var upload: UploadTarget?

    @Option(help: ArgumentHelp("The format of every output, whatever its name says.", valueName: "raw|qcow2|vmdk|vdi|vhd|vhdx|ova"))
    var format: ImageFormat?

    @Option(name: .customLong("qcow2-compat"), help: ArgumentHelp("qcow2 version: 1.1 (v3, default) or 0.10 (v2, for old consumers).", valueName: "1.1|0.10"))
    var qcow2Compat: String = "1.1"

    @Option(name: .customLong("cluster-size"), help: ArgumentHelp("qcow2 cluster size, e.g. 64K (default) or 2M.", valueName: "size"))
    var clusterSize: String = "64K"

    @Option(help: ArgumentHelp("qcow2 compression: none (default), deflate, or zstd (qcow2 v3 only, needs QEMU 5.1 or later to read).",
                               valueName: "none|deflate|zstd"))
    var compress: WriterOptions.QCOW2Compression = .none

    @Option(name: .customLong("vmdk-subformat"), help: ArgumentHelp("streamOptimized (default: ESXi, AWS, OVA) or monolithicSparse (Workstation, VirtualBox).",
                                                                    valueName: "streamOptimized|monolithicSparse"))
    var vmdkSubformat: WriterOptions.VMDKSubformat = .streamOptimized

    @Option(help: ArgumentHelp("The VMDK/OVA disk controller: lsilogic (default), ide, buslogic, lsisas1068.", valueName: "adapter"))
    var adapter: WriterOptions.VMDKAdapter = .lsilogic

    @Option(name: .customLong("hw-version"), help: ArgumentHelp("VMware virtual hardware version for VMDK (ddb.virtualHWVersion) and OVA (vmx-NN).", valueName: "n"))
    var hardwareVersion: Int = 4

    @Option(name: .customLong("vdi-variant"), help: ArgumentHelp("dynamic (default) or fixed.", valueName: "dynamic|fixed"))
    var vdiVariant: WriterOptions.VDIVariant = .dynamic

    @Option(name: .customLong("vhd-variant"), help: ArgumentHelp("dynamic (default) or fixed (Azure: the disk must be a whole number of MiB).", valueName: "dynamic|fixed"))
    var vhdVariant: WriterOptions.VHDVariant = .dynamic

    @Option(name: .customLong("vhdx-variant"), help: ArgumentHelp("dynamic (default) or fixed.", valueName: "dynamic|fixed"))
    var vhdxVariant: WriterOptions.VHDXVariant = .dynamic

    @Option(name: .customLong("vhdx-block-size"), help: ArgumentHelp("VHDX block size: 32M (default, as Hyper-V) or 1M; any power of two from 1M to 256M.", valueName: "size"))
    var vhdxBlockSize: String = "32M"

    @Option(help: ArgumentHelp("The image UUID (VDI, VHD, VMDK) for reproducible builds; a fresh one per image by default.", valueName: "uuid"))
    var uuid: String?

    @Option(name: .customLong("ova-firmware"), help: ArgumentHelp("The firmware the OVA's machine boots with: bios (default) or efi (VMware's firmware setting; with --ova-profile virtualbox, a vbox:Machine section with Firmware EFI, which is where VirtualBox reads it). convert --firmware uefi sets efi itself.", valueName: "bios|efi"))
    var ovaFirmware: WriterOptions.Firmware = .bios

    @Flag(help: "Byte-reproducible outputs: every UUID, CID, signature and salt derived from the inputs' SHA-256 (which costs one more read of them), and every time Rehost stamps itself taken from SOURCE_DATE_EPOCH (0 when unset). On by itself when SOURCE_DATE_EPOCH is set. The same input and options then give the same bytes, whatever the threads' timing.")
    var reproducible = false

    @Option(name: .customLong("ova-profile"), help: ArgumentHelp("vmware (vmx-NN system type, default) or virtualbox.", valueName: "vmware|virtualbox"))
    var ovaProfile: WriterOptions.OVAProfile = .vmware

    @Option(help: ArgumentHelp("OVA manifest digest: sha256 (default) or sha1 (old VMware).", valueName: "sha256|sha1"))
    var manifest: WriterOptions.ManifestDigest = .sha256

    @Option(help: ArgumentHelp("The VM's name in an OVA.", valueName: "name"))
    var name: String = "rehost-vm"

    @Option(help: ArgumentHelp("Virtual CPUs in an OVA.", valueName: "n"))
    var cpus: Int = 1

    @Option(help: ArgumentHelp("Memory in an OVA, e.g. 1024M or 2G.", valueName: "size"))
    var memory: String = "1024M"

    @Option(name: .customLong("compression-level"), help: ArgumentHelp("Effort for compressed outputs: 1-9 for deflate (default 6), 1-19 for zstd (default 3, as QEMU); for .gz/.xz/.zst outputs: gzip 1-12 (default 6), xz 0-9 (default 6), zstd 1-19 (default 3).", valueName: "n"))
    var compressionLevel: Int32?

    @Option(help: ArgumentHelp(
        "The digests in the report. disk (default): the blk-sha256 of the disk's contents, the same for every output and what `rehost digest` prints for any image of it; taken as the disk is written, holes cost nothing. file: the SHA-256 of each output file, as sha256sum prints it (reads every output back, holes included). all: both. none.",
        valueName: "disk|file|all|none"))
    var digest: DigestMode = .disk

    @Flag(name: .customLong("no-digest"), help: "The same as --digest none.")
    var noDigest = false

    enum DigestMode: String, ExpressibleByArgument, CaseIterable {
        case disk, file, all, none
    }

    var digests: DigestChoice {
        if noDigest { return .none }
        return DigestChoice(disk: digest == .disk || digest == .all, files: digest == .file || digest == .all)
    }

    func requests() throws -> [OutputRequest] {
        try OutputRequest.resolve(output, format: format)
    }

    func validate() throws {
        guard !output.isEmpty || upload != nil else { throw ValidationError("name at least one output with -o FILE, or --upload TARGET") }
        guard ["1.1", "0.10", "3", "2"].contains(qcow2Compat) else {
            throw ValidationError("--qcow2-compat \(qcow2Compat): expected 1.1 or 0.10")
        }
        guard let cluster = ByteCount.parse(clusterSize), cluster >= 512, cluster <= 2 << 20, cluster & (cluster - 1) == 0 else {
            throw ValidationError("--cluster-size \(clusterSize): expected a power of two from 512 to 2M")
        }
        guard let block = ByteCount.parse(vhdxBlockSize), block >= 1 << 20, block <= 256 << 20, block & (block - 1) == 0 else {
            throw ValidationError("--vhdx-block-size \(vhdxBlockSize): expected a power of two from 1M to 256M, such as 1M or 32M")
        }
        guard ByteCount.parse(memory).map({ $0 >= 1 << 20 }) == true else {
            throw ValidationError("--memory \(memory): expected a size such as 1024M or 2G")
        }
        guard (1...128).contains(cpus) else { throw ValidationError("--cpus \(cpus): expected 1 to 128") }
        if let uuid, UUIDBytes.parse(uuid) == nil { throw ValidationError("--uuid \(uuid): expected 8-4-4-4-12 hexadecimal digits") }
    }

    var writerOptions: WriterOptions {
        var options = WriterOptions()
        options.qcow2Version = (qcow2Compat == "0.10" || qcow2Compat == "2") ? 2 : 3
        options.qcow2ClusterSize = Int(ByteCount.parse(clusterSize) ?? 65536)
        options.qcow2Compression = compress
        options.vmdkSubformat = vmdkSubformat
        options.vmdkAdapter = adapter
        options.vmdkHardwareVersion = hardwareVersion
        options.vdiVariant = vdiVariant
        options.vhdVariant = vhdVariant
        options.vhdxVariant = vhdxVariant
        options.vhdxBlockSize = UInt32(ByteCount.parse(vhdxBlockSize) ?? 32 << 20)
        options.uuid = uuid.flatMap(UUIDBytes.parse)
        options.ovaProfile = ovaProfile
        options.ovaManifest = manifest
        options.firmware = ovaFirmware
        options.vmName = name
        options.cpus = cpus
        options.memoryMiB = Int((ByteCount.parse(memory) ?? 1 << 30) >> 20)
        options.compressionLevel = compressionLevel ?? (compress == .zstd ? 3 : 6)
        options.streamCompressionLevel = compressionLevel
        return options
    }
}

extension OutputOptions {
    func configureReproducibility(inputs: [String]) throws {
        try ReproducibleOutputs.configure(asked: reproducible, inputs: inputs)
    }
}

/// `--reproducible` (convert, export) and `reproducible:` (build).
enum ReproducibleOutputs {
    /// Turns reproducible outputs on when asked, or when SOURCE_DATE_EPOCH is set: the seed is the
    /// SHA-256 of the inputs' bytes, read here once before the work.
    static func configure(asked: Bool, inputs: [String]) throws {
        let epochText = ProcessInfo.processInfo.environment["SOURCE_DATE_EPOCH"].flatMap { $0.isEmpty ? nil : $0 }
        guard asked || epochText != nil else { return }
        var epoch: Int64 = 0
        if let epochText {
            guard let value = Int64(epochText), value >= 0 else {
                throw ValidationError("SOURCE_DATE_EPOCH=\(epochText): expected a number of seconds since 1970")
            }
            epoch = value
        }
        let seed = Digest(.sha256)
        for input in inputs { seed.update(Array(try Digest.ofFile(input).utf8)) }
        Reproducibility.configure(seed: seed.finishBytes(), epoch: epoch)
    }
}
