#!/usr/bin/env bash
# Installs the Debian 12 packages Rehost builds, runs and tests with. Idempotent; uses sudo when
# not run as root.
set -euo pipefail

packages=(
  # build: the C libraries Rehost links
  libext2fs-dev libblkid-dev zlib1g-dev pkg-config
  # run: grub-mkimage and the i386-pc GRUB modules, for the boot loader convert installs
  grub-pc-bin grub-common
  # run: the x86_64-efi GRUB modules grub-mkimage builds BOOTX64.EFI from, for the EFI System
  # Partition of `convert --firmware uefi|both`
  grub-efi-amd64-bin
  # tests and the example: e2fsprogs and util-linux as oracles, qemu to boot the result, and what
  # the fixture script needs to build a Xen instance copy without root
  e2fsprogs fdisk util-linux dosfstools qemu-system-x86 qemu-utils busybox-static cpio kmod
  python3 openssl gzip time zstd xz-utils
  # benchmarks: pigz, the parallel gzip a user would run instead of `-o disk.raw.gz`
  pigz
  # build: compression and digests for the output formats
  libdeflate-dev libzstd-dev libssl-dev
  # build: libcurl (OpenSSL flavour) for the upload adapters' HTTP
  libcurl4-openssl-dev
  # build: the decompressors a guest's initrd or kernel modules may use
  liblzma-dev liblz4-dev libbz2-dev
  # tests: the compressors initrd tools use, to make test initrds
  lz4 bzip2
  # tests: 7-Zip's qcow2 reader, which must see the whole of a qcow2 image Rehost writes
  p7zip-full
  # tests: readelf, the oracle for the ELF reader (KernelModulesTests); dpkg-deb and apt-get download
  # unpack Debian's kernel there (kmod above gives depmod, modinfo and modprobe)
  binutils
  # tests: rpmbuild, rpm and rpm2cpio build kernel RPMs and are the oracles for the RPM reader
  # (KernelPackagesTests); dpkg-deb, already present, is the DEB reader's
  rpm
  # tests: the independent initramfs walker (Tests/Tools/initramfs-walk.py) reads zstd and lz4 members
  python3-zstandard python3-lz4
  # tests: the hostile-corpus test (Tests/CLITests/HostileCorpusTests.swift) records every open()
  # of each refused image with strace
  strace
  # tests (as root): Fixtures/make-debian-guest.sh installs real Debian guests with mmdebstrap
  mmdebstrap
  # tests: strace shows which files Rehost opens for a hostile image (containment tests)
  strace
  # tests: isoinfo (genisoimage) and xorriso read back the ISO 9660 context CDs Rehost writes
  genisoimage xorriso
  # tests: the real cloud servers of the upload-adapter tests (Tests/Tools/cloud-servers.sh) live in
  # venvs made by /usr/bin/python3 -m venv, and the script polls them with curl
  python3-venv curl
  # tests: the oracles for GPT and the EFI System Partition (DiskLayoutTests, FATTests): sgdisk -v/-p/-i
  # read the GPT Rehost writes; mdir, mcopy and mtype list and read back its FAT32 without mounting
  gdisk mtools
  # tests: OVMF, the UEFI firmware qemu boots a GPT disk with Rehost's ESP in (FATTests/UEFIBootTests)
  ovmf
  # tests: the batch tests' real single-node Slurm (Tests/Tools/slurm-local.sh), no slurmdbd
  slurmctld slurmd slurm-client munge
)

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# The fixture fetches Debian's kernel with `apt-get download`, which needs fresh package lists.
$sudo apt-get update -qq
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The upload-adapter tests start real moto, Glance and Keystone servers from pinned venvs
# (Tests/Tools/cloud-servers.sh install: about a minute the first time, instant after that).
venvs=${REHOST_CLOUD_VENVS:-/var/cache/rehost/cloud-venvs}
cloud_servers="$(cd "$(dirname "$0")/.." && pwd)/Tests/Tools/cloud-servers.sh"
# The offline Kubernetes manifest check (Tests/Tools/k8s-validate.py) runs in its own pinned venv
# (kubernetes==37.0.2 + PyYAML; Tests/Tools/k8s-venv.sh install, about a minute the first time).
k8s_venv="$(cd "$(dirname "$0")/.." && pwd)/Tests/Tools/k8s-venv.sh"
if mkdir -p "$venvs" 2>/dev/null && [ -w "$venvs" ]; then
  "$cloud_servers" install
  "$k8s_venv" install
else
  $sudo env REHOST_CLOUD_VENVS="$venvs" "$cloud_servers" install
  $sudo env REHOST_CLOUD_VENVS="$venvs" "$k8s_venv" install
fi
