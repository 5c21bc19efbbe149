// swift-tools-version:6.0
import PackageDescription

// Layers, bottom to top: C system libraries -> ImageCore -> thin safe wrappers (Zlib, Blkid, Ext2,
// Compression, Digests, Curl) -> kernel knowledge (KernelModules: ELF, modinfo, depmod; Initrd: cpio and
// initramfs members; KernelPackages: kernel images judged by their bytes, RPM and DEB kernel
// packages read with Initrd's cpio reader) -> domain modules
// (DiskLayout: MBR, GPT, GRUB embedding; FAT: FAT32 for EFI System Partitions, written without mkfs;
// FilesystemBuilder, GuestFixups, ImageFormats; Volumes above ImageFormats: partitions,
// LVM2, the assembly of a guest's filesystems from fstab; ISO9660, and Contextualization above it and
// GuestFixups: context files and CDs) -> Pipeline; beside it Cloud (optional upload adapters:
// SigV4, Glance, EBS direct, S3 + VM Import, over Curl: libcurl's easy API) -> RehostCommands -> the
// `rehost` executable. Beside it, `rehost-fuzz` (Fuzz/) sits directly on the readers and parsers.
// The one outside library besides ArgumentParser: Yams (libyaml), for Pipeline's build recipes.
let package = Package(
    name: "Rehost",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "rehost", targets: ["rehost"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // `rehost build RECIPE.yaml` reads its recipe with Yams (composed to nodes, so errors carry lines).
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
    ],
    targets: [
        .systemLibrary(name: "CExt2fs", pkgConfig: "ext2fs", providers: [.apt(["libext2fs-dev"])]),
        .systemLibrary(name: "CBlkid", pkgConfig: "blkid", providers: [.apt(["libblkid-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CDeflate", pkgConfig: "libdeflate", providers: [.apt(["libdeflate-dev"])]),
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CCrypto", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CLzma", pkgConfig: "liblzma", providers: [.apt(["liblzma-dev"])]),
        .systemLibrary(name: "CLz4", pkgConfig: "liblz4", providers: [.apt(["liblz4-dev"])]),
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        // libbz2 ships no pkg-config file.
        .systemLibrary(name: "CBzip2", providers: [.apt(["libbz2-dev"])]),

        .systemLibrary(name: "CLinux"),

        .target(name: "ImageCore", dependencies: ["CLinux"]),
        .target(name: "Zlib", dependencies: ["CZlib", "ImageCore"]),
        .target(name: "Blkid", dependencies: ["CBlkid", "ImageCore"]),
        .target(name: "Ext2", dependencies: ["CExt2fs", "ImageCore"]),
        .target(name: "Compression", dependencies: ["CDeflate", "CZstd", "CLzma", "CLz4", "CBzip2", "Zlib", "ImageCore"]),
        .target(name: "Digests", dependencies: ["CCrypto", "ImageCore"]),
        // HTTP for the upload adapters: libcurl's easy API behind a small safe Swift one.
        .target(name: "Curl", dependencies: ["CCurl"]),

        .target(name: "KernelModules", dependencies: ["ImageCore", "Compression"]),
        .target(name: "Initrd", dependencies: ["ImageCore", "Compression", "KernelModules"]),
        .target(name: "KernelPackages", dependencies: ["ImageCore", "Compression", "KernelModules", "Initrd"]),

        .target(name: "DiskLayout", dependencies: ["ImageCore"]),
        // FAT32 for EFI System Partitions, written as bytes into a range of an image file (no mkfs).
        .target(name: "FAT", dependencies: ["ImageCore"]),
        // Contextualization media: Rehost's own ISO 9660 writer, and the context files it carries.
        .target(name: "ISO9660", dependencies: []),
        .target(name: "GuestFixups", dependencies: ["ImageCore", "Compression", "KernelModules", "Initrd", "KernelPackages", "Digests"]),
        .target(name: "FilesystemBuilder", dependencies: ["Ext2", "ImageCore"]),
        .target(name: "ImageFormats", dependencies: ["ImageCore", "Zlib", "Blkid", "Compression", "Digests"]),
        .target(name: "Volumes", dependencies: ["ImageCore", "Blkid", "ImageFormats"]),
        .target(name: "Contextualization", dependencies: ["ImageCore", "Compression", "GuestFixups", "ISO9660"]),
        .target(name: "Pipeline", dependencies: [
            "ImageCore", "Blkid", "Ext2", "DiskLayout", "FAT", "FilesystemBuilder", "GuestFixups", "KernelPackages", "ImageFormats", "Volumes",
            "Digests", .product(name: "Yams", package: "Yams"),
        ]),
        // Optional upload adapters (Glance, AWS EBS direct, S3 + VM Import) over libcurl (Curl):
        // only the commands import it; nothing below depends on a cloud.
        .target(name: "Cloud", dependencies: [
            "ImageCore", "Digests", "ImageFormats", "Curl",
            .product(name: "Yams", package: "Yams"),
        ]),
        // `rehost batch`: manifests, result records, locks and engine jobs; each entry is run as a
        // `rehost convert` process of its own, so nothing here depends on the Pipeline.
        .target(name: "Batch", dependencies: ["ImageCore", "Digests", "CLinux"]),
        .target(name: "RehostCommands", dependencies: [
            "Pipeline", "ImageCore", "ImageFormats", "Contextualization", "Cloud", "Batch", "Digests",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "rehost", dependencies: ["RehostCommands"]),

        // Fuzzing (scripts/fuzz.sh, README "Fuzzing"): one executable with a libFuzzer target per
        // reader. scripts/fuzz.sh builds it with -sanitize=fuzzer,address -DFUZZING in its own
        // build directory; built plainly, as here, it replays inputs, so it never stops compiling.
        .systemLibrary(name: "CLibFuzzer", path: "Fuzz/CLibFuzzer"),
        .executableTarget(name: "rehost-fuzz", dependencies: [
            "CLibFuzzer", "ImageCore", "Zlib", "ImageFormats", "Volumes", "DiskLayout", "Initrd", "KernelModules", "KernelPackages", "GuestFixups",
        ], path: "Fuzz/Sources/rehost-fuzz"),

        .target(name: "TestSupport", dependencies: ["ImageCore"], path: "Tests/TestSupport"),
        .testTarget(name: "ImageCoreTests", dependencies: ["ImageCore", "TestSupport"]),
        .testTarget(name: "ImageFormatsTests", dependencies: ["ImageFormats", "Zlib", "Blkid", "ImageCore", "Digests", "TestSupport"]),
        .testTarget(name: "QCOW2Tests", dependencies: ["ImageFormats", "ImageCore", "Compression", "TestSupport"]),
        .testTarget(name: "VMDKTests", dependencies: ["ImageFormats", "ImageCore", "Compression", "TestSupport"]),
        .testTarget(name: "VDIVHDTests", dependencies: ["ImageFormats", "ImageCore", "TestSupport"]),
        .testTarget(name: "OVATests", dependencies: ["ImageFormats", "ImageCore", "Digests", "TestSupport"]),
        .testTarget(name: "CompressionTests", dependencies: ["Compression", "Digests", "TestSupport"]),
        .testTarget(name: "TestSupportTests", dependencies: ["TestSupport"]),
        .testTarget(name: "FilesystemBuilderTests", dependencies: ["FilesystemBuilder", "Ext2", "TestSupport"]),
        .testTarget(name: "KernelModulesTests", dependencies: ["KernelModules", "Compression", "TestSupport"]),
        .testTarget(name: "InitrdTests", dependencies: ["Initrd", "Compression", "KernelModules", "TestSupport"]),
        .testTarget(name: "KernelPackagesTests", dependencies: ["KernelPackages", "KernelModules", "Compression", "TestSupport"]),
        .testTarget(name: "DiskLayoutTests", dependencies: ["DiskLayout", "TestSupport"]),
        .testTarget(name: "FATTests", dependencies: ["FAT", "DiskLayout", "ImageCore", "TestSupport"]),
        .testTarget(name: "GuestFixupsTests", dependencies: ["GuestFixups", "Compression", "ImageCore", "KernelPackages", "TestSupport"]),
        .testTarget(name: "PipelineTests", dependencies: ["Pipeline", "Ext2", "GuestFixups", "TestSupport"]),
        .testTarget(name: "VolumesTests", dependencies: ["Volumes", "Blkid", "ImageFormats", "ImageCore", "TestSupport"]),
        .testTarget(name: "CLITests", dependencies: ["TestSupport"]),
        .testTarget(name: "DigestsTests", dependencies: ["Digests", "TestSupport"]),
        .testTarget(name: "CloudTests", dependencies: ["Cloud", "Digests", "ImageFormats", "ImageCore", "TestSupport"],
                    exclude: ["Fixtures"]),
        .testTarget(name: "ContextualizationTests", dependencies: ["Contextualization", "ISO9660", "GuestFixups", "TestSupport"]),
        .testTarget(name: "BatchTests", dependencies: ["Batch", "ImageCore", "TestSupport"]),
    ]
)
