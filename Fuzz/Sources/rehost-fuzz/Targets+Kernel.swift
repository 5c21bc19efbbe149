import Initrd
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
    ]
}
