/// Kernel images judged by their bytes; kernel packages (RPM, DEB) read without running them.
///
/// ```
/// KernelPackage.read(path:)           the entry point: a package file -> its files and kernels
///   PackageContents.read               RPM or DEB by magic, never by name
///     RPMPackage   lead, RPMHeader x2 (signature, header), compressed cpio (Initrd's CpioNewc)
///     DebPackage   ArArchive -> control.tar (fields) + data.tar (TarArchive)
///     PackageTree  names normalized inside the root, entries bounded, hard links resolved
///   KernelLayout   /boot/vmlinuz-R + /lib/modules/R/ -> PackagedKernel (image judged by KernelImage)
/// ```
public enum KernelPackages {}
