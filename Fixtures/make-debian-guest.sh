#!/usr/bin/env bash
# Build OUTDIR/<name>.img: a bare ext4 filesystem holding a real, minimal Debian
# guest shaped like a Xen PV domU (systemd, udev, Debian's kernel, an initrd
# with only the Xen block driver, /dev/xvda1 in fstab, a getty on hvc0), plus
# OUTDIR/<name>.env describing it. The guest is installed by mmdebstrap and its
# initrd is built by the guest's own initramfs-tools or dracut, in the chroot.
# A report service writes REHOST-GUEST lines to /dev/ttyS0 once the boot is
# finished, then powers off. Needs root (mmdebstrap --mode=root, chroot).
# See Fixtures/README.md for what the guest contains and why.
set -euo pipefail

usage() {
    echo "usage: $0 OUTDIR [--suite bookworm|trixie|...] [--initrd-tool initramfs-tools|dracut] [--cloud-init]" >&2
    exit 2
}
die() { echo "make-debian-guest: error: $*" >&2; exit 1; }
note() { echo "make-debian-guest: $*" >&2; }

outdir=
SUITE=bookworm
INITRD_TOOL=initramfs-tools
# --cloud-init: also install Debian's cloud-init and sudo (with no datasource seeded: the tests
# give the guest a NoCloud seed or an OpenNebula context through Rehost). The name gets "-cloud-init".
CLOUD_INIT=
while [ $# -gt 0 ]; do
    case "$1" in
        --suite) [ $# -ge 2 ] || usage; SUITE=$2; shift 2 ;;
        --initrd-tool) [ $# -ge 2 ] || usage; INITRD_TOOL=$2; shift 2 ;;
        --cloud-init) CLOUD_INIT=1; shift ;;
        -h|--help) usage ;;
        -*) echo "make-debian-guest: unknown option $1" >&2; usage ;;
        *) [ -z "$outdir" ] || usage; outdir=$1; shift ;;
    esac
done
[ -n "$outdir" ] || usage
case "$INITRD_TOOL" in initramfs-tools|dracut) ;; *) die "--initrd-tool must be initramfs-tools or dracut, not '$INITRD_TOOL'" ;; esac
case "$SUITE" in ''|*[!a-z]*) die "--suite must be a Debian codename such as bookworm, not '$SUITE'" ;; esac

# One line saying what is missing, so a test suite can report why it skipped.
[ "$(id -u)" -eq 0 ] || die "needs root (mmdebstrap --mode=root and chroot); run as root, or skip the real-guest tests"
export PATH="$PATH:/usr/sbin:/sbin"
for tool in mmdebstrap mke2fs e2fsck dumpe2fs debugfs apt-get apt-cache sha256sum; do
    command -v "$tool" >/dev/null || die "$tool not found (run scripts/install-deps.sh: mmdebstrap, e2fsprogs, apt)"
done

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SELF=$HERE/$(basename "${BASH_SOURCE[0]}")
mkdir -p "$outdir"
OUTDIR=$(cd "$outdir" && pwd)
CACHE=${REHOST_GUEST_CACHE:-/var/cache/rehost/guests}
mkdir -p "$CACHE"
MIRROR=${REHOST_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${REHOST_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}

NAME=debian-$SUITE-$INITRD_TOOL${CLOUD_INIT:+-cloud-init}
IMAGE=$OUTDIR/$NAME.img
ENVFILE=$OUTDIR/$NAME.env

# Fixed identity, so the filesystem metadata is the same on every build.
FS_LABEL=xen-root
FS_UUID=5e2d8c41-7a3b-4f19-b6d0-2c9e81f4a7d5
FS_HASH_SEED=0b7f3e2a-94c1-4d85-a6e3-51d2c8f09b47
# 2024-01-01 00:00:00 UTC: mke2fs's times, and the latest file time in the image.
SOURCE_DATE_EPOCH=1704067200
export SOURCE_DATE_EPOCH

case "$INITRD_TOOL" in
    initramfs-tools) initrd_packages="initramfs-tools,busybox,zstd" ;;
    dracut) initrd_packages="dracut" ;;
esac
case "$SUITE" in
    # isc-dhcp-client is what ifupdown uses for "inet dhcp" up to trixie.
    *) dhcp_package=isc-dhcp-client ;;
esac
PACKAGES="systemd,systemd-sysv,udev,kmod,linux-image-amd64,$initrd_packages,ifupdown,$dhcp_package,iproute2,e2fsprogs"
# sudo: cloud-init's OpenNebula datasource parses context.sh as `sudo -u nobody bash`.
[ -z "$CLOUD_INIT" ] || PACKAGES="$PACKAGES,cloud-init,sudo"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/make-debian-guest.XXXXXX")
cleanup() {
    # mmdebstrap unmounts what it mounted; refuse to delete through a mount.
    if [ -d "$WORK/root" ] && grep -q " $WORK/root" /proc/mounts; then
        note "leaving $WORK: something is still mounted under it"
        return
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# ------------------------------------------------- resolve package versions ---
# A private apt state for the suite (kept in the cache; refreshed with
# If-Modified-Since, so a second run costs a few requests) tells us which kernel
# and tool versions a build would get, for the cache key.
APTDIR=$CACHE/apt-$SUITE
mkdir -p "$APTDIR/lists/partial" "$APTDIR/archives/partial" "$APTDIR/sources.list.d"
# As an installed system has them: the release, its updates and its security
# updates (where Debian's current kernel package comes from).
SOURCES=("deb $MIRROR $SUITE main" "deb $MIRROR $SUITE-updates main" "deb $SECURITY_MIRROR $SUITE-security main")
printf '%s\n' "${SOURCES[@]}" | sed 's|^deb |deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] |' > "$APTDIR/sources.list"
: > "$APTDIR/status"
apt_opts=(-o "Dir::Etc::SourceList=$APTDIR/sources.list" -o "Dir::Etc::SourceParts=$APTDIR/sources.list.d"
          -o "Dir::State::Lists=$APTDIR/lists" -o "Dir::State::status=$APTDIR/status"
          -o "Dir::Cache=$APTDIR" -o "Dir::Cache::archives=$APTDIR/archives"
          -o "APT::Architecture=amd64" -o "Debug::NoLocking=1")
if ! apt-get "${apt_opts[@]}" -q update > "$WORK/apt-update.log" 2>&1 \
   || grep -qE '^(E:|W: Failed)' "$WORK/apt-update.log"; then
    cat "$WORK/apt-update.log" >&2
    die "cannot fetch the package lists of '$SUITE' from $MIRROR (see above)"
fi
candidate() { apt-cache "${apt_opts[@]}" policy "$1" 2>/dev/null | awk '/Candidate:/ { print $2; exit }'; }
kernel_package=$(apt-cache "${apt_opts[@]}" depends linux-image-amd64 2>/dev/null \
    | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
[ -n "$kernel_package" ] || die "$SUITE has no linux-image-amd64 depending on a versioned kernel"
KERNEL_VERSION=${kernel_package#linux-image-}
versions=""
for p in "$kernel_package" systemd udev "$INITRD_TOOL" ifupdown "$dhcp_package" ${CLOUD_INIT:+cloud-init}; do
    v=$(candidate "$p")
    [ -n "$v" ] && [ "$v" != "(none)" ] || die "$SUITE has no candidate for $p"
    versions="$versions $p=$v"
done
note "$SUITE:$versions"

key=$( { sha256sum < "$SELF"; echo "$SUITE $INITRD_TOOL ${SOURCES[*]}$versions"; } | sha256sum | cut -c1-16)
ENTRY=$CACHE/$NAME-$key

# ------------------------------------------------------------------ build ---
build() {
    local root=$WORK/root hook=$WORK/customize.sh
    mkdir -p "$WORK/files"
    write_guest_files "$WORK/files"
    write_customize_hook "$hook"
    note "running mmdebstrap ($SUITE, $INITRD_TOOL); this downloads ~100-200 MB"
    # --mode=root: we are real root here, so plain chroot + bind mounts work and
    # need no subuid ranges; unshare mode would need user namespaces and subuids.
    # minbase = Essential + Priority: required (passwd, mount, ...) + apt;
    # Recommends are not installed (mmdebstrap's default), which keeps it small.
    mmdebstrap --mode=root --variant=minbase --format=directory \
        --include="$PACKAGES" \
        --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
        --customize-hook="cp -a '$WORK/files/.' \"\$1/\"" \
        --customize-hook="sh '$hook' \"\$1\" '$INITRD_TOOL' '$KERNEL_VERSION' '$WORK/out'" \
        "$SUITE" "$root" "${SOURCES[@]}" > "$WORK/mmdebstrap.log" 2>&1 \
        || { tail -n 40 "$WORK/mmdebstrap.log" >&2; die "mmdebstrap failed (log above)"; }
    grep -F 'REHOST-HOOK:' "$WORK/mmdebstrap.log" >&2 || true

    [ -f "$root/boot/vmlinuz-$KERNEL_VERSION" ] || die "the guest has no /boot/vmlinuz-$KERNEL_VERSION"
    [ -f "$WORK/out/initrd" ] && [ -f "$WORK/out/control-initrd" ] || die "the customize hook made no initrds"
    cp "$root/boot/vmlinuz-$KERNEL_VERSION" "$WORK/out/vmlinuz"
    # What the initrd holds, as the guest's own lister shows it.
    verify_initrd "$WORK/out/initrd.list" "$WORK/out/control-initrd.list"

    # Files written during the build carry today's date: clamp every time
    # after SOURCE_DATE_EPOCH to it, so the image does not depend on the day.
    find "$root" -xdev -newermt "@$SOURCE_DATE_EPOCH" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

    # Size: contents + 30 % + 64 MiB, rounded to 64 MiB, so the guest can boot and write.
    local used_kib size_mib
    used_kib=$(du -s -k --apparent-size "$root" | cut -f1)
    size_mib=$(( (used_kib * 13 / 10 / 1024 + 64 + 63) / 64 * 64 ))
    note "creating a ${size_mib} MiB ext4 image from $((used_kib / 1024)) MiB of files"
    E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH mke2fs -q -F -t ext4 -L "$FS_LABEL" -U "$FS_UUID" \
        -E "root_owner=0:0,hash_seed=$FS_HASH_SEED" -d "$root" "$WORK/out/image" "${size_mib}M" > "$WORK/mke2fs.out" 2>&1 \
        || { cat "$WORK/mke2fs.out" >&2; die "mke2fs failed"; }
    grep -v '^Creating regular file' "$WORK/mke2fs.out" >&2 || true
    e2fsck -fn "$WORK/out/image" > "$WORK/e2fsck.out" 2>&1 || { cat "$WORK/e2fsck.out" >&2; die "e2fsck finds the image unclean"; }
    echo "$size_mib" > "$WORK/out/size-mib"
    echo "$versions" > "$WORK/out/versions"
    rm -rf "$ENTRY.tmp"
    mv "$WORK/out" "$ENTRY.tmp"
    mv "$ENTRY.tmp" "$ENTRY"
    # Older builds of the same guest (another script version or package set).
    local old
    for old in "$CACHE/$NAME"-????????????????; do
        [ "$old" = "$ENTRY" ] || [ ! -d "$old" ] || { note "removing the stale cache entry $old"; rm -rf "$old"; }
    done
}

# Files copied into the guest before the customize hook runs.
write_guest_files() {
    local d=$1
    mkdir -p "$d/etc/network" "$d/etc/systemd/system" "$d/etc/systemd/network" "$d/usr/local/sbin"
    echo xen-guest > "$d/etc/hostname"
    printf '127.0.0.1\tlocalhost\n127.0.1.1\txen-guest\n::1\tlocalhost ip6-localhost ip6-loopback\n' > "$d/etc/hosts"
    # What a Xen PV domU's installer writes: the root and swap on xvda.
    cat > "$d/etc/fstab" <<'EOF'
# /etc/fstab: static file system information.
# <file system> <mount point>   <type>  <options>       <dump>  <pass>
/dev/xvda1      /               ext4    errors=remount-ro 0     1
/dev/xvda3      none            swap    sw              0       0
EOF
    cat > "$d/etc/network/interfaces" <<'EOF'
# The loopback network interface
auto lo
iface lo inet loopback

# The primary network interface (Xen vif)
auto eth0
iface eth0 inet dhcp
EOF
    # Kernel names (eth0) on any hypervisor: systemd >= 250 would otherwise
    # name a Xen vif enX0, a virtio NIC enp0s3. Masking the default .link file
    # is the on-disk equivalent of net.ifnames=0.
    ln -s /dev/null "$d/etc/systemd/network/99-default.link"
    cat > "$d/etc/systemd/system/rehost-report.service" <<'EOF'
[Unit]
Description=Rehost test report on /dev/ttyS0, then power off
Wants=network-online.target
After=multi-user.target network-online.target

[Service]
# Not oneshot: a oneshot job would keep the system "starting" and
# is-system-running --wait would wait for itself.
Type=simple
ExecStart=/usr/local/sbin/rehost-report
StandardOutput=journal

[Install]
WantedBy=multi-user.target
EOF
    cat > "$d/usr/local/sbin/rehost-report" <<'EOF'
#!/bin/sh
# Rehost test fixture: report how the boot went on /dev/ttyS0, then power off.
# Written to the serial port directly, whatever console= the kernel has.
out=/dev/ttyS0
[ -c "$out" ] || out=/dev/console
say() { echo "REHOST-GUEST: $*"; echo "REHOST-GUEST: $*" > "$out"; }

state=$(timeout 300 systemctl is-system-running --wait 2>/dev/null)
[ -n "$state" ] || state=unknown
say "state=$state"
failed=$(systemctl list-units --state=failed --plain --no-legend 2>/dev/null | awk '{ print $1 }' | paste -sd, -)
say "failed=${failed:-none}"
if [ "$state" = starting ]; then
    jobs=$(systemctl list-jobs --plain --no-legend 2>/dev/null | awk '{ print $2 "/" $4 }' | paste -sd, -)
    say "jobs=${jobs:-none}"
fi
# Jobs that waited for a device that never came (a Xen device name on KVM,
# e.g. dev-hvc0.device, dev-xvda3.device): they fail a dependency, not a unit.
# systemd >= 250 logs "... device dev-hvc0.device - /dev/hvc0.", older ones "... device /dev/hvc0.".
waited=$(journalctl -b -q -o cat --no-pager 2>/dev/null \
    | sed -n 's/^Timed out waiting for device \([^ ]*\)\( - .*\)\{0,1\}\.$/\1/p' \
    | while read -r dev; do
          case "$dev" in /*) systemd-escape -p --suffix=device "$dev" ;; *) echo "$dev" ;; esac
      done | sort -u | paste -sd, -)
say "device-timeouts=${waited:-none}"
say "startup=$(systemd-analyze time 2>/dev/null | sed -n 's/^Startup finished in //p' | head -n 1)"
addr=$(ip -4 -o addr show dev eth0 2>/dev/null | awk '{ print $4; exit }')
if [ -n "$addr" ]; then say "eth0=up $addr"; else say "eth0=down"; fi
say "ifaces=$(ls /sys/class/net | paste -sd, -)"
say "root=$(awk '$2 == "/" { line = $0 } END { print line }' /proc/mounts)"
say "block=$(ls /sys/block | grep -vE '^(loop|ram)' | paste -sd, -)"
mods=$(awk '{ print $1 }' /proc/modules | grep -xE 'xen_blkfront|virtio_blk|virtio_scsi|virtio_pci|ata_piix|ahci|libahci|libata|sd_mod|nvme|ext4' | sort | paste -sd, -)
say "modules=${mods:-none}"
swap=$(awk 'NR > 1 { print $1 }' /proc/swaps | paste -sd, -)
say "swap=${swap:-none}"
say "kernel=$(uname -r)"
say "cmdline=$(cat /proc/cmdline)"
echo REHOST-BOOT-OK; echo REHOST-BOOT-OK > "$out"
sleep 1
systemctl poweroff --no-block
EOF
    chmod 755 "$d/usr/local/sbin/rehost-report"
}

# Runs inside mmdebstrap (root mode: /proc, /sys, /dev are mounted in the chroot).
write_customize_hook() {
    cat > "$1" <<'EOF'
set -eu
root=$1 tool=$2 kver=$3 out=$4
mkdir -p "$out"
say() { echo "REHOST-HOOK: $*"; }
# Root's password locked; no other users.
chroot "$root" passwd -l root >/dev/null
# The Xen console getty (no ttyS0 getty: that is for Rehost to add), and the
# report service, enabled the way an admin would.
chroot "$root" systemctl enable serial-getty@hvc0.service rehost-report.service
# A cloud image has no machine-id until first boot.
: > "$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
case "$tool" in
initramfs-tools)
    # What a Xen domU's tools write: only the Xen block driver and ext4.
    sed -i 's/^MODULES=.*/MODULES=list/' "$root/etc/initramfs-tools/initramfs.conf"
    grep -qx 'MODULES=list' "$root/etc/initramfs-tools/initramfs.conf"
    cat > "$root/etc/initramfs-tools/modules" <<'MODS'
# List of modules that you want to include in your initramfs.
# They will be loaded at boot time in the order below.
xen-blkfront
ext4
MODS
    # The kernel's postinst already built a MODULES=most initrd: rebuild it.
    chroot "$root" update-initramfs -u -k "$kver"
    # Control (not shipped): the same tool with MODULES=most, in a scratch config dir.
    rm -rf "$root/tmp/conf-most"
    cp -a "$root/etc/initramfs-tools" "$root/tmp/conf-most"
    sed -i 's/^MODULES=.*/MODULES=most/' "$root/tmp/conf-most/initramfs.conf"
    : > "$root/tmp/conf-most/modules"
    chroot "$root" mkinitramfs -d /tmp/conf-most -o /tmp/control-initrd "$kver"
    rm -rf "$root/tmp/conf-most"
    chroot "$root" lsinitramfs "/boot/initrd.img-$kver" > "$out/initrd.list"
    chroot "$root" lsinitramfs /tmp/control-initrd > "$out/control-initrd.list"
    ;;
dracut)
    cat > "$root/etc/dracut.conf.d/50-xen-domu.conf" <<'CONF'
# Xen PV domU: the Xen block driver and ext4 only, no generic block drivers.
# (hostonly in a chroot depends on the build host; this is the explicit form.)
hostonly="no"
drivers+=" xen-blkfront ext4 "
omit_dracutmodules+=" qemu qemu-net virtfs virtiofs nvdimm drm "
CONF
    chroot "$root" dracut --force --kver "$kver" "/boot/initrd.img-$kver"
    # Control (not shipped): dracut's generic image, ignoring the Xen config.
    mkdir -p "$root/tmp/no-conf.d"
    chroot "$root" dracut --force --no-hostonly --conf /dev/null --confdir /tmp/no-conf.d \
        --kver "$kver" /tmp/control-initrd
    rmdir "$root/tmp/no-conf.d"
    chroot "$root" lsinitrd "/boot/initrd.img-$kver" > "$out/initrd.list"
    chroot "$root" lsinitrd /tmp/control-initrd > "$out/control-initrd.list"
    ;;
esac
cp "$root/boot/initrd.img-$kver" "$out/initrd"
mv "$root/tmp/control-initrd" "$out/control-initrd"
chroot "$root" dpkg-query -W -f '${Package}=${Version}\n' > "$out/packages"
say "packages: $(wc -l < "$out/packages"), initrd $(stat -c %s "$out/initrd") bytes, control $(stat -c %s "$out/control-initrd") bytes"
# Leave no package lists or logs that differ from build to build.
rm -rf "$root/var/lib/apt/lists/"* "$root/var/cache/apt/"*.bin "$root/var/log/"*.log "$root/var/log/apt/"*
rm -f "$root/etc/ssh/ssh_host_"* "$root/var/cache/ldconfig/aux-cache"
EOF
}

verify_initrd() {
    local list=$1 control=$2
    grep -q 'xen-blkfront\.ko' "$list" || die "the guest's initrd has no xen-blkfront.ko"
    if grep -E '/(virtio_blk|virtio_pci|ata_piix|ahci|sd_mod)\.ko' "$list"; then
        die "the guest's initrd holds generic block drivers (above); it must be Xen-only"
    fi
    grep -q 'virtio_blk\.ko' "$control" || die "the control initrd has no virtio_blk.ko"
    grep -q 'ata_piix\.ko' "$control" || die "the control initrd has no ata_piix.ko"
}

start=$(date +%s)
if [ -f "$ENTRY/image" ]; then
    note "using the cached build $ENTRY"
else
    build
    note "built $NAME in $(( $(date +%s) - start ))s"
fi

# ------------------------------------------------------------------ output ---
cp --sparse=always "$ENTRY/image" "$IMAGE.tmp"
mv "$IMAGE.tmp" "$IMAGE"
cp "$ENTRY/vmlinuz" "$OUTDIR/$NAME.vmlinuz"
cp "$ENTRY/initrd" "$OUTDIR/$NAME.initrd"
cp "$ENTRY/control-initrd" "$OUTDIR/$NAME.control-initrd"
cp "$ENTRY/initrd.list" "$OUTDIR/$NAME.initrd.list"
cp "$ENTRY/packages" "$OUTDIR/$NAME.packages"
inode_size=$(dumpe2fs -h "$IMAGE" 2>/dev/null | awk -F: '/^Inode size/ { gsub(/[[:space:]]/, "", $2); print $2 }')
block_size=$(dumpe2fs -h "$IMAGE" 2>/dev/null | awk -F: '/^Block size/ { gsub(/[[:space:]]/, "", $2); print $2 }')
cat > "$ENVFILE" <<EOF
# Generated by Fixtures/make-debian-guest.sh; shell-sourceable.
IMAGE='$IMAGE'
IMAGE_SIZE_BYTES=$(stat -c %s "$IMAGE")
FS_TYPE=ext4
FS_LABEL=$FS_LABEL
FS_UUID=$FS_UUID
FS_BLOCK_SIZE=$block_size
FS_INODE_SIZE=$inode_size
SUITE=$SUITE
INITRD_TOOL=$INITRD_TOOL
KERNEL_VERSION=$KERNEL_VERSION
KERNEL_PATH=/boot/vmlinuz-$KERNEL_VERSION
INITRD_PATH=/boot/initrd.img-$KERNEL_VERSION
INITRD_MODULES='xen-blkfront ext4'
INITRD_CONFIG=$( [ "$INITRD_TOOL" = dracut ] && echo /etc/dracut.conf.d/50-xen-domu.conf || echo /etc/initramfs-tools/initramfs.conf )
GUEST_INIT=/lib/systemd/systemd
XEN_ROOT_DEVICE=/dev/xvda1
XEN_SWAP_DEVICE=/dev/xvda3
XEN_CONSOLE=hvc0
NET_CONFIG=/etc/network/interfaces
REPORT_SERVICE=/etc/systemd/system/rehost-report.service
PACKAGE_VERSIONS='${versions# }'
HOST_KERNEL='$OUTDIR/$NAME.vmlinuz'
HOST_INITRD='$OUTDIR/$NAME.initrd'
HOST_CONTROL_INITRD='$OUTDIR/$NAME.control-initrd'
CACHE_ENTRY='$ENTRY'
EOF
note "wrote $IMAGE ($(cat "$ENTRY/size-mib") MiB, $((inode_size))-byte inodes) and $ENVFILE in $(( $(date +%s) - start ))s"
