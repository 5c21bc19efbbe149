#!/usr/bin/python3
"""Writes Rehost's hostile-input corpus: one small file (or a few) per class of hostile header,
and manifest.json saying, per case, the command to run and the substring its one-line error
must contain.

    /usr/bin/python3 Tests/Tools/make-hostile-corpus.py OUTDIR

Standard library only; every case is built byte by byte from the format specifications (qcow2.txt,
VMware's Virtual Disk Format 5.0, VirtualBox's VDI header, Microsoft's VHD specification, POSIX
ustar), never by the tools under test. Nothing here is committed as a binary: the corpus is
rebuilt by each test run in a few seconds, the largest file being the gzip bomb (~8 MiB).

manifest.json (`expect` is looked for in the message with the input's path taken out, so a case
name such as "truncated" can never satisfy it):
    {"cases": [{"name": ..., "input": "relative path of the file to hand to rehost",
                "files": ["every file of the case, relative"], "command": "inspect" |
                "export" | "convert", "output": "out.qcow2" | "out.raw" | null,
                "args": [more arguments, after the output],
                "expect": "substring of the error line", "pending": null | "reason"}]}

`pending` marks a case whose refusal is still being built (none today; the containment cases
were pending until the rule for files a VMDK descriptor names reached main): the test still
runs it and checks it ends without a signal or a timeout, but does not yet hold it to its
message or to the open() audit.
"""
import json
import os
import struct
import sys
import zlib

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
SECTOR = 512

cases = []


def case(name, input, command, expect, files=None, pending=None, args=None):
    output = {"inspect": None, "export": "out.qcow2", "convert": "out.raw", "digest": None}[command]
    cases.append({"name": name, "input": input, "files": files or [input], "command": command,
                  "output": output, "args": args or [], "expect": expect, "pending": pending})


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def pad(data, size):
    assert len(data) <= size, (len(data), size)
    return data + b"\0" * (size - len(data))


def payload(size):
    """Non-zero bytes, so that no reader may skip them as a hole."""
    return (b"hostile!" * (size // 8 + 1))[:size]


# ---------------------------------------------------------------- ext superblock (gzip, MBR)

def ext_superblock(blocks=16384):
    """A 1 KiB-block ext2 superblock declaring `blocks` blocks: enough for Rehost's geometry
    check (ExtSuperblockGeometry), nothing more."""
    sb = bytearray(1024)
    groups = (blocks - 1 + 8191) // 8192
    struct.pack_into("<I", sb, 0x00, 2048 * groups)   # s_inodes_count
    struct.pack_into("<I", sb, 0x04, blocks)          # s_blocks_count_lo
    struct.pack_into("<I", sb, 0x14, 1)               # s_first_data_block
    struct.pack_into("<I", sb, 0x18, 0)               # s_log_block_size: 1 KiB
    struct.pack_into("<I", sb, 0x20, 8192)            # s_blocks_per_group
    struct.pack_into("<I", sb, 0x28, 2048)            # s_inodes_per_group
    struct.pack_into("<H", sb, 0x38, 0xEF53)          # s_magic
    struct.pack_into("<I", sb, 0x4C, 1)               # s_rev_level
    struct.pack_into("<H", sb, 0x58, 128)             # s_inode_size
    return bytes(1024) + bytes(sb)


# ---------------------------------------------------------------- qcow2 (big-endian)

def qcow2_header(cluster_bits=16, size=64 * MiB, l1_size=1, l1_offset=3 * 65536, refcount_offset=65536,
                 refcount_clusters=1):
    h = bytearray(112)
    struct.pack_into(">IIQIIQIIQQIIQ", h, 0, 0x514649FB, 3, 0, 0, cluster_bits, size, 0, l1_size, l1_offset,
                     refcount_offset, refcount_clusters, 0, 0)
    struct.pack_into(">QQQII", h, 72, 0, 0, 0, 4, 112)
    return bytes(h)


def qcow2(l1_entries, l2_tables, clusters, size, **header):
    """Clusters: 0 header, 1 refcount table, 2 refcount block, 3 L1, then L2 tables, then data."""
    c = 65536
    image = bytearray(pad(qcow2_header(size=size, l1_size=max(1, len(l1_entries)), **header), c))
    image += pad(struct.pack(">Q", 2 * c), c)
    image += pad(b"", c)  # refcounts are not read
    image += pad(b"".join(struct.pack(">Q", e) for e in l1_entries), c)
    for table in l2_tables:
        image += pad(b"".join(struct.pack(">Q", e) for e in table), c)
    for data in clusters:
        image += pad(data, c)
    return bytes(image)


def make_qcow2(d):
    c = 65536
    copied = 1 << 63
    # A small valid image: one L2 table at cluster 4, one data cluster at cluster 5.
    good = qcow2([copied | 4 * c], [[copied | 5 * c]], [payload(c)], 64 * MiB)

    write(f"{d}/qcow2-l1-size-absurd.qcow2", pad(qcow2_header(l1_size=0xFFFFFFFF), 4 * c))
    case("qcow2-l1-size-absurd", "qcow2-l1-size-absurd.qcow2", "inspect", "l1_size")

    write(f"{d}/qcow2-refcount-table-absurd.qcow2", pad(qcow2_header(refcount_clusters=0xFFFFFFFF), 4 * c))
    case("qcow2-refcount-table-absurd", "qcow2-refcount-table-absurd.qcow2", "export", "refcount_table_clusters")

    write(f"{d}/qcow2-cluster-bits-absurd.qcow2", pad(qcow2_header(cluster_bits=63), 4 * c))
    case("qcow2-cluster-bits-absurd", "qcow2-cluster-bits-absurd.qcow2", "convert", "cluster_bits")

    # 2 GiB of guest data from one host cluster: every L2 entry of two tables points at cluster 6.
    shared = [copied | 6 * c] * (c // 8)
    write(f"{d}/qcow2-shared-clusters.qcow2", qcow2([copied | 4 * c, copied | 5 * c], [shared, shared[:]],
                                                     [payload(c)], 2 * 4096 * 2 * 65536))
    case("qcow2-shared-clusters", "qcow2-shared-clusters.qcow2", "export", "shared")
    write(f"{d}/qcow2-shared-clusters-inspect.qcow2", qcow2([copied | 4 * c, copied | 5 * c], [shared, shared[:]],
                                                             [payload(c)], 2 * 4096 * 2 * 65536))
    case("qcow2-shared-clusters-inspect", "qcow2-shared-clusters-inspect.qcow2", "inspect", "shared")

    # Compressed clusters may share sectors (qemu packs them), so sharing one is bounded by the
    # output limit: three L2 tables of entries naming one compressed cluster, 1.5 GiB of data.
    shift = 62 - (16 - 8)
    deflated = zlib.compressobj(9, zlib.DEFLATED, -15)
    data = deflated.compress(payload(c)) + deflated.flush()
    entry = (1 << 62) | ((((len(data) + 511) // 512) - 1) << shift) | (7 * c)
    write(f"{d}/qcow2-shared-compressed.qcow2",
          qcow2([copied | 4 * c, copied | 5 * c, copied | 6 * c], [[entry] * (c // 8)] * 3, [data], 3 * 8192 * c))
    case("qcow2-shared-compressed", "qcow2-shared-compressed.qcow2", "export", "--max-output-size",
         args=["--max-output-size", "64M"])

    # Two L1 entries naming one L2 table.
    write(f"{d}/qcow2-shared-l2.qcow2", qcow2([copied | 4 * c, copied | 4 * c], [[copied | 5 * c]], [payload(c)], GiB))
    case("qcow2-shared-l2", "qcow2-shared-l2.qcow2", "convert", "both point to the L2 table")

    write(f"{d}/qcow2-l1-past-eof.qcow2", qcow2([copied | (1 << 40)], [], [], 64 * MiB))
    case("qcow2-l1-past-eof", "qcow2-l1-past-eof.qcow2", "inspect", "beyond the end of the file")

    write(f"{d}/qcow2-l2-past-eof.qcow2", qcow2([copied | 4 * c], [[copied | (1 << 45)]], [], 64 * MiB))
    case("qcow2-l2-past-eof", "qcow2-l2-past-eof.qcow2", "export", "beyond the end of the file")

    # Virtual size 2^63: the L1 table it needs is past qemu's cap.
    write(f"{d}/qcow2-size-2-63.qcow2", qcow2([copied | 4 * c], [[copied | 5 * c]], [payload(c)], 1 << 63))
    case("qcow2-size-2-63", "qcow2-size-2-63.qcow2", "convert", "l1_size")

    write(f"{d}/qcow2-truncated.qcow2", good[:3 * c + 4])
    case("qcow2-truncated", "qcow2-truncated.qcow2", "inspect", "truncated qcow2 image: 8 bytes needed at byte 196608")
    write(f"{d}/qcow2-truncated-l2.qcow2", good[:4 * c + 100])
    case("qcow2-truncated-l2", "qcow2-truncated-l2.qcow2", "export", "beyond the end of the file (262244 bytes)")


# ---------------------------------------------------------------- VDI (little-endian)

def vdi(blocks, allocated, block_map, data_blocks, disk_size=None):
    h = bytearray(512)
    h[0:64] = pad(b"<<< Oracle VM VirtualBox Disk Image >>>\n", 64)
    map_offset = 512
    data_offset = (map_offset + blocks * 4 + MiB - 1) // MiB * MiB
    struct.pack_into("<IIII", h, 64, 0xBEDA107F, 0x00010001, 400, 1)
    struct.pack_into("<II", h, 340, map_offset, data_offset)
    struct.pack_into("<IIII", h, 348, 0, 0, 0, 512)
    struct.pack_into("<QIIII", h, 368, disk_size if disk_size is not None else blocks * MiB, MiB, 0, blocks, allocated)
    h[392:408] = bytes(range(1, 17))
    h[408:424] = bytes(range(17, 33))
    image = bytes(h) + b"".join(struct.pack("<I", e) for e in block_map)
    if data_blocks:
        image = pad(image, data_offset) + payload(MiB) * data_blocks
    return image


def make_vdi(d):
    # 2^28 blocks of 1 MiB (a 1 GiB block map) in a 1 KiB file.
    write(f"{d}/vdi-block-count-huge.vdi", vdi(1 << 28, 0, [0xFFFFFFFF] * 128, 0))
    case("vdi-block-count-huge", "vdi-block-count-huge.vdi", "inspect", "Rehost holds in memory")
    # The same within the budget: 2^24 blocks, a 64 MiB map in a 1 KiB file.
    write(f"{d}/vdi-block-map-past-eof.vdi", vdi(1 << 24, 0, [0xFFFFFFFF] * 128, 0))
    case("vdi-block-map-past-eof", "vdi-block-map-past-eof.vdi", "export", "truncated VDI image")

    # 2^26 + 1 blocks: a block map of more than 256 MiB.
    write(f"{d}/vdi-block-map-over-budget.vdi", vdi((1 << 26) + 1, 0, [0xFFFFFFFF] * 128, 0))
    case("vdi-block-map-over-budget", "vdi-block-map-over-budget.vdi", "convert", "more than the 268435456 Rehost holds")

    write(f"{d}/vdi-block-map-duplicated.vdi", vdi(64, 1, [0] * 64, 1))
    case("vdi-block-map-duplicated", "vdi-block-map-duplicated.vdi", "export", "which entry 0 uses already")

    write(f"{d}/vdi-block-past-eof.vdi", vdi(64, 64, [63] + [0xFFFFFFFF] * 63, 1))
    case("vdi-block-past-eof", "vdi-block-past-eof.vdi", "convert", "truncated VDI image")

    good = vdi(4, 1, [0, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF], 1)
    write(f"{d}/vdi-truncated.vdi", good[:MiB + 4096])
    case("vdi-truncated", "vdi-truncated.vdi", "inspect", "truncated VDI image")


# ---------------------------------------------------------------- VHD (big-endian)

def vhd_checksum(data, skip):
    total = sum(data[:skip]) + sum(data[skip + 4:])
    return (~total) & 0xFFFFFFFF


def vhd_footer(disk_type, size, data_offset):
    f = bytearray(512)
    f[0:8] = b"conectix"
    struct.pack_into(">IIQI", f, 8, 2, 0x00010000, data_offset, 0)
    f[28:32] = b"qem2"
    struct.pack_into(">I", f, 32, 0x00050003)
    f[36:40] = b"Wi2k"
    struct.pack_into(">QQ", f, 40, size, size)
    cylinders = min(65535, size // (16 * 255 * 512))
    struct.pack_into(">HBBI", f, 56, cylinders, 16, 255, disk_type)
    f[68:84] = bytes(range(1, 17))
    struct.pack_into(">I", f, 64, vhd_checksum(f, 64))
    return bytes(f)


def vhd_dynamic(size, entries, bat, blocks, block_size=2 * MiB):
    footer = vhd_footer(3, size, 512)
    dyn = bytearray(1024)
    dyn[0:8] = b"cxsparse"
    struct.pack_into(">QQIII", dyn, 8, 0xFFFFFFFFFFFFFFFF, 1536, 0x00010000, entries, block_size)
    struct.pack_into(">I", dyn, 36, vhd_checksum(dyn, 36))
    table = b"".join(struct.pack(">I", e) for e in bat)
    image = footer + bytes(dyn) + pad(table, (len(table) + 511) // 512 * 512)
    image += blocks
    return image + footer


def make_vhd(d):
    # 2^32 - 1 table entries of 2 MiB blocks: a 16 GiB table in a 3 KiB file.
    write(f"{d}/vhd-table-entries-huge.vhd", vhd_dynamic(2040 * GiB, 0xFFFFFFFF, [0xFFFFFFFF] * 4, b""))
    case("vhd-table-entries-huge", "vhd-table-entries-huge.vhd", "inspect", "Rehost holds in memory")
    # Within the budget: 2^20 entries (a 4 MiB BAT) in a 3 KiB file.
    write(f"{d}/vhd-bat-truncated.vhd", vhd_dynamic(2040 * GiB, 1 << 20, [0xFFFFFFFF] * 4, b""))
    case("vhd-bat-truncated", "vhd-bat-truncated.vhd", "convert", "truncated VHD image")

    bitmap = b"\xff" * 512
    first_block = (1536 + 512) // 512  # the sector after a one-sector BAT
    write(f"{d}/vhd-bat-past-eof.vhd", vhd_dynamic(8 * MiB, 4, [0x7FFFFFF0, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF], b""))
    case("vhd-bat-past-eof", "vhd-bat-past-eof.vhd", "export", "does not end before the footer")

    block = bitmap + payload(2 * MiB)
    write(f"{d}/vhd-bat-duplicated.vhd", vhd_dynamic(64 * MiB, 32, [first_block] * 32, block))
    case("vhd-bat-duplicated", "vhd-bat-duplicated.vhd", "convert", "blocks are shared")
    # Two blocks in room for two, the second starting one sector into the first.
    write(f"{d}/vhd-bat-overlapping.vhd", vhd_dynamic(64 * MiB, 32, [first_block, first_block + 1] + [0xFFFFFFFF] * 30,
                                                      block + block))
    case("vhd-bat-overlapping", "vhd-bat-overlapping.vhd", "inspect", "inside the block of entry")
    # 2^26 entries: a 256 MiB table, more than Rehost holds.
    write(f"{d}/vhd-table-over-budget.vhd", vhd_dynamic(2040 * GiB, (1 << 26) + 1, [0xFFFFFFFF] * 4, b""))
    case("vhd-table-over-budget", "vhd-table-over-budget.vhd", "export", "more than the 268435456 Rehost holds")

    good = vhd_dynamic(8 * MiB, 4, [first_block, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF], block)
    write(f"{d}/vhd-truncated.vhd", good[:1536 + 512 + 4096])
    case("vhd-truncated", "vhd-truncated.vhd", "inspect", "truncated VHD image")

    fixed = payload(4 * MiB) + vhd_footer(2, 8 * MiB, 0xFFFFFFFFFFFFFFFF)
    write(f"{d}/vhd-fixed-truncated.vhd", fixed)
    case("vhd-fixed-truncated", "vhd-fixed-truncated.vhd", "export", "truncated VHD image")


# ---------------------------------------------------------------- VMDK (little-endian)

def vmdk_header(capacity, grain=128, gtes=512, gd_sector=1, overhead=None, descriptor=(0, 0), flags=3,
                version=1, compress=0):
    h = bytearray(512)
    struct.pack_into("<IIIQQQQIQQQ", h, 0, 0x564D444B, version, flags, capacity, grain, descriptor[0], descriptor[1],
                     gtes, 0, gd_sector, overhead if overhead is not None else gd_sector)
    h[73:77] = b"\n \r\n"
    struct.pack_into("<H", h, 77, compress)
    return bytes(h)


def vmdk_sparse(capacity, directory, tables, grains, gtes=512):
    """Sector 0 header, sector 1 the directory, then the tables (gtes * 4 bytes each, sector
    padded), then the grains. Entries are sector numbers, given by the caller."""
    gd = pad(b"".join(struct.pack("<I", e) for e in directory), max(512, (len(directory) * 4 + 511) // 512 * 512))
    body = gd
    for t in tables:
        raw = b"".join(struct.pack("<I", e) for e in t)
        body += pad(raw, (len(raw) + 511) // 512 * 512)
    overhead = 1 + len(body) // 512
    image = vmdk_header(capacity, gtes=gtes, overhead=overhead) + body + grains
    return image


def make_vmdk(d):
    grain = 64 * KiB
    # 2 GiB disk: 64 tables of 512 grains. All directory entries name one table, whose 512
    # entries all name one grain.
    tables_needed = 64
    gd_sectors = (tables_needed * 4 + 511) // 512
    gt_sector = 1 + gd_sectors
    grain_sector = gt_sector + 4
    write(f"{d}/vmdk-shared-grain-table.vmdk",
          vmdk_sparse(2 * GiB // SECTOR, [gt_sector] * tables_needed, [[grain_sector] * 512], payload(grain)))
    case("vmdk-shared-grain-table", "vmdk-shared-grain-table.vmdk", "export", "shared")

    # 64 distinct tables, every entry naming one grain.
    tables = [gt_sector + 4 * i for i in range(tables_needed)]
    grain_sector = gt_sector + 4 * tables_needed
    write(f"{d}/vmdk-shared-grains.vmdk",
          vmdk_sparse(2 * GiB // SECTOR, tables, [[grain_sector] * 512] * tables_needed, payload(grain)))
    case("vmdk-shared-grains", "vmdk-shared-grains.vmdk", "inspect", "shared")

    # Four grains that overlap, each one sector after the previous one, in a file with room for
    # four: only the map of the file's sectors can tell.
    overlapping = [gt_sector + 4 + i for i in range(4)] + [0] * 508
    write(f"{d}/vmdk-overlapping-grains.vmdk",
          vmdk_sparse(32 * MiB // SECTOR, [gt_sector], [overlapping], payload(4 * grain)))
    case("vmdk-overlapping-grains", "vmdk-overlapping-grains.vmdk", "convert", "shared")

    write(f"{d}/vmdk-gtes-absurd.vmdk", pad(vmdk_header(2 * GiB // SECTOR, gtes=0xFFFFFFFF), 4096))
    case("vmdk-gtes-absurd", "vmdk-gtes-absurd.vmdk", "inspect", "numGTEsPerGT")

    write(f"{d}/vmdk-capacity-2-63.vmdk", pad(vmdk_header(1 << 63), 4096))
    case("vmdk-capacity-2-63", "vmdk-capacity-2-63.vmdk", "convert", "capacity")

    # 2^54 sectors = 2^63 bytes: fits in 64 bits, needs 2^31 grain tables.
    write(f"{d}/vmdk-capacity-2-54.vmdk", pad(vmdk_header(1 << 54), 4096))
    case("vmdk-capacity-2-54", "vmdk-capacity-2-54.vmdk", "export", "grain tables")

    good = vmdk_sparse(32 * MiB // SECTOR, [gt_sector], [[grain_sector - 4 * tables_needed + 4] + [0] * 511], payload(grain))
    write(f"{d}/vmdk-sparse-truncated.vmdk", good[:gt_sector * 512 + 1024])
    case("vmdk-sparse-truncated", "vmdk-sparse-truncated.vmdk", "inspect", "truncated VMDK image")

    # streamOptimized: header, one grain marker, cut off before the footer.
    stream = vmdk_header(32 * MiB // SECTOR, gd_sector=0xFFFFFFFFFFFFFFFF, overhead=1, version=3,
                         flags=(1 | (1 << 16) | (1 << 17)), compress=1)
    data = zlib.compress(payload(grain))
    marker = struct.pack("<QI", 0, len(data)) + data
    stream += pad(marker, (len(marker) + 511) // 512 * 512)
    write(f"{d}/vmdk-stream-truncated.vmdk", stream)

    # streamOptimized with its directory and table after the grain (footer at the end): every
    # table entry names the one grain marker, whose LBA is 0.
    shared = bytearray(vmdk_header(32 * MiB // SECTOR, gd_sector=4, overhead=2, version=3,
                                   flags=(1 | (1 << 16) | (1 << 17)), compress=1))
    shared += bytes(512)                                            # sector 1: nothing
    shared += pad(marker, 1024)                                     # sectors 2-3: the grain
    shared += pad(struct.pack("<I", 5), 512)                        # sector 4: the directory
    shared += b"".join(struct.pack("<I", 2) for _ in range(512))    # sectors 5-8: the table
    write(f"{d}/vmdk-stream-shared-grains.vmdk", bytes(shared))
    case("vmdk-stream-shared-grains", "vmdk-stream-shared-grains.vmdk", "inspect", "grain marker says LBA")
    case("vmdk-stream-truncated", "vmdk-stream-truncated.vmdk", "convert", "truncated VMDK image")

    def descriptor(lines, create="monolithicFlat"):
        return ("# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n"
                f'createType="{create}"\n\n# Extent description\n' + "".join(l + "\n" for l in lines)).encode()

    write(f"{d}/vmdk-zero-extent-2-63-sectors.vmdk", descriptor([f"RW {1 << 63} ZERO"]))
    case("vmdk-zero-extent-2-63-sectors", "vmdk-zero-extent-2-63-sectors.vmdk", "inspect", "do not fit in 64 bits")

    write(f"{d}/vmdk-zero-extent-2-63-bytes.vmdk", descriptor([f"RW {1 << 54} ZERO"]))
    case("vmdk-zero-extent-2-63-bytes", "vmdk-zero-extent-2-63-bytes.vmdk", "convert", "virtual size")

    write(f"{d}/vmdk-extents-past-2-64.vmdk", descriptor([f"RW {1 << 54} ZERO"] * 2))
    case("vmdk-extents-past-2-64", "vmdk-extents-past-2-64.vmdk", "export", "more than 2^64 bytes")

    write(f"{d}/vmdk-many-zero-extents.vmdk", descriptor([f"RW {1 << 40} ZERO"] * 1000))
    case("vmdk-many-zero-extents", "vmdk-many-zero-extents.vmdk", "inspect", "virtual size")

    # Flat extent shorter than its line.
    os.makedirs(f"{d}/flat-short", exist_ok=True)
    write(f"{d}/flat-short/disk.vmdk", descriptor(['RW 8192 FLAT "disk-flat.vmdk" 0']))
    write(f"{d}/flat-short/disk-flat.vmdk", payload(MiB))
    case("vmdk-flat-truncated", "flat-short/disk.vmdk", "export", "truncated VMDK image",
         files=["flat-short/disk.vmdk", "flat-short/disk-flat.vmdk"])

    # One sparse extent named by 64 lines: 64 times its data.
    os.makedirs(f"{d}/shared-extent", exist_ok=True)
    one = vmdk_sparse(32 * MiB // SECTOR, [gt_sector], [[gt_sector + 4] + [0] * 511], payload(grain))
    write(f"{d}/shared-extent/disk-s001.vmdk", one)
    write(f"{d}/shared-extent/disk.vmdk",
          descriptor(['RW 65536 SPARSE "disk-s001.vmdk"'] * 64, create="twoGbMaxExtentSparse"))
    case("vmdk-shared-sparse-extent", "shared-extent/disk.vmdk", "inspect", "shared extents",
         files=["shared-extent/disk.vmdk", "shared-extent/disk-s001.vmdk"])
    # One flat file read twice, at overlapping offsets.
    write(f"{d}/flat-short/twice.vmdk", descriptor(['RW 2048 FLAT "disk-flat.vmdk" 0', 'RW 1024 FLAT "disk-flat.vmdk" 1024']))
    case("vmdk-shared-flat-extent", "flat-short/twice.vmdk", "export", "shared extents",
         files=["flat-short/twice.vmdk", "flat-short/disk-flat.vmdk"])

    # Containment: files a descriptor may not open (FileContainment; --allow-external-files).
    os.makedirs(f"{d}/abs", exist_ok=True)
    write(f"{d}/abs/disk.vmdk", descriptor(['RW 1 FLAT "/etc/passwd" 0']))
    case("vmdk-extent-absolute-path", "abs/disk.vmdk", "inspect", "--allow-external-files",
         files=["abs/disk.vmdk"])

    os.makedirs(f"{d}/dotdot/inner", exist_ok=True)
    write(f"{d}/dotdot/outside.raw", payload(MiB))
    write(f"{d}/dotdot/inner/disk.vmdk", descriptor(['RW 2048 FLAT "../outside.raw" 0']))
    case("vmdk-extent-dotdot", "dotdot/inner/disk.vmdk", "export", "--allow-external-files",
         files=["dotdot/inner/disk.vmdk"])

    os.makedirs(f"{d}/symlink/inner", exist_ok=True)
    write(f"{d}/symlink/target.raw", payload(MiB))
    if os.path.lexists(f"{d}/symlink/inner/disk-flat.vmdk"):
        os.unlink(f"{d}/symlink/inner/disk-flat.vmdk")
    os.symlink("../target.raw", f"{d}/symlink/inner/disk-flat.vmdk")
    write(f"{d}/symlink/inner/disk.vmdk", descriptor(['RW 2048 FLAT "disk-flat.vmdk" 0']))
    case("vmdk-extent-symlink-outside", "symlink/inner/disk.vmdk", "convert", "--allow-external-files",
         files=["symlink/inner/disk.vmdk"])

    os.makedirs(f"{d}/fifo", exist_ok=True)
    if os.path.lexists(f"{d}/fifo/disk-flat.vmdk"):
        os.unlink(f"{d}/fifo/disk-flat.vmdk")
    os.mkfifo(f"{d}/fifo/disk-flat.vmdk")
    write(f"{d}/fifo/disk.vmdk", descriptor(['RW 2048 FLAT "disk-flat.vmdk" 0']))
    case("vmdk-extent-fifo", "fifo/disk.vmdk", "export", "FIFO", files=["fifo/disk.vmdk", "fifo/disk-flat.vmdk"])


# ---------------------------------------------------------------- OVA (ustar)

def tar_member(name, data_size, size_field=None):
    h = bytearray(512)
    h[0:len(name)] = name.encode()
    h[100:108] = b"0000644\0"
    h[108:116] = b"0000000\0"
    h[116:124] = b"0000000\0"
    if size_field is None:
        h[124:136] = b"%011o\0" % data_size
    else:
        h[124:136] = size_field
    h[136:148] = b"00000000000\0"
    h[156] = ord("0")
    h[257:263] = b"ustar\0"
    h[263:265] = b"00"
    h[148:156] = b" " * 8
    h[148:156] = b"%06o\0 " % sum(h)
    return bytes(h)


def ovf(disk="disk.vmdk"):
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">
  <References><File ovf:href="{disk}" ovf:id="file1"/></References>
  <DiskSection><Info>disks</Info><Disk ovf:capacity="33554432" ovf:diskId="vmdisk1" ovf:fileRef="file1"
    ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/></DiskSection>
  <VirtualSystem ovf:id="vm"><Info>vm</Info></VirtualSystem>
</Envelope>
""".encode()


def make_ova(d):
    text = ovf()
    member = tar_member("vm.ovf", len(text)) + pad(text, (len(text) + 511) // 512 * 512)
    # A base-256 size with bits above 2^64 (and a negative one).
    write(f"{d}/ova-size-overflow.ova", member + tar_member("disk.vmdk", 0, size_field=b"\x80" + b"\xff" * 11) + bytes(1024))
    case("ova-size-overflow", "ova-size-overflow.ova", "inspect", "base-256 size")
    write(f"{d}/ova-size-negative.ova", member + tar_member("disk.vmdk", 0, size_field=b"\xff" * 12) + bytes(1024))
    case("ova-size-negative", "ova-size-negative.ova", "export", "base-256 size")
    # The disk member claims 8 GiB - 1 bytes; the file holds 1 KiB of it.
    write(f"{d}/ova-member-past-eof.ova", member + tar_member("disk.vmdk", 8 * GiB - 1) + bytes(1024))
    case("ova-member-past-eof", "ova-member-past-eof.ova", "convert", "truncated OVA image: 8589934591 bytes needed")
    write(f"{d}/ova-truncated.ova", member[:700])
    case("ova-truncated", "ova-truncated.ova", "inspect", "truncated OVA image")


# ---------------------------------------------------------------- gzip, MBR, raw

def gzip_of_zeros(prefix, zero_bytes):
    """A gzip member of `prefix` then `zero_bytes` zeros, written chunk by chunk: after a full
    flush a chunk of zeros always deflates to the same bytes, so it is compressed once and
    repeated. The trailer's CRC is left 0 (Rehost must stop long before it)."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    out = bytearray(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff")
    out += c.compress(prefix) + c.flush(zlib.Z_FULL_FLUSH)
    chunk = bytes(MiB)
    first = c.compress(chunk) + c.flush(zlib.Z_FULL_FLUSH)
    second = c.compress(chunk) + c.flush(zlib.Z_FULL_FLUSH)
    third = c.compress(chunk) + c.flush(zlib.Z_FULL_FLUSH)
    assert second == third
    out += first + second * (zero_bytes // MiB - 2)
    out += c.flush()
    out += struct.pack("<II", 0, (len(prefix) + zero_bytes) & 0xFFFFFFFF)
    return bytes(out)


def mbr(partitions):
    m = bytearray(512)
    for i, (boot, ptype, start, count) in enumerate(partitions):
        struct.pack_into("<B3sB3sII", m, 446 + 16 * i, 0x80 if boot else 0, b"\xfe\xff\xff", ptype, b"\xfe\xff\xff",
                         start, count)
    m[510:512] = b"\x55\xaa"
    return bytes(m)


LINUX_GUID = bytes.fromhex("af3dc60f838472478e793d69d8477de4")


def gpt(sectors, partitions):
    """A GPT disk of `sectors` sectors: protective MBR, primary header and entries (the backup is
    left out; libblkid reads the primary when its CRCs hold)."""
    entries = bytearray(128 * 128)
    for i, (type_guid, first, last) in enumerate(partitions):
        struct.pack_into("<16s16sQQQ", entries, 128 * i, type_guid, bytes(range(16, 32)), first, last, 0)
    header = bytearray(92)
    struct.pack_into("<8sIIIIQQQQ16sQIII", header, 0, b"EFI PART", 0x00010000, 92, 0, 0, 1, sectors - 1, 34,
                     sectors - 34, bytes(range(32, 48)), 2, 128, 128, zlib.crc32(entries))
    struct.pack_into("<I", header, 16, zlib.crc32(header))
    image = mbr([(False, 0xEE, 1, sectors - 1)]) + pad(bytes(header), 512) + bytes(entries)
    return pad(image, sectors * 512)


def make_misc(d):
    # A filesystem declaring 16 MiB, followed by 8 GiB of zeros, in ~8 MiB of gzip.
    write(f"{d}/gzip-bomb.img.gz", gzip_of_zeros(ext_superblock(16384), 8 * GiB))
    case("gzip-bomb", "gzip-bomb.img.gz", "inspect", "that the ext2/3/4 superblock at byte 1024 declares")
    # A partitioned disk declaring 16 MiB, then 8 GiB of zeros: past the partition, zeros count.
    write(f"{d}/gzip-bomb-disk.img.gz", gzip_of_zeros(mbr([(True, 0x83, 2048, 32768)]), 8 * GiB))
    case("gzip-bomb-disk", "gzip-bomb-disk.img.gz", "convert", "--max-output-size", args=["--max-output-size", "256M"])
    # No filesystem at all: only the size limit stops it.
    write(f"{d}/gzip-bomb-bare.gz", gzip_of_zeros(b"", 8 * GiB))
    case("gzip-bomb-bare", "gzip-bomb-bare.gz", "convert", "--max-output-size")

    good = gzip_of_zeros(ext_superblock(16384), 16 * MiB - 2048)
    write(f"{d}/gzip-truncated.img.gz", good[:len(good) // 2])
    case("gzip-truncated", "gzip-truncated.img.gz", "inspect", "the gzip stream ends early")

    fs = ext_superblock(16384)
    # A Linux partition starting at 1 TiB of a 1 MiB file.
    write(f"{d}/mbr-past-eof.img", pad(mbr([(True, 0x83, 1 << 31, 32768)]), 2048 * 512))
    case("mbr-past-eof", "mbr-past-eof.img", "inspect", "truncated disk: partition 1 ends at byte")
    # Two Linux partitions over the same filesystem.
    small = ext_superblock(1024)
    disk = bytearray(pad(mbr([(True, 0x83, 2048, 2048), (False, 0x83, 3072, 2048)]), 2048 * 512 + 3 * MiB))
    disk[2048 * 512:2048 * 512 + len(small)] = small
    write(f"{d}/mbr-overlap.img", bytes(disk))
    case("mbr-overlap", "mbr-overlap.img", "convert", "overlap")

    # A GPT whose Linux partition starts at LBA 2^63 (bytes past 2^72).
    write(f"{d}/gpt-partition-2-63.img", gpt(2048, [(LINUX_GUID, 1 << 63, (1 << 64) - 2)]))
    case("gpt-partition-2-63", "gpt-partition-2-63.img", "convert", "the gpt partition table has no Linux")

    write(f"{d}/raw-truncated.img", fs + bytes(8 * KiB))
    case("raw-truncated", "raw-truncated.img", "inspect", "truncated: the ext2 filesystem needs 16777216 bytes")


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make-hostile-corpus.py OUTDIR")
    d = sys.argv[1]
    os.makedirs(d, exist_ok=True)
    make_qcow2(d)
    make_vdi(d)
    make_vhd(d)
    make_vmdk(d)
    make_ova(d)
    make_misc(d)
    # `rehost digest` reads an image's data as `export` does: every export case again, through it.
    for c in [c for c in cases if c["command"] == "export"]:
        cases.append(dict(c, name=c["name"] + "-digest", command="digest", output=None))
    with open(f"{d}/manifest.json", "w") as f:
        json.dump({"cases": cases}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
