import Initrd
import KernelModules
import KernelPackages

/// Initramfs images and kernel packages: the bytes a guest's /boot and an --add-kernel package
/// hand Rehost. Limits are lowered so a decompression bomb costs milliseconds, not gigabytes;
/// that the limits hold is part of what is tested.
extension FuzzTargets {
    static let kernelTargets: [FuzzTarget] = [
        FuzzTarget(name: "initramfs", summary: "InitramfsImage: newc cpio runs, compressed members, then the unpacked tree",
                   maxLength: 64 << 10) { data in
            let image = try InitramfsImage(bytes: data, name: "initrd.img",
                                           limits: InitramfsLimits(maxDecompressedBytes: 64 << 20, maxEntries: 100_000))
            _ = image.unpackedTree()
        },
        FuzzTarget(name: "package", summary: "PackageContents.read and KernelPackage: RPM headers and cpio payloads, DEB ar/tar",
                   maxLength: 128 << 10) { data in
            let path = FuzzScratch.shared.write(data, as: "input.pkg")
            let contents = try PackageContents.read(path: path, limits: PackageLimits(maxExpandedBytes: 64 << 20, maxFiles: 100_000))
            _ = try KernelPackage(contents, path: path)
        },
        FuzzTarget(name: "kernel-image", summary: "KernelImage.identify: bzImage headers, gzip'd ELF and Xen notes",
                   maxLength: 64 << 10) { data in
            _ = KernelImage.identify(Array(data), path: "/boot/vmlinuz")
        },
        FuzzTarget(name: "kernel-module", summary: "ModuleInfo.read: the ELF reader and .modinfo of a guest's .ko",
                   maxLength: 64 << 10) { data in
            _ = try ModuleInfo.read(elf: Array(data), path: "/lib/modules/6.1.0/kernel/fuzz.ko")
        },
        FuzzTarget(name: "kmod-index", summary: "KmodIndex.read and ModulesDep.parse: modules.*.bin tries and modules.dep text",
                   maxLength: 64 << 10) { data in
            _ = try? ModulesDep.parse(String(decoding: data, as: UTF8.self))
            _ = try KmodIndex.read(Array(data), name: "modules.alias.bin")
        },
    ]
}
