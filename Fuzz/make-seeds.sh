#!/usr/bin/env bash
# Generates the binary seed corpora for scripts/fuzz.sh into OUTDIR/<target>/ (default
# .build/fuzz/seeds), from the real tools: qemu-img for qcow2, VMDK, VDI and VHD; tar for OVA;
# sfdisk, mke2fs and gzip for raw input; cpio and the compressors for initramfs; rpmbuild and
# dpkg-deb for packages. Nothing here is committed: only the small text seeds in Fuzz/Seeds/ are.
# Every seed is kept under 256 KiB (the image targets' -max_len), but VHDX's: its structure
# alone fills 4 MiB (headers, log, BAT and metadata each start on a MiB), so its limit is 5 MiB. Takes a few seconds.
set -euo pipefail
die() { echo "make-seeds: error: $*" >&2; exit 1; }
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=${1:-$HERE/../.build/fuzz/seeds}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
for tool in qemu-img sfdisk mke2fs gzip tar cpio xz zstd; do
    command -v "$tool" >/dev/null || die "$tool not found (scripts/install-deps.sh installs it)"
done
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
seeds() { rm -rf "${OUT:?}/$1"; mkdir -p "$OUT/$1"; }
q() { qemu-img "$@" >/dev/null; }

# A 1 MiB raw disk with data in three places (the first sector, the middle, the last sector),
# the source for every image format.
head -c 1048576 /dev/zero > data.raw
printf 'REHOST FUZZ SEED first sector' | dd of=data.raw conv=notrunc status=none
printf 'middle of the disk' | dd of=data.raw bs=1 seek=524800 conv=notrunc status=none
printf 'last sector' | dd of=data.raw bs=1 seek=1048064 conv=notrunc status=none

seeds qcow2
q convert -f raw -O qcow2 -o cluster_size=512 data.raw "$OUT/qcow2/v3-512.qcow2"
q convert -f raw -O qcow2 -o cluster_size=512,compat=0.10 data.raw "$OUT/qcow2/v2-512.qcow2"
q convert -c -f raw -O qcow2 -o cluster_size=4096 data.raw "$OUT/qcow2/compressed-4k.qcow2"
q convert -f raw -O qcow2 -o cluster_size=16384,extended_l2=on data.raw "$OUT/qcow2/extended-l2-16k.qcow2"
q create -f qcow2 -o cluster_size=65536 "$OUT/qcow2/empty-64k.qcow2" 1G
q create -f qcow2 -o cluster_size=512,refcount_bits=1 "$OUT/qcow2/empty-refcount1.qcow2" 100M

seeds vmdk
q convert -f raw -O vmdk -o subformat=streamOptimized data.raw "$OUT/vmdk/stream.vmdk"
q convert -f raw -O vmdk -o subformat=monolithicSparse data.raw "$OUT/vmdk/sparse.vmdk"
q create -f vmdk -o subformat=monolithicSparse "$OUT/vmdk/empty-sparse.vmdk" 64M
q create -f vmdk -o subformat=streamOptimized "$OUT/vmdk/empty-stream.vmdk" 64M

seeds vmdk-descriptor
q create -f vmdk -o subformat=monolithicFlat desc.vmdk 1M
# qemu-img names the extent desc-flat.vmdk; the fuzz target provides flat.vmdk beside it.
sed 's/desc-flat.vmdk/flat.vmdk/' desc.vmdk > "$OUT/vmdk-descriptor/monolithicFlat.vmdk"

seeds vdi
q create -f vdi "$OUT/vdi/empty.vdi" 64M
q create -f vdi "$OUT/vdi/empty-small.vdi" 1M
q convert -f raw -O vdi data.raw full.vdi
head -c 262144 full.vdi > "$OUT/vdi/with-data-truncated.vdi"

seeds vhd
q create -f vpc "$OUT/vhd/empty-dynamic.vhd" 64M
q create -f vpc -o subformat=fixed,force_size=on fixed.vhd 128K
cp fixed.vhd "$OUT/vhd/fixed-128k.vhd"
q create -f vpc -o force_size=on "$OUT/vhd/empty-dynamic-forced.vhd" 3M

seeds vhdx
# qemu-img puts the BAT at 2 MiB and the metadata at 3 MiB: the first 4 MiB hold all of it.
q convert -f raw -O vhdx -o block_size=1M,subformat=dynamic data.raw dynamic.vhdx
head -c 5242880 dynamic.vhdx > "$OUT/vhdx/dynamic-1m-data.vhdx"
q convert -f raw -O vhdx -o block_size=1M,subformat=fixed data.raw fixed.vhdx
head -c 5242880 fixed.vhdx > "$OUT/vhdx/fixed-1m-data.vhdx"
q create -f vhdx "$OUT/vhdx/empty.vhdx" 64M
head -c 4194304 "$OUT/vhdx/empty.vhdx" > empty4.vhdx && mv empty4.vhdx "$OUT/vhdx/empty.vhdx"

seeds ova
cat > disk.ovf <<'OVF'
<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">
  <References>
    <File ovf:href="disk1.vmdk" ovf:id="file1" ovf:size="0"/>
  </References>
  <DiskSection>
    <Info>Virtual disk information</Info>
    <Disk ovf:capacity="1048576" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>
  </DiskSection>
</Envelope>
OVF
cp "$OUT/vmdk/stream.vmdk" disk1.vmdk
sha256sum disk.ovf disk1.vmdk | awk '{ print "SHA256(" $2 ")= " $1 }' > disk.mf
tar --format=ustar -cf "$OUT/ova/ustar.ova" disk.ovf disk1.vmdk disk.mf
tar --format=gnu -cf "$OUT/ova/gnu.ova" disk.ovf disk1.vmdk
tar --format=pax -cf "$OUT/ova/pax.ova" disk.ovf disk1.vmdk
tar --format=ustar -cf "$OUT/ova/no-ovf.ova" disk1.vmdk

seeds input
seeds mbr
# ext2 filesystems small enough to be seeds: bare, in an MBR partition, in a GPT partition.
head -c 65536 /dev/zero > fs.raw
mke2fs -q -F -t ext2 -b 1024 -N 16 -m 0 -L seed fs.raw 64
cp fs.raw "$OUT/input/bare-ext2.raw"
head -c $((200 * 1024)) /dev/zero > mbr.raw
printf 'label: dos\nstart=64, size=128, type=83, bootable\n' | sfdisk -q mbr.raw >/dev/null
dd if=fs.raw of=mbr.raw bs=512 seek=64 conv=notrunc status=none
cp mbr.raw "$OUT/input/mbr-ext2.raw"
gzip -9 -c mbr.raw > "$OUT/input/mbr-ext2.raw.gz"
head -c $((240 * 1024)) /dev/zero > gpt.raw
printf 'label: gpt\nfirst-lba: 34\nstart=40, size=128, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n' | sfdisk -q gpt.raw >/dev/null
dd if=fs.raw of=gpt.raw bs=512 seek=40 conv=notrunc status=none
cp gpt.raw "$OUT/input/gpt-ext2.raw"
gzip -1 -c gpt.raw > "$OUT/input/gpt-ext2.raw.gz"
head -c $((64 * 1024)) /dev/zero > multi.raw
printf 'label: dos\nstart=1, size=20, type=83\nstart=21, size=20, type=5\nstart=41, size=20, type=82\nstart=61, size=20, type=7\n' \
    | sfdisk -q multi.raw >/dev/null 2>&1 || true
for disk in mbr multi; do
    head -c 512 $disk.raw > "$OUT/mbr/$disk.sector"
    # The target reads 8 more bytes: the disk size in sectors, little-endian.
    { head -c 512 $disk.raw; printf '\x90\x01\x00\x00\x00\x00\x00\x00'; } > "$OUT/mbr/$disk-400-sectors.bin"
done
head -c 512 gpt.raw > "$OUT/mbr/protective-gpt.sector"

seeds gzip
gzip -9 -c data.raw > "$OUT/gzip/disk.gz"
{ printf 'first member\n' | gzip -c; printf 'second member\n' | gzip -c; } > "$OUT/gzip/two-members.gz"
printf 'named' > named.txt
gzip -c -N named.txt > "$OUT/gzip/with-name.gz"
head -c 65536 /dev/urandom | gzip -1 -c > random.gz && head -c 60000 random.gz > "$OUT/gzip/random-truncated.gz"

seeds initramfs
mkdir -p root/bin root/lib/modules/6.1.0/kernel root/etc
printf '#!/bin/sh\nmodprobe virtio_blk\nexec switch_root /sysroot /sbin/init\n' > root/init
chmod 755 root/init
printf 'ELF' > root/bin/busybox
ln -s busybox root/bin/sh
ln root/bin/busybox root/bin/hardlink
printf 'kernel/virtio_blk.ko:\n' > root/lib/modules/6.1.0/modules.dep
mkdir -p early/kernel/x86/microcode
printf 'microcode' > early/kernel/x86/microcode/GenuineIntel.bin
(cd root && find . | LC_ALL=C sort | cpio --quiet -o -H newc) > root.cpio
(cd early && find . | LC_ALL=C sort | cpio --quiet -o -H newc) > early.cpio
cp root.cpio "$OUT/initramfs/plain.cpio"
gzip -9 -c root.cpio > "$OUT/initramfs/gzip.cpio.gz"
xz --check=crc32 -c root.cpio > "$OUT/initramfs/xz.cpio.xz"
zstd -q -c root.cpio > "$OUT/initramfs/zstd.cpio.zst"
{ cat early.cpio; gzip -c root.cpio; } > "$OUT/initramfs/early-then-gzip.img"
if command -v lz4 >/dev/null; then lz4 -q -l -c root.cpio > "$OUT/initramfs/lz4-legacy.cpio.lz4"; fi
if command -v bzip2 >/dev/null; then bzip2 -c root.cpio > "$OUT/initramfs/bzip2.cpio.bz2"; fi

seeds package
R=6.1.0-fuzz
mkdir -p pkg/boot "pkg/lib/modules/$R/kernel/drivers/block"
# A bzImage header (boot protocol 2.15) whose version string names the release.
python3 - "$R" > "pkg/boot/vmlinuz-$R" <<'PY'
import struct, sys
b = bytearray(0x400)
b[0x1F1] = 1; b[0x1FE:0x200] = b"\x55\xaa"; b[0x202:0x206] = b"HdrS"
struct.pack_into("<HH", b, 0x206, 0x020F, 0); struct.pack_into("<H", b, 0x20E, 0x100)
banner = (sys.argv[1] + " (fuzz@example) #1 SMP").encode() + b"\0"
b[0x300:0x300 + len(banner)] = banner
sys.stdout.buffer.write(b)
PY
printf 'CONFIG_VIRTIO_BLK=m\n' > "pkg/boot/config-$R"
printf 'ELF' > "pkg/lib/modules/$R/kernel/drivers/block/virtio_blk.ko"
ln -s "/lib/modules/$R/kernel" "pkg/lib/modules/$R/build"
if command -v dpkg-deb >/dev/null; then
    mkdir -p pkg/DEBIAN
    printf 'Package: linux-image-fuzz\nVersion: 1\nArchitecture: amd64\nMaintainer: fuzz <fuzz@example>\nDescription: fuzz seed\n' > pkg/DEBIAN/control
    dpkg-deb -Zgzip --root-owner-group -b pkg "$OUT/package/kernel-gzip.deb" >/dev/null
    dpkg-deb -Zxz --root-owner-group -b pkg "$OUT/package/kernel-xz.deb" >/dev/null
    rm -r pkg/DEBIAN
fi
if command -v rpmbuild >/dev/null; then
    mkdir -p rpm/{BUILD,RPMS,SOURCES,SPECS,SRPMS}
    for payload in w9.gzdio w6.xzdio; do
        cat > rpm/SPECS/k.spec <<SPEC
Name: kernel
Version: 6.1.0
Release: 1
Summary: fuzz seed
License: GPLv2
BuildArch: x86_64
%define _binary_payload $payload
%define __spec_install_post %{nil}
%define debug_package %{nil}
%define _build_id_links none
%description
A kernel package shaped like RHEL's, for fuzzing.
%install
cp -a $WORK/pkg/. %{buildroot}/
%files
/boot/vmlinuz-$R
/boot/config-$R
/lib/modules/$R
SPEC
        rpmbuild --quiet --define "_topdir $WORK/rpm" -bb rpm/SPECS/k.spec >/dev/null 2>&1 \
            || die "rpmbuild failed"
        mv rpm/RPMS/x86_64/*.rpm "$OUT/package/kernel-${payload%%dio}.rpm"
    done
fi

seeds kernel-image
cp "pkg/boot/vmlinuz-$R" "$OUT/kernel-image/bzimage"
gzip -c "pkg/boot/vmlinuz-$R" > "$OUT/kernel-image/gzip"

# Kernel modules: relocatable ELF objects with a .modinfo section, as the kernel's modpost
# leaves them, and the kmod indexes depmod writes for them.
seeds kernel-module
seeds kmod-index
if command -v gcc >/dev/null && command -v depmod >/dev/null; then
    MODULES=base/lib/modules/$R/kernel/drivers/block
    mkdir -p "$MODULES"
    module() {  # NAME DEPENDS ALIASES...
        local name=$1 depends=$2; shift 2
        local info="license=GPL\\0name=$name\\0depends=$depends\\0vermagic=$R SMP mod_unload modversions "
        for alias in "$@"; do info="alias=$alias\\0$info"; done
        printf '__attribute__((section(".modinfo"), used)) static const char info[] = "%s";\n' "$info" > "$name.c"
        printf '__attribute__((section(".gnu.linkonce.this_module"), used)) static char this_module[1344];\n' >> "$name.c"
        printf 'int init_module(void) { return 0; }\n' >> "$name.c"
        gcc -c -O0 "$name.c" -o "$MODULES/$name.ko"
    }
    module virtio "" "virtio:d*v*"
    module virtio_blk "virtio" "pci:v00001AF4d00001001sv*sd*bc*sc*i*" "virtio:d00000002v*"
    cp "$MODULES/virtio_blk.ko" "$OUT/kernel-module/virtio_blk.ko"
    cp "$MODULES/virtio.ko" "$OUT/kernel-module/virtio.ko"
    depmod -b base "$R" 2>/dev/null
    for index in alias dep symbols; do cp "base/lib/modules/$R/modules.$index.bin" "$OUT/kmod-index/modules.$index.bin"; done
    cp "base/lib/modules/$R/modules.dep" "$OUT/kmod-index/modules.dep"
fi

# guest-etc: the first byte picks the file (FuzzTargets.etcPaths, in this order).
seeds guest-etc
etc() { local index=$1 name=$2; shift 2; { printf "\\$(printf '%03o' "$index")"; printf "$@"; } > "$OUT/guest-etc/$index-$name"; }
etc 0 securetty 'console\nvc/1\ntty1\nxvc0\nhvc0\n'
etc 1 ifcfg-eth0 '# Xen Virtual Ethernet\nDEVICE=eth0\nBOOTPROTO=dhcp\nHWADDR=00:16:3E:5A:12:34\nONBOOT=yes\n\tMACADDR = 00:16:3E:5A:12:35\n'
etc 2 os-release 'NAME="CentOS Linux"\nVERSION="7 (Core)"\nID="centos"\nID_LIKE="rhel fedora"\nVERSION_ID="7"\n'
etc 3 redhat-release 'Red Hat Enterprise Linux Server release 6.10 (Santiago)\n'
etc 4 lsb-release 'DISTRIB_ID=Ubuntu\nDISTRIB_RELEASE=10.04\nDISTRIB_CODENAME=lucid\n'
etc 5 SuSE-release 'SUSE Linux Enterprise Server 11 (x86_64)\nVERSION = 11\nPATCHLEVEL = 4\n'
etc 6 debian_version '6.0.10\n'
etc 7 default-grub 'GRUB_DEFAULT=0\nGRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX_DEFAULT="quiet"\nGRUB_CMDLINE_LINUX="console=hvc0 xencons=tty"\n'
etc 8 interfaces 'auto lo\niface lo inet loopback\nauto eth0\niface eth0 inet dhcp\n  hwaddress ether 00:16:3e:5a:12:34\n'
etc 9 persistent-net 'SUBSYSTEM=="net", ACTION=="add", ATTR{address}=="00:16:3e:5a:12:34", NAME="eth0"\n'
etc 10 blkid-tab '<device DEVNO="0x0801" TYPE="ext3">/dev/sda1</device>\n'
etc 11 sysconfig-kernel 'UPDATEDEFAULT=yes\nDEFAULTKERNEL=kernel-xen\n'
etc 12 grub2-cfg 'set default="0"\nmenuentry "CentOS" {\n\tlinux16 /boot/vmlinuz-2.6.18-398.el5 root=/dev/xvda1 ro console=hvc0\n\tinitrd16 /boot/initrd-2.6.18-398.el5.img\n}\n'
etc 13 modprobe-d 'alias scsi_hostadapter xen-blkfront\nalias eth0 xen-netfront\nblacklist i8xx_tco\n'
etc 14 initramfs-modules '# List of modules\nxen-blkfront\nxen-netfront\n'
etc 15 sysconfig-network 'NETWORKING=yes\nHOSTNAME=xen-guest\nGATEWAYDEV=eth0\n'

# LVM2: the head of a PV lvm2 itself wrote (a VG with a two-segment LV), cut to the label and
# its metadata area, and the metadata text alone.
seeds lvm-pv
seeds lvm-metadata
gunzip -c "$HERE/../Fixtures/lvm2-real-pv.head.gz" > pv.head
head -c 262144 pv.head > "$OUT/lvm-pv/lvm2-pv.head"
/usr/bin/python3 - "$OUT/lvm-pv/lvm2-pv.head" "$OUT/lvm-metadata/vg.txt" <<'PY'
import re, sys
data = open(sys.argv[1], "rb").read()
match = re.search(rb"[A-Za-z0-9_.+-]+ \{\n(?:[^\x00]*?)contents = [^\n]*\n[^\x00]*", data)
open(sys.argv[2], "wb").write(match.group(0).split(b"\x00")[0] if match else b"")
PY

# Nothing over the image targets' -max_len (5 MiB for vhdx): libFuzzer would only read its head.
find "$OUT" -path "$OUT/vhdx" -prune -o -type f -size +256k -printf 'make-seeds: warning: %p is over 256 KiB\n' >&2
find "$OUT/vhdx" -type f -size +5M -printf 'make-seeds: warning: %p is over 5 MiB\n' >&2
echo "$OUT"
