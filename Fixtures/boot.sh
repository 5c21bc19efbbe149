#!/usr/bin/env bash
# Boot a disk image under qemu (TCG) from its own MBR (SeaBIOS) or, with
# --firmware uefi, its own EFI System Partition (OVMF, OVMF_CODE_4M.fd with a
# fresh copy of OVMF_VARS_4M.fd per boot), with the serial console in a log
# file, and report whether the fixture guest printed REHOST-BOOT-OK.
# Exit 0 only on REHOST-BOOT-OK; exit 1 on any boot failure; 2 on bad usage.
# stdout: progress and the guest's REHOST-GUEST lines. stderr: on failure, the
# reason as its first line, then the tail of the serial log.
set -euo pipefail

usage() {
    echo "usage: $0 DISK [--format raw|qcow2|vmdk|vdi|vpc|vhdx] [--bus ide|virtio|ahci] [--net none|virtio|e1000]" >&2
    echo "       [--memory MIB] [--log FILE] [--timeout SECONDS] [--writable] [--seed-disk IMAGE]" >&2
    echo "       [--firmware bios|uefi]" >&2
    exit 2
}
die_usage() { echo "boot.sh: $*" >&2; usage; }

disk=
format=
bus=ide
net=none
memory=512
log=
timeout_seconds=180
# --writable: the guest's writes reach the disk (no -snapshot), for tests that boot twice.
snapshot=(-snapshot)
seed_disk=
firmware=bios
while [ $# -gt 0 ]; do
    case "$1" in
        --format) [ $# -ge 2 ] || usage; format=$2; shift 2 ;;
        --bus) [ $# -ge 2 ] || usage; bus=$2; shift 2 ;;
        --net) [ $# -ge 2 ] || usage; net=$2; shift 2 ;;
        --memory) [ $# -ge 2 ] || usage; memory=$2; shift 2 ;;
        --log) [ $# -ge 2 ] || usage; log=$2; shift 2 ;;
        --timeout) [ $# -ge 2 ] || usage; timeout_seconds=$2; shift 2 ;;
        --writable) snapshot=(); shift ;;
        --firmware) [ $# -ge 2 ] || usage; firmware=$2; shift 2 ;;
        # A second, read-only virtio disk (a NoCloud seed ISO): the initrd Rehost repairs loads
        # virtio_blk, so the guest's generators (cloud-init's ds-identify) see it at once; a
        # CD-ROM drive needs sr_mod, which only the root filesystem's udev loads, too late.
        --seed-disk) [ $# -ge 2 ] || usage; seed_disk=$2; shift 2 ;;
        -h|--help) usage ;;
        -*) die_usage "unknown option $1" ;;
        *) [ -z "$disk" ] || die_usage "more than one DISK given"; disk=$1; shift ;;
    esac
done
[ -n "$disk" ] || usage
[ -f "$disk" ] || { echo "boot.sh: $disk: no such file" >&2; exit 2; }
if [ -z "$format" ]; then
    # Guess from the extension; anything else is taken as raw.
    case "$disk" in
        *.qcow2) format=qcow2 ;;
        *.vmdk) format=vmdk ;;
        *.vdi) format=vdi ;;
        *.vhd) format=vpc ;;
        *.vhdx) format=vhdx ;;
        *) format=raw ;;
    esac
fi
case "$format" in raw|qcow2|vmdk|vdi|vpc|vhdx) ;; *) die_usage "--format must be raw, qcow2, vmdk, vdi, vpc (VHD) or vhdx, not '$format'" ;; esac
case "$bus" in ide|virtio|ahci) ;; *) die_usage "--bus must be ide, virtio or ahci, not '$bus'" ;; esac
case "$firmware" in bios|uefi) ;; *) die_usage "--firmware must be bios or uefi, not '$firmware'" ;; esac
case "$net" in none|virtio|e1000) ;; *) die_usage "--net must be none, virtio or e1000, not '$net'" ;; esac
case "$memory" in ''|*[!0-9]*) die_usage "--memory must be a whole number of MiB, not '$memory'" ;; esac
case "$timeout_seconds" in ''|*[!0-9]*) die_usage "--timeout must be a whole number of seconds, not '$timeout_seconds'" ;; esac
command -v qemu-system-x86_64 >/dev/null || { echo "boot.sh: qemu-system-x86_64 not found (apt-get install qemu-system-x86)" >&2; exit 1; }

if [ -z "$log" ]; then
    log=$(mktemp "${TMPDIR:-/tmp}/rehost-boot.XXXXXX.log")
fi
: > "$log"
# qemu's file=, option syntax treats commas specially: double them.
disk_option=${disk//,/,,}
machine=(-M pc)
case "$bus" in
    ide|virtio) drive=(-drive "file=$disk_option,format=$format,if=$bus") ;;
    # q35's built-in ICH9 AHCI controller (00:1f.2) has ports ide.0 to ide.5;
    # the guest needs ahci + libahci + libata + sd_mod and sees /dev/sda.
    ahci) machine=(-M q35)
          drive=(-drive "file=$disk_option,format=$format,if=none,id=d0" -device ide-hd,drive=d0,bus=ide.0) ;;
esac
seed_drive=()
if [ -n "$seed_disk" ]; then
    [ -f "$seed_disk" ] || { echo "boot.sh: $seed_disk: no such file" >&2; exit 2; }
    seed_drive=(-drive "file=${seed_disk//,/,,},format=raw,if=virtio,readonly=on")
fi
# User-mode networking (DHCP gives the guest 10.0.2.15). romfile= drops the
# NIC's PXE ROM, so SeaBIOS never tries a network boot after a bad disk.
case "$net" in
    none) nic=(-nic none) ;;
    virtio) nic=(-netdev user,id=n0 -device virtio-net-pci,netdev=n0,romfile=) ;;
    e1000) nic=(-netdev user,id=n0 -device e1000,netdev=n0,romfile=) ;;
esac

# OVMF: the code read-only, the variables a copy (the firmware writes its boot
# entries there), removed on exit.
firmware_drives=()
if [ "$firmware" = uefi ]; then
    ovmf_code=/usr/share/OVMF/OVMF_CODE_4M.fd ovmf_vars=/usr/share/OVMF/OVMF_VARS_4M.fd
    [ -f "$ovmf_code" ] && [ -f "$ovmf_vars" ] || { echo "boot.sh: $ovmf_code or $ovmf_vars missing (apt-get install ovmf)" >&2; exit 1; }
    vars_copy=$(mktemp "${TMPDIR:-/tmp}/rehost-ovmf-vars.XXXXXX.fd")
    trap 'rm -f "$vars_copy"' EXIT
    cp "$ovmf_vars" "$vars_copy"
    firmware_drives=(-drive "if=pflash,format=raw,readonly=on,file=$ovmf_code" -drive "if=pflash,format=raw,file=${vars_copy//,/,,}")
fi

echo "boot.sh: booting $disk ($format, $bus, net $net, ${memory} MiB) with $firmware firmware, timeout ${timeout_seconds}s, serial log $log"
start=$(date +%s)
status=0
# -snapshot keeps the disk unchanged; -nic none (or a NIC without its ROM)
# stops SeaBIOS from trying PXE after a disk that does not boot; -boot c
# insists on the hard disk.
timeout --kill-after=5 "$timeout_seconds" \
    qemu-system-x86_64 -accel tcg -nographic -no-reboot "${snapshot[@]}" "${machine[@]}" -m "$memory" \
        "${nic[@]}" -boot c -monitor none -serial "file:$log" \
        "${firmware_drives[@]}" "${drive[@]}" "${seed_drive[@]}" \
    < /dev/null > "$log.qemu" 2>&1 || status=$?
elapsed=$(( $(date +%s) - start ))

# Every REHOST-GUEST line, wherever it starts (systemd's status output can
# share a line with it on a shared console).
grep -ao 'REHOST-GUEST:.*' "$log" | tr -d '\r' || true
if grep -aq '^REHOST-BOOT-OK' "$log"; then
    echo "boot.sh: REHOST-BOOT-OK after ${elapsed}s"
    rm -f "$log.qemu"
    exit 0
fi

if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
    reason="timed out after ${timeout_seconds}s"
elif [ "$status" -ne 0 ]; then
    reason="qemu exited with status $status"
else
    reason="the guest stopped after ${elapsed}s"
fi
# Name the first recognisable cause found in the serial log.
# initramfs-tools' ALERT! line names the device; prefer it to "Gave up waiting".
cause=$( (grep -a -m 1 -E 'ALERT!' "$log" || grep -a -m 1 -E 'REHOST-INITRD-FAIL|Kernel panic|No bootable device|not a bootable disk|error: |grub rescue>|Unable to mount root|ALERT!|Gave up waiting for root|Timed out waiting for device|Emergency shell|emergency mode' "$log") | sed 's/\x1b\[[0-9;]*[a-zA-Z]//g' | tr -d '\r' || true)
[ -z "$cause" ] || reason="$reason; log says: $cause"
echo "boot.sh: FAILED: no REHOST-BOOT-OK ($reason)" >&2
if [ -s "$log.qemu" ]; then
    echo "boot.sh: qemu said:" >&2
    tail -n 10 "$log.qemu" >&2
fi
echo "boot.sh: last 30 lines of $log:" >&2
tail -n 30 "$log" | tr -d '\r' >&2
rm -f "$log.qemu"
exit 1
