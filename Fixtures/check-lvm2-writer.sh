#!/usr/bin/env bash
# The oracle for Fixtures/lvm2-write.py: the real lvm2 tools (Debian's lvm2 package) must read
# what it writes as lvm2 itself would have written it. lvm2 reads only block devices, so this needs
# root and free loop devices; the tests cannot assume either (CI containers often have neither),
# which is why it is a script run by hand, not a test. Nothing is activated (no device-mapper).
#
# With --make-real-pv OUT.gz it also rebuilds Tests' golden vector: the first MiB of a PV written by
# lvm2 itself (pvcreate; vgcreate -s 4m; lvcreate -L 8M twice; lvextend LogVol00 to 16M).
set -euo pipefail
die() { echo "check-lvm2-writer: error: $*" >&2; exit 1; }
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ "$(id -u)" = 0 ] || die "needs root (lvm2 reads only block devices: loop devices)"
command -v lvs >/dev/null || die "lvm2 is not installed (apt-get install lvm2)"
WORK=$(mktemp -d /tmp/check-lvm2-writer.XXXXXX)
detach_all() { # every loop device this script attached: those backed by its files
    local f l
    for f in "$WORK"/*.img; do
        [ -e "$f" ] || continue
        for l in $(losetup -n -O NAME -j "$f"); do losetup -d "$l" 2>/dev/null || true; done
    done
}
cleanup() { detach_all; rm -rf "$WORK"; }
trap cleanup EXIT
attach() { losetup -f --show "$1" || die "no free loop device"; }
lvm() { # command args... : on the given loop devices only, without udev or device-mapper
    local cmd=$1; shift
    "$cmd" --driverloaded n --devices "$DEVICES" --config 'devices{use_devicesfile=0} activation{udev_sync=0 udev_rules=0}' "$@" 2>&1 \
        | grep -vE 'leaked on|Activation disabled|device-mapper|libdevmapper|/dev/mapper/control|not zeroed' || true
}

if [ "${1:-}" = --make-real-pv ]; then
    out=$2
    truncate -s 64M "$WORK/real.img"
    DEVICES=$(attach "$WORK/real.img")
    lvm pvcreate "$DEVICES"
    lvm vgcreate -s 4m VolGroup00 "$DEVICES"
    lvm lvcreate -an --zero n -L 8M -n LogVol00 VolGroup00
    lvm lvcreate -an --zero n -L 8M -n LogVol01 VolGroup00
    lvm lvextend -L 16M VolGroup00/LogVol00
    head -c 1M "$WORK/real.img" | gzip -9n > "$out"
    echo "wrote $out"
    exit 0
fi

status=0
expect() { # what expected got
    if [ "$2" = "$3" ]; then echo "ok: $1"; else echo "MISMATCH: $1"; echo "  expected: $2"; echo "  got:      $3"; status=1; fi
}

# 1. One PV, two linear LVs (the fixture's layout), the first in two segments (--all-lvm's).
truncate -s 216M "$WORK/one.img"
python3 "$HERE/lvm2-write.py" "$WORK/one.img" --offset 0 --size $((216 << 20)) --vg VolGroup00 \
    --lv LogVol00:24+24 --lv LogVol01:4 >/dev/null
DEVICES=$(attach "$WORK/one.img")
got=$(lvm lvs --noheadings --separator ' ' -o lv_name,lv_size,seg_pe_ranges --units m | sed "s|$DEVICES|PV|g" | awk '{$1=$1; print}')
expect "linear LVs" "LogVol00 192.00m PV:0-23
LogVol00 192.00m PV:28-51
LogVol01 16.00m PV:24-27" "$got"
got=$(lvm pvs --noheadings --separator ' ' -o pv_pe_count,pe_start --units k | awk '{$1=$1; print}')
expect "PV extents and pe_start" "53 1024.00k" "$got"
lvm vgck VolGroup00
lvm pvck "$DEVICES"
detach_all

# 2. Two PVs, an LV striped over both (64 KiB stripes) and a linear one.
for i in 0 1; do
    truncate -s 16M "$WORK/pv$i.img"
    python3 "$HERE/lvm2-write.py" "$WORK/pv$i.img" --offset 0 --size $((16 << 20)) --vg vgdata --pvs 2 --pv-index $i \
        --extent-mib 1 --lv data:8:striped:64 --lv solo:2 >/dev/null
done
A=$(attach "$WORK/pv0.img"); B=$(attach "$WORK/pv1.img")
DEVICES="$A,$B"
got=$(lvm lvs --noheadings --separator ' ' -o lv_name,lv_size,stripes,stripe_size,devices --units k \
      | sed -e "s|$A|PV0|g" -e "s|$B|PV1|g" | awk '{$1=$1; print}')
expect "striped LV over two PVs" "data 8192.00k 2 64.00k PV0(0),PV1(0)
solo 2048.00k 1 0k PV0(4)" "$got"
lvm vgck vgdata
[ $status = 0 ] && echo "check-lvm2-writer: lvm2 reads lvm2-write.py's PVs as written" || echo "check-lvm2-writer: MISMATCHES" >&2
exit $status
