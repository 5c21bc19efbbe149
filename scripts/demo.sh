#!/usr/bin/env bash
# The main job on the built-in example: build a CentOS-5-like Xen instance copy, convert it to a
# bootable raw disk as an unprivileged user, and boot the result in qemu: its kernel has an EFI
# stub, so convert makes a disk for both firmwares (--firmware auto), booted here under SeaBIOS
# (BIOS) on virtio and IDE, and under OVMF (UEFI).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
swift build -c release
rehost="$(swift build -c release --show-bin-path)/rehost"

work="${REHOST_DEMO_DIR:-/tmp/rehost-demo}"
mkdir -p "$work"
chmod 0777 "$work"
echo "== building the example Xen instance copy in $work"
bash Fixtures/make-xen-instance.sh "$work"

# Run as nobody when we are root, to show that nothing here needs privileges.
as_user=()
if [ "$(id -u)" -eq 0 ]; then as_user=(setpriv --reuid=nobody --regid=nogroup --clear-groups --); fi

echo "== rehost inspect"
"${as_user[@]}" "$rehost" inspect "$work/xen-instance.img"
echo "== rehost convert"
rm -f "$work/centos5.raw"
"${as_user[@]}" "$rehost" convert "$work/xen-instance.img" -o "$work/centos5.raw"
echo "== booting $work/centos5.raw in qemu (TCG, about 15 s per boot)"
"${as_user[@]}" bash Fixtures/boot.sh "$work/centos5.raw" --bus virtio --log "$work/serial-virtio.log"
"${as_user[@]}" bash Fixtures/boot.sh "$work/centos5.raw" --bus ide --log "$work/serial-ide.log"
"${as_user[@]}" bash Fixtures/boot.sh "$work/centos5.raw" --bus virtio --firmware uefi --log "$work/serial-uefi.log"
