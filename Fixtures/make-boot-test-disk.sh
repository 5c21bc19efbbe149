#!/usr/bin/env bash
# Build OUTDIR/boot-test-disk.raw: a reference "converted" disk made by hand, to
# check boot.sh (and to compare the converter against). It is the Xen fixture
# filesystem copied into an MBR partition at 1 MiB, plus a native GRUB 2
# grub.cfg, with boot.img and core.img written as raw bytes (no grub-install).
# Needs OUTDIR/xen-instance.img from make-xen-instance.sh. Runs unprivileged.
# With --env, the same for another fixture (e.g. a make-debian-guest.sh .env),
# written to OUTDIR/<env name>-boot-test.raw; --initrd replaces the guest's
# initrd by a host file first (a hand-repaired or control initrd).
set -euo pipefail

die() { echo "make-boot-test-disk: error: $*" >&2; exit 1; }
usage() { echo "usage: $0 OUTDIR [--env ENVFILE] [--initrd FILE]  (default ENVFILE: OUTDIR/xen-instance.env)" >&2; exit 2; }
[ $# -ge 1 ] || usage
OUTDIR=$(cd "$1" && pwd)
shift
envfile=$OUTDIR/xen-instance.env
new_initrd=
while [ $# -gt 0 ]; do
    case "$1" in
        --env) [ $# -ge 2 ] || usage; envfile=$2; shift 2 ;;
        --initrd) [ $# -ge 2 ] || usage; new_initrd=$2; shift 2 ;;
        *) usage ;;
    esac
done
[ -f "$envfile" ] || die "$envfile missing: run make-xen-instance.sh $OUTDIR first"
[ -z "$new_initrd" ] || [ -f "$new_initrd" ] || die "$new_initrd: no such file"
# shellcheck source=/dev/null
. "$envfile"
GRUB_DIR=/usr/lib/grub/i386-pc
[ -f "$GRUB_DIR/boot.img" ] || die "$GRUB_DIR/boot.img missing (apt-get install grub-pc-bin)"
for tool in grub-mkimage sfdisk debugfs e2fsck; do
    command -v "$tool" >/dev/null || die "$tool not found"
done

PART_START_SECTORS=2048
DISK=$OUTDIR/boot-test-disk.raw
[ "$envfile" -ef "$OUTDIR/xen-instance.env" ] || DISK=$OUTDIR/$(basename "$envfile" .env)-boot-test.raw
WORK=$(mktemp -d "$OUTDIR/.boot-test-disk.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

fs_bytes=$(stat -c %s "$IMAGE")
rm -f "$DISK.tmp"
truncate -s $((PART_START_SECTORS * 512 + fs_bytes)) "$DISK.tmp"
echo "start=$PART_START_SECTORS, type=83, bootable" | sfdisk -q --label dos "$DISK.tmp"
dd if="$IMAGE" of="$DISK.tmp" bs=1M seek=1 conv=notrunc,sparse status=none

cat > "$WORK/grub.cfg" <<EOF
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
set timeout=1
set default=0
menuentry 'rehost boot test ($KERNEL_VERSION)' {
    linux $KERNEL_PATH root=UUID=$FS_UUID ro console=tty0 console=ttyS0
    initrd $INITRD_PATH
}
EOF
offset=$((PART_START_SECTORS * 512))
# debugfs write copies the local owner: give the files back to root.
printf '%s\n' "mkdir /boot/grub" "write $WORK/grub.cfg /boot/grub/grub.cfg" \
    "sif /boot/grub uid 0" "sif /boot/grub gid 0" "sif /boot/grub/grub.cfg uid 0" "sif /boot/grub/grub.cfg gid 0" \
    > "$WORK/debugfs.cmds"
if [ -n "$new_initrd" ]; then
    printf '%s\n' "rm $INITRD_PATH" "write $new_initrd $INITRD_PATH" "sif $INITRD_PATH uid 0" "sif $INITRD_PATH gid 0" \
        "sif $INITRD_PATH mode 0100644" >> "$WORK/debugfs.cmds"
fi
debugfs -w -f "$WORK/debugfs.cmds" "$DISK.tmp?offset=$offset" >/dev/null 2>&1
debugfs -R "cat /boot/grub/grub.cfg" "$DISK.tmp?offset=$offset" 2>/dev/null | grep -q "root=UUID=$FS_UUID" \
    || die "could not write /boot/grub/grub.cfg into the partition"
if [ -n "$new_initrd" ]; then
    debugfs -R "dump $INITRD_PATH $WORK/initrd.check" "$DISK.tmp?offset=$offset" >/dev/null 2>&1
    cmp -s "$WORK/initrd.check" "$new_initrd" || die "could not replace $INITRD_PATH in the partition"
fi
e2fsck -fn "$DISK.tmp?offset=$offset" >/dev/null 2>&1 || die "partition filesystem is not clean after adding grub.cfg"

grub-mkimage -O i386-pc -o "$WORK/core.img" -p '(hd0,msdos1)/boot/grub' \
    biosdisk part_msdos ext2 normal linux configfile search serial terminal echo test boot
core_sectors=$(( ($(stat -c %s "$WORK/core.img") + 511) / 512 ))
[ "$core_sectors" -lt "$PART_START_SECTORS" ] || die "core.img ($core_sectors sectors) does not fit before the partition"
# Boot code only: bytes 440-511 hold the disk signature and partition table.
dd if="$GRUB_DIR/boot.img" of="$DISK.tmp" bs=440 count=1 conv=notrunc status=none
dd if="$WORK/core.img" of="$DISK.tmp" bs=512 seek=1 conv=notrunc status=none
mv "$DISK.tmp" "$DISK"
echo "make-boot-test-disk: wrote $DISK (core.img $core_sectors sectors)"
