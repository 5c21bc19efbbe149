#!/usr/bin/env bash
# Build OUTDIR/lvm-guest.img: the Xen fixture guest (make-xen-instance.sh) laid out as a RHEL/CentOS
# install does it, on a partitioned disk with LVM2:
#   partition 1 (0x83, bootable)  ext3 "/boot"       the guest's /boot (kernels, initrds)
#   partition 2 (0x8e)            LVM2 PV of VolGroup00:
#                                   LogVol00  ext3   /   (everything else; /boot an empty mount point)
#                                   LogVol01  swap
# fstab: /dev/VolGroup00/LogVol00 /, LABEL=/boot /boot, /dev/VolGroup00/LogVol01 swap.
# With --separate-var, OUTDIR/lvm-var-guest.img: the same, plus partition 3 (0x83) holding /var,
# and fstab naming /dev/mapper/VolGroup00-LogVol00 for /, UUID= for /boot and swap, /dev/sda3 for /var.
# With --all-lvm, OUTDIR/lvm-only-guest.img: one partition (0x8e), the PV, and /boot inside the
# root LV: no partition holds a filesystem itself. Its root LV is in two segments (extents 0-23,
# then 28-51 after the swap LV, as an lvextend leaves it), so it is not one run of the disk.
# With --two-disks, the layout of the first and VolGroup00 spread over two disks:
# OUTDIR/lvm-two-guest.img (as lvm-guest.img, PV pv0) and OUTDIR/lvm-two-guest-disk2.img (one
# 0x8e partition, PV pv1, holding LogVol02: ext3 /home, named /dev/VolGroup00/LogVol02 in fstab).
# The LVM2 metadata is written by Fixtures/lvm2-write.py (no lvm2 tools, loop device or root).
# Writes OUTDIR/NAME.env with the layout (offsets, UUIDs) for the tests.
set -euo pipefail

usage() { echo "usage: $0 OUTDIR [--separate-var | --all-lvm | --two-disks]" >&2; exit 2; }
die() { echo "make-lvm-guest: error: $*" >&2; exit 1; }
note() { echo "make-lvm-guest: $*" >&2; }

VAR=0 ONLY=0 TWO=0
if [ $# -eq 2 ] && [ "$2" = --separate-var ]; then VAR=1; set -- "$1"; fi
if [ $# -eq 2 ] && [ "$2" = --all-lvm ]; then ONLY=1; set -- "$1"; fi
if [ $# -eq 2 ] && [ "$2" = --two-disks ]; then TWO=1; set -- "$1"; fi
[ $# -eq 1 ] || usage
case "$1" in -h|--help|-*) usage ;; esac
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mkdir -p "$1"
OUTDIR=$(cd "$1" && pwd)
export PATH="$PATH:/usr/sbin:/sbin"
for tool in mke2fs debugfs sfdisk mkswap python3; do
    command -v "$tool" >/dev/null || die "$tool not found (install e2fsprogs, fdisk, util-linux, python3)"
done

# REHOST_XEN_INSTANCE names an xen-instance.img already built (the tests build it once and share it).
if [ -n "${REHOST_XEN_INSTANCE:-}" ]; then
    SOURCE=$REHOST_XEN_INSTANCE
    [ -f "$SOURCE" ] || die "REHOST_XEN_INSTANCE=$SOURCE: no such file"
else
    bash "$HERE/make-xen-instance.sh" "$OUTDIR" >&2
    SOURCE=$OUTDIR/xen-instance.img
fi

NAME=lvm-guest
[ "$VAR" = 0 ] || NAME=lvm-var-guest
[ "$ONLY" = 0 ] || NAME=lvm-only-guest
[ "$TWO" = 0 ] || NAME=lvm-two-guest
HOME_UUID=5b9d3e1f-2c4a-4b6d-8e0f-1a2b3c4d5e6f
IMAGE=$OUTDIR/$NAME.img
ENVFILE=$OUTDIR/$NAME.env
WORK=$(mktemp -d "$OUTDIR/.lvm-guest-work.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
INSTALL_EPOCH=1402565400
BOOT_UUID=6c0f1c2a-9b1e-4d55-a3f0-2b7d8e91c4a1
ROOT_UUID=0e5b8f3d-7a64-4c21-b9d8-5f1e2a3c4d5e
VAR_UUID=a4c7e2f1-3b8d-4e96-8a10-c5d2f7e9b384
SWAP_UUID=11111111-2222-4333-8444-555555555555
MIB=$((1024 * 1024))

# The guest's tree, from the Xen fixture (debugfs rdump copies files, directories and symlinks;
# device nodes, FIFOs and sockets are left out, and as non-root the owner is the caller).
note "extracting the guest tree"
mkdir -p "$WORK/root"
debugfs -R "rdump / $WORK/root" "$SOURCE" >/dev/null 2>&1 || true
[ -f "$WORK/root/etc/inittab" ] && [ -d "$WORK/root/boot" ] || die "rdump of $SOURCE failed"
rm -rf "$WORK/root/lost+found"
if [ "$ONLY" = 0 ]; then
    mv "$WORK/root/boot" "$WORK/boot"
    mkdir "$WORK/root/boot"
fi
if [ "$VAR" = 1 ]; then
    mv "$WORK/root/var" "$WORK/var"
    mkdir "$WORK/root/var"
fi
if [ "$TWO" = 1 ]; then
    mv "$WORK/root/home" "$WORK/home"
    mkdir "$WORK/root/home"
fi
if [ "$ONLY" = 1 ]; then
    ROOT_DEV=/dev/mapper/VolGroup00-LogVol00 BOOT_DEV= SWAP_DEV=/dev/VolGroup00/LogVol01
elif [ "$VAR" = 0 ]; then
    ROOT_DEV=/dev/VolGroup00/LogVol00 BOOT_DEV=LABEL=/boot SWAP_DEV=/dev/VolGroup00/LogVol01
else
    ROOT_DEV=/dev/mapper/VolGroup00-LogVol00 BOOT_DEV=UUID=$BOOT_UUID SWAP_DEV=UUID=$SWAP_UUID
fi
{
    echo "# /etc/fstab: a RHEL 5 install on LVM, moved to a Xen cloud"
    printf '%s\t/\text3\tdefaults\t1 1\n' "$ROOT_DEV"
    [ "$ONLY" = 1 ] || printf '%s\t/boot\text3\tdefaults\t1 2\n' "$BOOT_DEV"
    [ "$VAR" = 0 ] || printf '/dev/sda3\t/var\text3\tdefaults\t1 2\n'
    [ "$TWO" = 0 ] || printf '/dev/VolGroup00/LogVol02\t/home\text3\tdefaults\t1 2\n'
    printf 'tmpfs\t/dev/shm\ttmpfs\tdefaults\t0 0\n'
    printf 'devpts\t/dev/pts\tdevpts\tgid=5,mode=620\t0 0\n'
    printf 'sysfs\t/sys\tsysfs\tdefaults\t0 0\n'
    printf 'proc\t/proc\tproc\tdefaults\t0 0\n'
    printf '%s\tswap\tswap\tdefaults\t0 0\n' "$SWAP_DEV"
} > "$WORK/root/etc/fstab"
find "$WORK/root" $([ "$ONLY" = 1 ] || echo "$WORK/boot") -exec touch -h -d "@$INSTALL_EPOCH" {} +
[ "$VAR" = 0 ] || find "$WORK/var" -exec touch -h -d "@$INSTALL_EPOCH" {} +
[ "$TWO" = 0 ] || find "$WORK/home" -exec touch -h -d "@$INSTALL_EPOCH" {} +

mkfs() { # label uuid tree file size-MiB
    E2FSPROGS_FAKE_TIME=$INSTALL_EPOCH mke2fs -q -F -t ext3 \
        -O none,has_journal,ext_attr,resize_inode,dir_index,filetype,sparse_super,large_file \
        -b 1024 -I 128 -L "$1" -U "$2" -E root_owner=0:0 -d "$3" "$4" "${5}M" 2>&1 \
        | { grep -vE '^Creating regular file|128-byte inodes cannot handle dates' >&2 || true; }
}
note "creating the filesystems"
[ "$ONLY" = 1 ] || mkfs /boot "$BOOT_UUID" "$WORK/boot" "$WORK/boot.ext3" 64
mkfs / "$ROOT_UUID" "$WORK/root" "$WORK/root.ext3" 192
[ "$VAR" = 0 ] || mkfs "" "$VAR_UUID" "$WORK/var" "$WORK/var.ext3" 96
[ "$TWO" = 0 ] || mkfs "" "$HOME_UUID" "$WORK/home" "$WORK/home.ext3" 32
truncate -s 16M "$WORK/swap"
mkswap -U "$SWAP_UUID" "$WORK/swap" >/dev/null 2>&1

# Partitions (MiB): 1 at 1 (64), 2 at 65 (216: 1 MiB of LVM2 metadata and 53 extents of 4 MiB),
# 3 at 281 (96) with --separate-var.
P1=1 P1_SIZE=64 P2=65 P2_SIZE=216 P3=281 P3_SIZE=96
[ "$ONLY" = 0 ] || P2=1
DISK_MIB=$((P2 + P2_SIZE + 1)); [ "$VAR" = 0 ] || DISK_MIB=$((P3 + P3_SIZE + 1))
rm -f "$IMAGE.tmp"
truncate -s "${DISK_MIB}M" "$IMAGE.tmp"
{
    echo "label: dos"
    echo "label-id: 0x5eed1e55"
    [ "$ONLY" = 1 ] || echo "start=$((P1 * 2048)), size=$((P1_SIZE * 2048)), type=83, bootable"
    echo "start=$((P2 * 2048)), size=$((P2_SIZE * 2048)), type=8e"
    [ "$VAR" = 0 ] || echo "start=$((P3 * 2048)), size=$((P3_SIZE * 2048)), type=83"
} | sfdisk -q "$IMAGE.tmp" >/dev/null
if [ "$ONLY" = 1 ]; then
    lvs=$(python3 "$HERE/lvm2-write.py" "$IMAGE.tmp" --offset $((P2 * MIB)) --size $((P2_SIZE * MIB)) \
          --vg VolGroup00 --lv LogVol00:24+24 --lv LogVol01:4 --device /dev/sda1)
elif [ "$TWO" = 0 ]; then
    lvs=$(python3 "$HERE/lvm2-write.py" "$IMAGE.tmp" --offset $((P2 * MIB)) --size $((P2_SIZE * MIB)) \
          --vg VolGroup00 --lv LogVol00:48 --lv LogVol01:4 --device /dev/sda2)
else
    # LVs are given to the PVs in turn: LogVol00 on pv0, LogVol02 on pv1, LogVol01 on pv0.
    D2_SIZE=41
    TWO_PVS=(--vg VolGroup00 --pvs 2 --pv-size $((P2_SIZE * MIB)) --pv-size $((D2_SIZE * MIB)) --lv LogVol00:48 --lv LogVol02:8 --lv LogVol01:4)
    lvs=$(python3 "$HERE/lvm2-write.py" "$IMAGE.tmp" --offset $((P2 * MIB)) --size $((P2_SIZE * MIB)) --pv-index 0 "${TWO_PVS[@]}")
    DISK2=$OUTDIR/$NAME-disk2.img
    rm -f "$DISK2.tmp"
    truncate -s $(((D2_SIZE + 2) * MIB)) "$DISK2.tmp"
    printf 'label: dos\nlabel-id: 0x5eed1e56\nstart=2048, size=%d, type=8e\n' $((D2_SIZE * 2048)) | sfdisk -q "$DISK2.tmp" >/dev/null
    HOME_OFFSET=$(python3 "$HERE/lvm2-write.py" "$DISK2.tmp" --offset "$MIB" --size $((D2_SIZE * MIB)) --pv-index 1 "${TWO_PVS[@]}" \
                  | awk '$1 == "LogVol02" { print $2 }')
    dd if="$WORK/home.ext3" of="$DISK2.tmp" bs=1M oflag=seek_bytes seek="$HOME_OFFSET" conv=notrunc,sparse status=none
    mv "$DISK2.tmp" "$DISK2"
fi
ROOT_OFFSET=$(echo "$lvs" | awk '$1 == "LogVol00" { print $2 }')
SWAP_OFFSET=$(echo "$lvs" | awk '$1 == "LogVol01" { print $2 }')
put() { dd if="$1" of="$IMAGE.tmp" bs=1M oflag=seek_bytes seek="$2" conv=notrunc,sparse status=none; }
[ "$ONLY" = 1 ] || put "$WORK/boot.ext3" $((P1 * MIB))
if [ "$ONLY" = 1 ]; then
    first=$(echo "$lvs" | awk '$1 == "LogVol00" { print $3 }')
    second_at=$(echo "$lvs" | awk '$1 == "LogVol00#2" { print $2 }')
    dd if="$WORK/root.ext3" of="$IMAGE.tmp" bs=1M iflag=count_bytes count="$first" oflag=seek_bytes seek="$ROOT_OFFSET" \
        conv=notrunc,sparse status=none
    dd if="$WORK/root.ext3" of="$IMAGE.tmp" bs=1M iflag=skip_bytes skip="$first" oflag=seek_bytes seek="$second_at" \
        conv=notrunc,sparse status=none
else
    put "$WORK/root.ext3" "$ROOT_OFFSET"
fi
put "$WORK/swap" "$SWAP_OFFSET"
[ "$VAR" = 0 ] || put "$WORK/var.ext3" $((P3 * MIB))
mv "$IMAGE.tmp" "$IMAGE"

cat > "$ENVFILE" <<EOT
IMAGE=$IMAGE
SOURCE=$SOURCE
BOOT_OFFSET=$([ "$ONLY" = 1 ] || echo $((P1 * MIB)))
BOOT_UUID=$BOOT_UUID
ROOT_OFFSET=$ROOT_OFFSET
ROOT_UUID=$ROOT_UUID
SWAP_OFFSET=$SWAP_OFFSET
VAR_OFFSET=$([ "$VAR" = 0 ] || echo $((P3 * MIB)))
VAR_UUID=$([ "$VAR" = 0 ] || echo "$VAR_UUID")
DISK2=$([ "$TWO" = 0 ] || echo "$DISK2")
HOME_OFFSET=$([ "$TWO" = 0 ] || echo "$HOME_OFFSET")
HOME_UUID=$([ "$TWO" = 0 ] || echo "$HOME_UUID")
ROOT_DEV=$ROOT_DEV
BOOT_DEV=$BOOT_DEV
EOT
note "wrote $IMAGE and $ENVFILE"
