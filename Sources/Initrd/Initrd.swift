/// Initramfs images: cpio newc archives, compressed members, the initrd families.
public enum InitrdImage {}
