#!/usr/bin/env bash
# Build OUTDIR/kernel-<version>-1.x86_64.rpm: a kernel package shaped like RHEL's (/boot/vmlinuz-R,
# System.map-R, config-R, /lib/modules/R/ with no modules.dep: rpm's %post runs depmod), made
# with rpmbuild from the Debian kernel that make-xen-instance.sh caches (its storage, virtio and
# ext4 modules), xz-compressed as RHEL 7+ does. For `rehost convert --add-kernel` tests.
# Runs unprivileged; needs rpm (rpmbuild). Prints the package's path.
set -euo pipefail
die() { echo "make-kernel-rpm: error: $*" >&2; exit 1; }
[ $# -eq 1 ] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mkdir -p "$1"
OUTDIR=$(cd "$1" && pwd)
CACHE=${REHOST_FIXTURE_CACHE:-$HERE/cache}
command -v rpmbuild >/dev/null || die "rpmbuild not found (apt-get install rpm)"
complete=$(ls -1d "$CACHE"/kernel/*/.complete 2>/dev/null | sort -V | tail -n 1 || true)
[ -n "$complete" ] || die "no cached kernel in $CACHE/kernel: run make-xen-instance.sh first"
KDIR=$(dirname "$complete")
RELEASE=$(basename "$KDIR")
VERSION=${RELEASE%%-*}
PACKAGE=$OUTDIR/kernel-$RELEASE-1.x86_64.rpm
if [ -f "$PACKAGE" ] && [ "$PACKAGE" -nt "$complete" ]; then echo "$PACKAGE"; exit 0; fi

WORK=$(mktemp -d "$OUTDIR/.kernel-rpm.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK"/{BUILD,RPMS,SOURCES,SPECS,SRPMS}
# No System.map in the cache: a small stand-in keeps the package's file list RHEL-shaped.
printf 'ffffffff81000000 T _text\n' > "$WORK/System.map"
cat > "$WORK/SPECS/kernel.spec" <<SPEC
Name: kernel
Version: ${RELEASE//-/_}
Release: 1
Summary: The Linux kernel (Debian's $RELEASE, packaged the RHEL way for tests)
License: GPLv2
BuildArch: x86_64
%define _binary_payload w6.xzdio
%define __spec_install_post %{nil}
%define debug_package %{nil}
%define _build_id_links none
%description
Debian's $RELEASE kernel and its storage, virtio and ext4 modules, in RHEL's layout.
%install
mkdir -p %{buildroot}/boot %{buildroot}/lib/modules
cp $KDIR/vmlinuz %{buildroot}/boot/vmlinuz-$RELEASE
cp $KDIR/config %{buildroot}/boot/config-$RELEASE
cp $WORK/System.map %{buildroot}/boot/System.map-$RELEASE
cp -r $KDIR/lib/modules/$RELEASE %{buildroot}/lib/modules/
rm -f %{buildroot}/lib/modules/$RELEASE/modules.*.bin %{buildroot}/lib/modules/$RELEASE/modules.{dep,alias,symbols,softdep,devname}
%files
/boot/vmlinuz-$RELEASE
/boot/config-$RELEASE
/boot/System.map-$RELEASE
/lib/modules/$RELEASE
SPEC
rpmbuild --quiet --define "_topdir $WORK" -bb "$WORK/SPECS/kernel.spec" >/dev/null 2>"$WORK/rpmbuild.log" \
    || { cat "$WORK/rpmbuild.log" >&2; die "rpmbuild failed"; }
built=$(ls "$WORK"/RPMS/x86_64/*.rpm)
mv "$built" "$PACKAGE.tmp"
mv "$PACKAGE.tmp" "$PACKAGE"
echo "$PACKAGE"
