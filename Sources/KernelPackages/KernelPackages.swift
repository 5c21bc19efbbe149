/// Kernel images judged by their bytes; kernel packages (RPM, DEB) read without running them.
public enum KernelPackages {}
