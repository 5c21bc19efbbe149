#!/usr/bin/env bash
# Build OUTDIR/xen-instance.img: a bare ext3 filesystem shaped like the root disk
# of a CentOS 5.11 Xen PV instance, plus OUTDIR/xen-instance.env describing it.
# Runs as an unprivileged user: everything a plain user cannot create in a
# staging directory (owners, device nodes, xattrs, inode flags, ctimes) is set
# afterwards with debugfs -w. See Fixtures/README.md for what each piece tests.
set -euo pipefail

usage() { echo "usage: $0 OUTDIR [--xen-only]" >&2; exit 2; }
die() { echo "make-xen-instance: error: $*" >&2; exit 1; }
note() { echo "make-xen-instance: $*" >&2; }

# --xen-only: the same guest as RHEL 5's kernel-xen alone leaves it, with no kernel that boots
# off Xen (OUTDIR/xen-only-instance.img): the case `rehost convert --add-kernel` is for.
XEN_ONLY=0
if [ $# -eq 2 ] && [ "$2" = --xen-only ]; then XEN_ONLY=1; set -- "$1"; fi
[ $# -eq 1 ] || usage
case "$1" in -h|--help|-*) usage ;; esac

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mkdir -p "$1"
OUTDIR=$(cd "$1" && pwd)
CACHE=${REHOST_FIXTURE_CACHE:-$HERE/cache}
mkdir -p "$CACHE"

for tool in mke2fs debugfs e2fsck apt-cache apt-get dpkg-deb depmod cpio gzip python3 openssl; do
    command -v "$tool" >/dev/null || die "$tool not found (install e2fsprogs, apt, dpkg, kmod, cpio, gzip, python3, openssl)"
done
export PATH="$PATH:/usr/sbin:/sbin"

# Fixed identity so every run produces the same filesystem.
FS_LABEL=/
FS_UUID=3d1b7c9e-5f2a-4e8b-9c61-0a7d2e4f8b13
FS_HASH_SEED=6a0e5d44-1c3b-4f7e-8d2a-97b1c0e5f321
FS_SIZE_MIB=192
FS_BLOCK_SIZE=4096
FS_INODE_SIZE=128
XEN_KVER=2.6.18-398.el5xen
# 2014-06-12 09:30:00 UTC: the instance's install date.
INSTALL_EPOCH=1402565400
INSTALL_STAMP=20140612093000

# ---------------------------------------------------------------- kernel ---
# Debian's generic kernel boots on Xen and KVM; keep only the modules that an
# ext3 root over virtio, virtio-scsi, IDE or AHCI needs, plus xen-blkfront.
KERNEL_MODULE_ROOTS="ata_piix ahci sd_mod virtio_pci virtio_blk virtio_scsi ext4 xen-blkfront crc32c_generic crct10dif_generic crc64_rocksoft_generic"
# What the Xen-only initrd loads, in order (as mkinitrd writes it on a Xen PV guest).
INITRD_MODULES="crc16 mbcache jbd2 crc32c_generic ext4 xen-blkfront"

kernel_package=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }') || true
if [ -z "$kernel_package" ]; then
    cached=$(ls -1d "$CACHE"/kernel/*/.complete 2>/dev/null | sort -V | tail -n 1 || true)
    [ -n "$cached" ] || die "apt-cache does not know linux-image-amd64 and nothing is cached: run 'apt-get update' (as root) and retry"
    KVER=$(basename "$(dirname "$cached")")
    note "apt-cache cannot resolve linux-image-amd64; using cached kernel $KVER"
else
    KVER=${kernel_package#linux-image-}
fi
KDIR=$CACHE/kernel/$KVER

# The cache holds what this recipe takes from the package; a different recipe rebuilds it.
if [ "$(cat "$KDIR/.complete" 2>/dev/null)" != "$KVER $KERNEL_MODULE_ROOTS xen-pv" ]; then
    note "fetching $kernel_package"
    mkdir -p "$CACHE/debs"
    (cd "$CACHE/debs" && apt-get download "$kernel_package" >&2) \
        || die "apt-get download $kernel_package failed; the package lists are probably stale: run 'apt-get update' (as root) and retry"
    deb=$(ls -1 "$CACHE/debs/${kernel_package}"_*.deb | sort -V | tail -n 1)
    unpacked=$(mktemp -d "$CACHE/unpack.XXXXXX")
    dpkg-deb -x "$deb" "$unpacked"
    depmod -b "$unpacked" "$KVER"
    full=$unpacked/lib/modules/$KVER
    # modules.dep already lists each module's full (transitive) dependency list.
    needed=$(awk -v roots="$KERNEL_MODULE_ROOTS" '
        BEGIN { n = split(roots, r, " "); for (i = 1; i <= n; i++) { gsub("-", "_", r[i]); want[r[i]] = 1 } }
        {
            path = $1; sub(":$", "", path)
            name = path; sub(".*/", "", name); sub("[.]ko.*$", "", name); gsub("-", "_", name)
            if (name in want) { print path; for (i = 2; i <= NF; i++) print $i }
        }' "$full/modules.dep" | sort -u)
    [ "$(echo "$needed" | grep -c .)" -ge 9 ] || die "could not find the storage modules in $deb"
    rm -rf "$KDIR"
    mkdir -p "$KDIR/lib/modules/$KVER"
    cp "$unpacked/boot/vmlinuz-$KVER" "$KDIR/vmlinuz"
    # A Xen PV image the way classic Xen kernels ship it: gzip(vmlinux), an ELF with Xen notes
    # and no x86 boot header. The vmlinux is the bzImage's own payload (xz), so it is real.
    setup_sects=$(od -An -tu1 -j $((0x1F1)) -N1 "$KDIR/vmlinuz" | tr -d ' ')
    [ "$setup_sects" -ne 0 ] || setup_sects=4
    payload_offset=$(od -An -tu4 -j $((0x248)) -N4 "$KDIR/vmlinuz" | tr -d ' ')
    payload_length=$(od -An -tu4 -j $((0x24C)) -N4 "$KDIR/vmlinuz" | tr -d ' ')
    dd if="$KDIR/vmlinuz" iflag=skip_bytes,count_bytes skip=$(( (setup_sects + 1) * 512 + payload_offset )) \
        count="$payload_length" status=none | xz -dc --single-stream > "$unpacked/vmlinux"
    [ "$(head -c 4 "$unpacked/vmlinux" | od -An -tx1 | tr -d ' ')" = 7f454c46 ] || die "the kernel's payload is not an ELF vmlinux"
    gzip -9n < "$unpacked/vmlinux" > "$KDIR/vmlinuz-xen-pv"
    cp "$unpacked/boot/config-$KVER" "$KDIR/config"
    cp "$full/modules.order" "$full/modules.builtin" "$full/modules.builtin.modinfo" "$KDIR/lib/modules/$KVER/"
    for module in $needed; do
        mkdir -p "$KDIR/lib/modules/$KVER/$(dirname "$module")"
        cp "$full/$module" "$KDIR/lib/modules/$KVER/$module"
    done
    depmod -b "$KDIR" "$KVER"
    rm -rf "$unpacked" "$deb"
    echo "$KVER $KERNEL_MODULE_ROOTS xen-pv" > "$KDIR/.complete"
fi

# --------------------------------------------------------------- busybox ---
if [ "$(dpkg-query -W -f='${Status}' busybox-static 2>/dev/null || true)" = "install ok installed" ]; then
    BUSYBOX=/bin/busybox
else
    BUSYBOX=$CACHE/busybox/bin/busybox
    if [ ! -x "$BUSYBOX" ]; then
        note "fetching busybox-static"
        mkdir -p "$CACHE/debs"
        (cd "$CACHE/debs" && apt-get download busybox-static >&2) \
            || die "apt-get download busybox-static failed: run 'apt-get update' (as root) and retry"
        rm -rf "$CACHE/busybox"
        dpkg-deb -x "$(ls -1 "$CACHE"/debs/busybox-static_*.deb | tail -n 1)" "$CACHE/busybox"
        rm -f "$CACHE"/debs/busybox-static_*.deb
    fi
fi
[ -x "$BUSYBOX" ] || die "no busybox-static binary at $BUSYBOX"

# ---------------------------------------------------------------- initrd ---
# newc header for one entry with no data (here: a device node).
newc_node() { # name mode(octal) rdev-major rdev-minor inode
    local name=$1 mode=$((8#$2)) major=$3 minor=$4 ino=$5
    local namesize=$(( ${#name} + 1 ))
    printf '070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X' \
        "$ino" "$mode" 0 0 1 "$INSTALL_EPOCH" 0 0 0 "$major" "$minor" "$namesize" 0
    printf '%s\0' "$name"
    head -c $(( (4 - (110 + namesize) % 4) % 4 )) /dev/zero
}

initrd_key=$( { cat "$HERE/initrd/init" "$HERE/initrd/nash"; echo "$KVER $INITRD_MODULES"; sha256sum "$BUSYBOX"; declare -f newc_node; } | sha256sum | cut -c1-16)
INITRD_CACHED=$CACHE/initrd-$KVER-$initrd_key.img
if [ ! -f "$INITRD_CACHED" ]; then
    note "building initrd for $KVER"
    rm -f "$CACHE"/initrd-*.img   # older recipes
    staging=$(mktemp -d "$CACHE/initrd-staging.XXXXXX")
    mkdir -p "$staging"/{bin,dev,proc,sys,sysroot,lib}
    cp "$BUSYBOX" "$staging/bin/busybox"
    for applet in $("$BUSYBOX" --list); do
        [ "$applet" = busybox ] || ln -s busybox "$staging/bin/$applet"
    done
    ln -s bin "$staging/sbin"
    # mkinitrd's layout: the modules flat in /lib, loaded by path.
    for module in $INITRD_MODULES; do
        found=$(find "$KDIR/lib/modules/$KVER" -name "$module.ko" | head -n 1)
        [ -n "$found" ] || die "module $module not found for the initrd"
        cp "$found" "$staging/lib/$module.ko"
    done
    install -m 0755 "$HERE/initrd/nash" "$staging/bin/nash"
    install -m 0755 "$HERE/initrd/init" "$staging/init"
    find "$staging" -exec touch -h -d "@$INSTALL_EPOCH" {} +
    # /dev/console goes in a second archive so no mknod is needed; the kernel
    # unpacks concatenated archives in order, after dev/ exists.
    { (cd "$staging" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --reproducible --quiet)
      newc_node dev/console 020600 5 1 900001
      newc_node TRAILER!!! 0 0 0 0
    } | gzip -9n > "$INITRD_CACHED.tmp"
    mv "$INITRD_CACHED.tmp" "$INITRD_CACHED"
    rm -rf "$staging"
fi

# ------------------------------------------------------------- root tree ---
NAME=xen-instance
[ "$XEN_ONLY" = 0 ] || NAME=xen-only-instance
IMAGE=$OUTDIR/$NAME.img
ENVFILE=$OUTDIR/$NAME.env
WORK=$(mktemp -d "$OUTDIR/.xen-instance-work.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
ROOT=$WORK/root
mkdir -p "$ROOT"
note "staging the guest tree"

cp -r "$HERE/guest-root/." "$ROOT/"
mkdir -p "$ROOT"/{bin,sbin,boot,dev/pts,dev/shm,lib/modules,mnt,media,opt/app,proc,sys,selinux,srv/shared,tmp} \
         "$ROOT"/etc/rc.d/rc{0,1,2,3,4,5,6}.d "$ROOT"/etc/alternatives \
         "$ROOT"/usr/{bin,sbin,share/doc/centos-release-5} \
         "$ROOT"/var/{tmp,run,lock/subsys,lib/backup,lib/mysql,empty/sshd,spool/mail,log/audit} \
         "$ROOT/lib/modules/$XEN_KVER"

# busybox provides every program the fixture actually runs.
cp "$BUSYBOX" "$ROOT/bin/busybox"
ln -s busybox "$ROOT/bin/sh"
install -m 0755 "$HERE/guest/init" "$ROOT/sbin/init"

# The kernel the converter should pick: a bzImage whose file name says "xen" (judged by its
# bytes, it boots on hardware; its release, in the image, names /lib/modules/$KVER), with a
# Xen-only initrd. Its modules are compressed as other distributions ship them (.ko.xz,
# .ko.zst), so the repair has to decompress what it adds.
KFILE=$KVER-xen
cp "$KDIR/vmlinuz" "$ROOT/boot/vmlinuz-$KFILE"
cp "$KDIR/config" "$ROOT/boot/config-$KVER"
cp "$INITRD_CACHED" "$ROOT/boot/initrd-$KFILE.img"
cp -r "$KDIR/lib/modules/$KVER" "$ROOT/lib/modules/"
rm -f "$ROOT/lib/modules/$KVER"/modules.*.bin "$ROOT/lib/modules/$KVER"/modules.{dep,alias,symbols,softdep,devname}
find "$ROOT/lib/modules/$KVER" -name 'virtio*.ko' -exec xz --check=crc32 {} +
find "$ROOT/lib/modules/$KVER" \( -name '*ahci.ko' -o -name 'ata_piix.ko' -o -name 'libata.ko' \) -exec zstd -q --rm {} +
depmod -b "$ROOT" "$KVER"
# A Xen PV-only kernel it must not pick: gzip'd ELF with Xen notes, no boot header.
cp "$KDIR/vmlinuz-xen-pv" "$ROOT/boot/vmlinuz-$XEN_KVER"
seeded() { # bytes key-hex: reproducible incompressible data
    openssl enc -aes-256-ctr -nosalt -K "$2" -iv 00000000000000000000000000000000 -in <(head -c "$1" /dev/zero)
}
seeded 2600000 "$(printf '%064x' 2)" > "$ROOT/boot/initrd-$XEN_KVER.img"
printf 'kernel/drivers/xen/netfront/xennet.ko:\nkernel/drivers/xen/blkfront/xenblk.ko:\n' > "$ROOT/lib/modules/$XEN_KVER/modules.dep"
if [ "$XEN_ONLY" = 1 ]; then
    # Only kernel-xen: its (nash) initrd is the Xen-only one, and no other kernel is installed.
    rm -rf "$ROOT/boot/vmlinuz-$KFILE" "$ROOT/boot/initrd-$KFILE.img" "$ROOT/boot/config-$KVER" "$ROOT/lib/modules/$KVER"
    cp "$INITRD_CACHED" "$ROOT/boot/initrd-$XEN_KVER.img"
fi

# Fast symlinks (target stored in the inode), a slow one (target > 60 bytes,
# stored in a data block) and a dangling one.
ln -s rc.d/init.d "$ROOT/etc/init.d"
ln -s ../init.d/network "$ROOT/etc/rc.d/rc3.d/S10network"
ln -s ../init.d/network "$ROOT/etc/rc.d/rc5.d/S10network"
for level in 0 1 6; do ln -s ../init.d/network "$ROOT/etc/rc.d/rc$level.d/K90network"; done
ln -s rc.d/rc.local "$ROOT/etc/rc.local"
printf '#!/bin/sh\ntouch /var/lock/subsys/local\n' > "$ROOT/etc/rc.d/rc.local"
chmod 755 "$ROOT/etc/rc.d/rc.local" "$ROOT/etc/rc.d/init.d/network"
SLOW_SYMLINK_TARGET=/usr/share/doc/centos-release-5/release-notes-for-centos-5.11-final-x86_64.txt
printf 'CentOS 5.11 release notes (fixture copy)\n' > "$ROOT$SLOW_SYMLINK_TARGET"
ln -s "$SLOW_SYMLINK_TARGET" "$ROOT/usr/share/doc/RELEASE-NOTES"
ln -s /usr/lib/jvm/jre-1.6.0-openjdk.x86_64/bin/java "$ROOT/etc/alternatives/java"
ln -s /etc/alternatives/java "$ROOT/usr/bin/java"

# One inode, three names, two directories.
printf '#!/bin/sh\nexec /bin/busybox "${0##*/}" "$@"\n' > "$ROOT/bin/gzip"
chmod 755 "$ROOT/bin/gzip"
ln "$ROOT/bin/gzip" "$ROOT/bin/gunzip"
ln "$ROOT/bin/gzip" "$ROOT/usr/bin/zcat"

# Modes an unprivileged user can set on its own files.
printf '#!/bin/sh\necho "passwd: fixture stand-in"\n' > "$ROOT/usr/bin/passwd"
chmod 4755 "$ROOT/usr/bin/passwd"
chmod 1777 "$ROOT/tmp" "$ROOT/var/tmp"
chmod 0400 "$ROOT/etc/shadow"
chmod 0600 "$ROOT/etc/ssh/ssh_host_rsa_key"
chmod 0700 "$ROOT/root" "$ROOT/home/ec2-user" "$ROOT/var/empty/sshd"
chmod 0600 "$ROOT/root/.bash_history" "$ROOT/var/log/messages" "$ROOT/var/log/audit.log"
chmod 2775 "$ROOT/srv/shared"
chmod 0640 "$ROOT/home/ec2-user/notes.txt"   # group bits = ACL mask, other = ACL other
printf 'nameserver 10.0.0.2\nsearch example.internal\n' > "$ROOT/etc/resolv.conf"
printf '{"last_run": "2014-09-30T02:00:00Z", "status": "ok"}\n' > "$ROOT/var/lib/backup/state.json"
printf 'quarterly report draft\n' > "$ROOT/srv/shared/report.txt"

# A FIFO and a unix socket: mke2fs -d copies both from the staging tree.
mkfifo "$ROOT/var/run/rehost.fifo"
python3 -c 'import socket, sys; s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.close()' \
    "$ROOT/var/run/acpid.socket"

# Files whose block maps matter: empty, exactly one block, sparse, large.
: > "$ROOT/var/lock/subsys/network"
seeded 4096 "$(printf '%064x' 3)" > "$ROOT/var/lib/random-seed"
SPARSE=/var/lib/mysql/ibdata1
truncate -s 64M "$ROOT$SPARSE"
seeded 65536 "$(printf '%064x' 4)" | dd of="$ROOT$SPARSE" bs=1M seek=8 conv=notrunc status=none
seeded 4100 "$(printf '%064x' 5)" | dd of="$ROOT$SPARSE" bs=1M seek=32 conv=notrunc status=none
seeded 102400 "$(printf '%064x' 6)" | dd of="$ROOT$SPARSE" bs=1M seek=50 conv=notrunc status=none
LARGE=/opt/app/data.bin
seeded $((24 * 1024 * 1024)) "$(printf '%064x' 7)" > "$ROOT$LARGE"

# Timestamps: everything installed at INSTALL_EPOCH, user data later in 2014.
find "$ROOT" -exec touch -h -d "@$INSTALL_EPOCH" {} +
touch -h -d '2014-10-02 17:41:09 UTC' "$ROOT/root/.bash_history" "$ROOT/home/ec2-user/notes.txt"
touch -h -d '2014-10-03 04:02:11 UTC' "$ROOT/var/log/messages" "$ROOT/var/log/audit.log"
touch -a -d '2014-11-20 12:00:00 UTC' "$ROOT/etc/inittab"

# ------------------------------------------------------------------ mke2fs ---
note "creating $IMAGE"
rm -f "$IMAGE.tmp"   # the old image stays until the new one is complete
E2FSPROGS_FAKE_TIME=$INSTALL_EPOCH mke2fs -q -F -t ext3 \
    -O none,has_journal,ext_attr,resize_inode,dir_index,filetype,sparse_super,large_file \
    -b "$FS_BLOCK_SIZE" -I "$FS_INODE_SIZE" -L "$FS_LABEL" -U "$FS_UUID" \
    -E "root_owner=0:0,hash_seed=$FS_HASH_SEED" -d "$ROOT" "$IMAGE.tmp" "${FS_SIZE_MIB}M" 2>&1 \
    | { grep -vE '^Creating regular file|128-byte inodes cannot handle dates' >&2 || true; }

# ----------------------------------------------------------------- debugfs ---
CMDS=$WORK/debugfs.cmds
VALUES=$WORK/values
mkdir -p "$VALUES"

selinux_type() { # path -> SELinux type the CentOS 5 policy would give it
    case "$1" in
        /etc/shadow) echo shadow_t ;;
        /etc/ssh/ssh_host_*) echo sshd_key_t ;;
        /etc/rc.d/init.d/*) echo initrc_exec_t ;;
        /etc/resolv.conf) echo net_conf_t ;;
        /etc|/etc/*) echo etc_t ;;
        /sbin/init) echo init_exec_t ;;
        /bin|/bin/*|/sbin|/sbin/*|/usr/bin|/usr/bin/*) echo bin_t ;;
        /boot|/boot/*) echo boot_t ;;
        /lib/modules|/lib/modules/*) echo modules_object_t ;;
        /home/ec2-user) echo user_home_dir_t ;;
        /home/ec2-user/*) echo user_home_t ;;
        /root|/root/*) echo user_home_dir_t ;;
        /var/log|/var/log/*) echo var_log_t ;;
        /tmp|/var/tmp) echo tmp_t ;;
        *) ;;
    esac
}

{
    # Owners: mke2fs -d copied the staging user's ids; the guest is root's.
    while IFS= read -r -d '' entry; do
        path=${entry#"$ROOT"}
        echo "sif \"$path\" uid 0"
        echo "sif \"$path\" gid 0"
        echo "sif \"$path\" ctime $INSTALL_STAMP"
        type=$(selinux_type "$path")
        if [ -n "$type" ]; then
            value=$VALUES/selinux-$type
            [ -f "$value" ] || printf 'system_u:object_r:%s:s0\0' "$type" > "$value"
            echo "ea_set -f $value \"$path\" security.selinux"
        fi
    done < <(find "$ROOT" -mindepth 1 -print0 | LC_ALL=C sort -z)

    for path in /home/ec2-user /home/ec2-user/notes.txt /home/ec2-user/.bash_profile; do
        echo "sif $path uid 500"
        echo "sif $path gid 500"
    done
    # Ids above 65535 need the high 16 bits in the inode's osd2 area.
    for path in /var/lib/backup /var/lib/backup/state.json; do
        echo "sif $path uid 100000"
        echo "sif $path gid 100000"
    done
    echo "sif /srv/shared gid 100"
    echo "sif /srv/shared/report.txt gid 100"

    # Device nodes (debugfs creates them with no permission bits).
    echo "cd /dev"
    while read -r name kind major minor mode; do
        echo "mknod $name $kind $major $minor"
        echo "sif $name mode $mode"
        echo "sif $name ctime $INSTALL_STAMP"
        echo "sif $name mtime $INSTALL_STAMP"
        echo "sif $name atime $INSTALL_STAMP"
        echo "ea_set -f $VALUES/selinux-device_t $name security.selinux"
    done <<'NODES'
console c 5 1 020600
null c 1 3 020666
zero c 1 5 020666
xvc0 c 204 191 020620
sda b 8 0 060640
sda1 b 8 1 060640
xvda1 b 202 1 060640
NODES
    echo "cd /"
    printf 'system_u:object_r:device_t:s0\0' > "$VALUES/selinux-device_t"

    # A user xattr, and POSIX ACLs in the Linux xattr format (version 2
    # header, then tag/perm/id entries; libext2fs converts to the disk form).
    echo "ea_set /home/ec2-user/notes.txt user.rehost.origin xen-pv-web01"
    acl_entry() { printf "$(printf '\\x%02x\\x%02x\\x%02x\\x%02x\\x%02x\\x%02x\\x%02x\\x%02x' \
        $(($1 & 255)) $(($1 >> 8)) $(($2 & 255)) $(($2 >> 8)) \
        $(($3 & 255)) $((($3 >> 8) & 255)) $((($3 >> 16) & 255)) $((($3 >> 24) & 255)))"; }
    { printf '\x02\x00\x00\x00'
      acl_entry 0x01 6 4294967295   # user::rw-
      acl_entry 0x02 4 100000       # user:backup:r--
      acl_entry 0x04 4 4294967295   # group::r--
      acl_entry 0x10 4 4294967295   # mask::r--
      acl_entry 0x20 0 4294967295   # other::---
    } > "$VALUES/acl-notes"
    echo "ea_set -f $VALUES/acl-notes /home/ec2-user/notes.txt system.posix_acl_access"
    { printf '\x02\x00\x00\x00'
      acl_entry 0x01 7 4294967295   # default user::rwx
      acl_entry 0x04 7 4294967295   # default group::rwx
      acl_entry 0x08 5 100          # default group:users:r-x
      acl_entry 0x10 7 4294967295   # default mask::rwx
      acl_entry 0x20 5 4294967295   # default other::r-x
    } > "$VALUES/acl-shared-default"
    echo "ea_set -f $VALUES/acl-shared-default /srv/shared system.posix_acl_default"

    # Inode flags last: immutable (dhclient must not rewrite it) and append-only.
    echo "sif /etc/resolv.conf flags 0x10"
    echo "sif /var/log/audit.log flags 0x20"
} > "$CMDS"

# Fail on any debugfs complaint: it reports errors on stderr but exits 0.
debugfs -w -f "$CMDS" "$IMAGE.tmp" > "$WORK/debugfs.out" 2>&1
# With -f it echoes each command as "debugfs: ..."; anything else is a complaint.
if grep -vE '^(debugfs( [0-9.]+ \(|: )|Allocated inode: [0-9]+$)' "$WORK/debugfs.out" | grep -q .; then
    grep -vE '^(debugfs( [0-9.]+ \(|: )|Allocated inode: [0-9]+$)' "$WORK/debugfs.out" | head -n 20 >&2
    die "debugfs reported errors while customising $IMAGE.tmp"
fi
# debugfs stamps the superblock's last-write time (s_wtime, offset 1024 + 48)
# with the wall clock; pin it so identical inputs give an identical image.
# ext3 has no superblock checksum, so four plain bytes are all it takes.
printf "$(printf '\\x%02x\\x%02x\\x%02x\\x%02x' $((INSTALL_EPOCH & 255)) $(((INSTALL_EPOCH >> 8) & 255)) \
    $(((INSTALL_EPOCH >> 16) & 255)) $(((INSTALL_EPOCH >> 24) & 255)))" \
    | dd of="$IMAGE.tmp" bs=1 seek=$((1024 + 48)) conv=notrunc status=none
e2fsck -fn "$IMAGE.tmp" > "$WORK/e2fsck.out" 2>&1 || { cat "$WORK/e2fsck.out" >&2; die "e2fsck finds $IMAGE.tmp unclean"; }
mv "$IMAGE.tmp" "$IMAGE"

# -------------------------------------------------------------------- env ---
cat > "$ENVFILE" <<EOF
# Generated by Fixtures/make-xen-instance.sh; shell-sourceable.
IMAGE='$IMAGE'
IMAGE_SIZE_BYTES=$((FS_SIZE_MIB * 1024 * 1024))
FS_TYPE=ext3
FS_LABEL='$FS_LABEL'
FS_UUID=$FS_UUID
FS_BLOCK_SIZE=$FS_BLOCK_SIZE
FS_INODE_SIZE=$FS_INODE_SIZE
KERNEL_VERSION=$KVER
KERNEL_PATH=/boot/vmlinuz-$KFILE
INITRD_PATH=/boot/initrd-$KFILE.img
INITRD_FAMILY=nash
INITRD_MODULES='$INITRD_MODULES'
XEN_ONLY=$XEN_ONLY
XEN_KERNEL_VERSION=$XEN_KVER
XEN_KERNEL_PATH=/boot/vmlinuz-$XEN_KVER
XEN_INITRD_PATH=/boot/initrd-$XEN_KVER.img
GUEST_INIT=/sbin/init
XEN_ROOT_DEVICE=/dev/sda1
XEN_CONSOLE=xvc0
HOST_KERNEL='$KDIR/vmlinuz'
HOST_INITRD='$INITRD_CACHED'
SETUID_FILE=/usr/bin/passwd
STICKY_DIRS='/tmp /var/tmp'
USER_HOME=/home/ec2-user
USER_UID=500
HIGH_ID_FILE=/var/lib/backup/state.json
HIGH_ID=100000
HARDLINKS='/bin/gzip /bin/gunzip /usr/bin/zcat'
FAST_SYMLINK=/etc/rc.d/rc3.d/S10network
SLOW_SYMLINK=/usr/share/doc/RELEASE-NOTES
SLOW_SYMLINK_TARGET=$SLOW_SYMLINK_TARGET
DANGLING_SYMLINK=/etc/alternatives/java
CHAR_DEVICES='/dev/console /dev/null /dev/zero /dev/xvc0'
BLOCK_DEVICES='/dev/sda /dev/sda1 /dev/xvda1'
FIFO=/var/run/rehost.fifo
SOCKET=/var/run/acpid.socket
ACL_FILE=/home/ec2-user/notes.txt
DEFAULT_ACL_DIR=/srv/shared
USER_XATTR_FILE=/home/ec2-user/notes.txt
IMMUTABLE_FILE=/etc/resolv.conf
APPEND_ONLY_FILE=/var/log/audit.log
SPARSE_FILE=$SPARSE
SPARSE_FILE_SIZE=$((64 * 1024 * 1024))
LARGE_FILE=$LARGE
LARGE_FILE_SIZE=$((24 * 1024 * 1024))
EMPTY_FILE=/var/lock/subsys/network
ONE_BLOCK_FILE=/var/lib/random-seed
EOF
note "wrote $IMAGE and $ENVFILE"
