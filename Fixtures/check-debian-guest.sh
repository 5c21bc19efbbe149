#!/usr/bin/env bash
# Boot a guest made by make-debian-guest.sh straight from its kernel and initrd
# (qemu -kernel/-initrd, the image as a bare disk, -snapshot), to check the
# fixture itself: the guest's own Xen-only initrd must not find its root on
# virtio/IDE/AHCI, and the control initrd (MODULES=most, or dracut's generic
# image; built with the guest, never in it) must boot it to REHOST-BOOT-OK.
# This is not how converted disks are tested: those boot from their MBR (boot.sh).
# Exit 0 only on REHOST-BOOT-OK; 1 otherwise, reason first on stderr; 2 on bad usage.
set -euo pipefail

usage() {
    echo "usage: $0 ENVFILE [--initrd xen|control] [--bus virtio|ide|ahci] [--net none|virtio|e1000]" >&2
    echo "       [--root DEV] [--append ARGS] [--memory MIB] [--log FILE] [--timeout SECONDS]" >&2
    exit 2
}
die_usage() { echo "check-debian-guest: $*" >&2; usage; }

envfile=
which=control
bus=virtio
net=none
root=
extra=
memory=1024
log=
timeout_seconds=400
while [ $# -gt 0 ]; do
    case "$1" in
        --initrd) [ $# -ge 2 ] || usage; which=$2; shift 2 ;;
        --bus) [ $# -ge 2 ] || usage; bus=$2; shift 2 ;;
        --net) [ $# -ge 2 ] || usage; net=$2; shift 2 ;;
        --root) [ $# -ge 2 ] || usage; root=$2; shift 2 ;;
        --append) [ $# -ge 2 ] || usage; extra=$2; shift 2 ;;
        --memory) [ $# -ge 2 ] || usage; memory=$2; shift 2 ;;
        --log) [ $# -ge 2 ] || usage; log=$2; shift 2 ;;
        --timeout) [ $# -ge 2 ] || usage; timeout_seconds=$2; shift 2 ;;
        -h|--help) usage ;;
        -*) die_usage "unknown option $1" ;;
        *) [ -z "$envfile" ] || die_usage "more than one ENVFILE given"; envfile=$1; shift ;;
    esac
done
[ -n "$envfile" ] && [ -f "$envfile" ] || usage
case "$which" in xen|control) ;; *) die_usage "--initrd must be xen or control" ;; esac
case "$bus" in virtio|ide|ahci) ;; *) die_usage "--bus must be virtio, ide or ahci" ;; esac
case "$net" in none|virtio|e1000) ;; *) die_usage "--net must be none, virtio or e1000" ;; esac
case "$memory$timeout_seconds" in *[!0-9]*) die_usage "--memory and --timeout take whole numbers" ;; esac

# shellcheck disable=SC1090
. "$envfile"
kernel=$HOST_KERNEL
initrd=$HOST_INITRD
[ "$which" = xen ] || initrd=$HOST_CONTROL_INITRD
for f in "$IMAGE" "$kernel" "$initrd"; do
    [ -f "$f" ] || { echo "check-debian-guest: $f: no such file (rerun make-debian-guest.sh)" >&2; exit 1; }
done

machine=(-M pc)
case "$bus" in
    virtio) drive=(-drive "file=${IMAGE//,/,,},format=raw,if=virtio"); dev=/dev/vda ;;
    ide) drive=(-drive "file=${IMAGE//,/,,},format=raw,if=ide"); dev=/dev/sda ;;
    ahci) machine=(-M q35)
          drive=(-drive "file=${IMAGE//,/,,},format=raw,if=none,id=d0" -device ide-hd,drive=d0,bus=ide.0)
          dev=/dev/sda ;;
esac
case "$net" in
    none) nic=(-nic none) ;;
    virtio) nic=(-netdev user,id=n0 -device virtio-net-pci,netdev=n0,romfile=) ;;
    e1000) nic=(-netdev user,id=n0 -device e1000,netdev=n0,romfile=) ;;
esac
# A root that never comes must end the run, not wait at a shell: initramfs-tools
# reboots on panic=, dracut powers off on rd.emergency= (-no-reboot makes both exit).
append="root=${root:-$dev} console=ttyS0 panic=10 rd.shell=0 rd.emergency=poweroff rd.timeout=60${extra:+ $extra}"

[ -n "$log" ] || log=$(mktemp "${TMPDIR:-/tmp}/rehost-check.XXXXXX.log")
: > "$log"
echo "check-debian-guest: $SUITE/$INITRD_TOOL, $which initrd, $bus ($dev), net $net, '$append', serial log $log"
start=$(date +%s)
status=0
timeout --kill-after=5 "$timeout_seconds" \
    qemu-system-x86_64 -accel tcg -nographic -no-reboot -snapshot "${machine[@]}" -m "$memory" \
        "${nic[@]}" -monitor none -serial "file:$log" \
        -kernel "$kernel" -initrd "$initrd" -append "$append" "${drive[@]}" \
    < /dev/null > "$log.qemu" 2>&1 || status=$?
elapsed=$(( $(date +%s) - start ))
grep -ao 'REHOST-GUEST:.*' "$log" | tr -d '\r' || true
if grep -aq '^REHOST-BOOT-OK' "$log"; then
    echo "check-debian-guest: REHOST-BOOT-OK after ${elapsed}s"
    rm -f "$log.qemu"
    exit 0
fi
reason="the guest stopped after ${elapsed}s"
[ "$status" -ne 124 ] && [ "$status" -ne 137 ] || reason="timed out after ${timeout_seconds}s"
# initramfs-tools' ALERT! line names the device; prefer it to the line before.
cause=$( (grep -a -m 1 -E 'ALERT!' "$log" || grep -a -m 1 -E 'Gave up waiting for root|Timed out waiting for device .*(vda|sda|xvda1|by-uuid|by-label)|Kernel panic|Unable to mount root|Entering emergency mode|Emergency shell|Could not boot|does not exist' "$log") \
    | sed 's/\x1b\[[0-9;]*[a-zA-Z]//g' | tr -d '\r' || true)
[ -z "$cause" ] || reason="$reason; log says: $cause"
echo "check-debian-guest: FAILED: no REHOST-BOOT-OK ($reason)" >&2
tail -n 10 "$log.qemu" >&2
rm -f "$log.qemu"
exit 1
