/// ELF files, kernel module metadata (.modinfo), dependency closure and the module indexes depmod writes.
public enum KernelModules {}
