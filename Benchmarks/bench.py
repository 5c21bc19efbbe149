#!/usr/bin/env python3
"""Rehost benchmarks, side by side with the tools a user would pick instead, in one run.

Suite `formats`: a bootable disk made by `rehost convert` from the same kind of tree (most of the
disk empty), written to every output format by `rehost export`, next to `qemu-img convert` with its
default options and with `-m 8 -W`; then every format in one `rehost export` against the sum of
the separate qemu-img runs. OVA has no qemu-img equivalent: its alternative is qemu-img's
streamOptimized VMDK plus sha256sum and tar. The compressed raw streams (.raw.gz, .raw.xz,
.raw.zst) have none either: they are set beside gzip, pigz, xz and zstd run on the raw disk, and
.raw.gz once more with one thread, to show what the parallel members buy.

Suite `digests`: what the digests in the report cost, as ratios to a `--digest none` run: the
default disk digest (blk-sha256, taken in the pass that already reads the disk; holes cost nothing)
and `--digest file` (the SHA-256 of every output file, which must process every byte of a raw
output's holes, about 1.8 GB/s with SHA-NI on one core). Runs: `rehost convert` to a raw disk
mostly empty, and `rehost export` of that disk to qcow2, streamOptimized VMDK and VDI in one pass.

Suite `convert`: a realistic ext3 root filesystem (many small text files, some large compressible
and incompressible files, sparse files), converted by `rehost convert` into a bootable disk, next to
`e2image -ra` (a raw copy of the used blocks) and `mke2fs -t ext3 -d` (a new filesystem populated
from an unpacked tree of the same files). Prints wall time (including fsync for every tool), CPU
time, peak RSS and output allocation, as ratios to rehost, and writes JSON.

Suite `inputs`: the same guest converted by `rehost convert` from its raw image and from qcow2
images of it (plain, and deflate-compressed), which are read in place through their tables (no
scratch copy); prints each qcow2 conversion's wall time as a ratio to the raw one (the goal is at
most 1.1, printed, never asserted).

Suite `upload`: moto (signature-checking), Keystone and Glance (Keystone flavour) started once on
this host by Tests/Tools/cloud-servers.sh (its venvs must be installed), and a raw disk with random
data in extents between holes (64 MiB in 256 MiB, or 1 GiB in 4 GiB), plus its qcow2 and
streamOptimized VMDK made by `rehost export`. Each `rehost upload`, timed end to end, next to what a
user would script instead: Glance, curl's PUT of the qcow2 to an image made beforehand (the PUT
alone) and openstacksdk's create_image; S3, boto3's multipart upload_file of the VMDK (8 MiB parts,
4 in flight); EBS direct, a coldsnap-like boto3 script (every 512 KiB block that is not all zeros,
16 in flight). Prints MiB/s of what was sent and the ratio rehost / baseline.

Suite `batch`: a fleet conversion. N distinct copies (small: 4, large: 16) of the Xen instance the
tests build (Fixtures/make-xen-instance.sh; the tests' /tmp/rehost-fixture-UID/xen-instance.img when
it is there), each converted to qcow2 by `rehost batch run` of a JSON Lines manifest with its
default --jobs (the summary says which it chose and why), next to what a user would script instead:
a shell loop of `rehost convert`, one image after the other, and `xargs -P` with the jobs batch
chose (at the shell's priority; batch's conversions run at nice +10, so a busy machine favours the
baselines). Then the same manifest again, every entry skipped, timed too. Prints images/min and
GiB/min (of input; wall includes fsync of the outputs) and the ratios loop/batch and xargs/batch;
checks every batch output with `qemu-img check` and that the rerun converted nothing.

    Benchmarks/bench.py --size small          # what the test command runs (seconds)
    Benchmarks/bench.py --size large --suite formats --json out.json

No timing is asserted: the numbers are for people.
"""
import argparse
import hashlib
import json
import os
import random
import resource
import shutil
import shlex
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZES = {
    # name: (small files, small file bytes, large files, large file MiB, sparse files)
    "small": (2000, 4096, 4, 8, 4),
    "large": (60000, 6000, 24, 64, 16),
}
# The disk the formats suite converts into: most of it empty.
DISK_SIZE = {"small": "1G", "large": "8G"}
# The disk the digests suite converts into: at least the source filesystem (twice the data), so
# more than half of it is holes, which every digest must still hash.
DIGEST_DISK_SIZE = {"small": "512M", "large": "6G"}


def make_tree(root, size):
    """A deterministic guest-like tree: text-ish small files in nested directories, large files
    half compressible and half random, sparse files with a few data runs."""
    count, small_bytes, large_count, large_mib, sparse_count = SIZES[size]
    rng = random.Random(20261121)
    words = [("".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9)))).encode()
             for _ in range(2000)]
    for i in range(count):
        d = os.path.join(root, "usr", "share", f"pkg{i % 400:03d}", f"sub{i % 7}")
        os.makedirs(d, exist_ok=True)
        n = rng.randint(small_bytes // 4, small_bytes * 2)
        text = b" ".join(rng.choice(words) for _ in range(n // 6))[:n]
        with open(os.path.join(d, f"file{i}.txt"), "wb") as f:
            f.write(text)
    os.makedirs(os.path.join(root, "opt", "data"), exist_ok=True)
    for i in range(large_count):
        path = os.path.join(root, "opt", "data", f"blob{i}.bin")
        with open(path, "wb") as f:
            for _ in range(large_mib):
                chunk = rng.randbytes(1 << 20) if i % 2 else (b"log line %d: all is well\n" % i) * 43690
                f.write(chunk[: 1 << 20])
    os.makedirs(os.path.join(root, "var", "lib"), exist_ok=True)
    for i in range(sparse_count):
        path = os.path.join(root, "var", "lib", f"sparse{i}.db")
        with open(path, "wb") as f:
            f.truncate(256 << 20)
            for offset in (0, 64 << 20, 200 << 20):
                f.seek(offset)
                f.write(rng.randbytes(1 << 20))
    # What the converter needs to find in a guest.
    os.makedirs(os.path.join(root, "etc"), exist_ok=True)
    with open(os.path.join(root, "etc", "fstab"), "w") as f:
        f.write("/dev/sda1 / ext3 defaults 1 1\n")


def run(argv):
    """Runs a command under GNU time; returns wall seconds, CPU seconds and peak RSS in KiB. GNU
    time is a small process of its own, so the RSS is the tool's, not this Python process's (a
    fork would inherit Python's high-water mark)."""
    start = time.monotonic()
    with tempfile.NamedTemporaryFile("r") as report:
        done = subprocess.run(["/usr/bin/time", "-o", report.name, "-f", "%U %S %M"] + argv,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed with status {done.returncode}: {done.stderr.strip()}")
        user, system, rss = report.read().split()[-3:]
    return time.monotonic() - start, float(user) + float(system), int(rss)


def allocated(path):
    return os.stat(path).st_blocks * 512


def best_of(repeat, job):
    results = [job() for _ in range(repeat)]
    return min(results, key=lambda r: r["wall"])


def job(name, argv, output):
    def go():
        for path in output if isinstance(output, list) else [output]:
            if os.path.exists(path):
                os.unlink(path)
        outputs = output if isinstance(output, list) else [output]
        wall, cpu, rss = run(argv)
        for path in outputs:  # fsync every output, inside the timed wall clock of the job
            start = time.monotonic()
            fd = os.open(path, os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)
            wall += time.monotonic() - start
        return {"tool": name, "wall": wall, "cpu": cpu, "maxrss_kib": rss,
                "allocated": sum(allocated(p) for p in outputs), "size": sum(os.stat(p).st_size for p in outputs)}
    return go


def convert_suite(args, rehost, work, tree, source, used_mib, fs_mib):
    disk = os.path.join(work, "out.raw")
    results = [
        best_of(args.repeat, job("rehost convert", [rehost, "convert", source, "-o", disk, "-q", "--no-digest",
                                                    "--skip", "bootloader"], disk)),
        best_of(args.repeat, job("e2image -ra", ["e2image", "-ra", source, os.path.join(work, "e2image.raw")],
                                 os.path.join(work, "e2image.raw"))),
        best_of(args.repeat, job("mke2fs -t ext3 -d", ["mke2fs", "-q", "-F", "-t", "ext3", "-b", "4096", "-I", "128",
                                                       "-d", tree, os.path.join(work, "mke2fs.img"), f"{fs_mib}M"],
                                 os.path.join(work, "mke2fs.img"))),
    ]
    check = subprocess.run(["e2fsck", "-fn", f"{disk}?offset=1048576"], capture_output=True, text=True)
    base = results[0]
    print(f"convert benchmark ({args.size}): {used_mib} MiB of files in a {fs_mib} MiB ext3 image, "
          f"best of {args.repeat}; e2fsck on rehost's output: {'clean' if check.returncode == 0 else 'NOT CLEAN'}")
    print(f"{'tool':<22}{'wall s':>9}{'cpu s':>9}{'RSS MiB':>9}{'alloc MiB':>11}{'wall/rehost':>13}")
    for r in results:
        print(f"{r['tool']:<22}{r['wall']:>9.2f}{r['cpu']:>9.2f}{r['maxrss_kib'] / 1024:>9.1f}"
              f"{r['allocated'] / 2**20:>11.1f}{r['wall'] / base['wall']:>13.2f}")
    ok = check.returncode == 0
    return ok, {"suite": "convert", "data_mib": used_mib, "filesystem_mib": fs_mib, "output_clean": ok, "results": results}


def digests_suite(args, rehost, work, source):
    disk = os.path.join(work, "digest.raw")
    size = DIGEST_DISK_SIZE[args.size]
    base = [rehost, "convert", source, "-o", disk, "--size", size, "-q", "--skip", "bootloader"]
    outputs = [os.path.join(work, f"digest.{ext}") for ext in ("qcow2", "vmdk", "vdi")]
    export = [rehost, "export", disk, "-q"] + [arg for path in outputs for arg in ("-o", path)]
    rows = []
    for label, argv, paths in (("convert to raw", base, disk), ("export to qcow2+vmdk+vdi", export, outputs)):
        runs = [best_of(args.repeat, job(f"{label} --digest {mode}", argv + ["--digest", mode], paths))
                for mode in ("none", "disk", "file")]
        rows.append((label, *runs))
    print(f"digests benchmark ({args.size}): a {size} disk, best of {args.repeat}; wall includes fsync; "
          f"disk = the default blk-sha256 of the disk, file = the SHA-256 of every output file")
    print(f"{'run':<28}{'none s':>8}{'disk s':>8}{'file s':>8}{'disk/none':>11}{'file/none':>11}")
    for label, none, disk_run, file_run in rows:
        print(f"{label:<28}{none['wall']:>8.2f}{disk_run['wall']:>8.2f}{file_run['wall']:>8.2f}"
              f"{disk_run['wall'] / none['wall']:>11.2f}{file_run['wall'] / none['wall']:>11.2f}")
    return True, {"suite": "digests", "disk": size,
                  "rows": [{"run": label, "none": n, "disk": d, "file": f, "disk_ratio": d["wall"] / n["wall"],
                            "file_ratio": f["wall"] / n["wall"]} for label, n, d, f in rows]}


# Inputs: label, qemu-img options that make the input from the raw source (None: the source itself).
INPUTS = [
    ("raw", None),
    ("qcow2", ["-O", "qcow2"]),
    ("qcow2 deflate", ["-O", "qcow2", "-c"]),
]


def inputs_suite(args, rehost, work, source):
    """The same guest converted from raw and from qcow2 inputs; the ratios are to the raw input."""
    disk = os.path.join(work, "from-input.raw")
    rows = []
    for label, make in INPUTS:
        image = source
        if make is not None:
            image = os.path.join(work, "input.qcow2")
            if os.path.exists(image):
                os.unlink(image)
            subprocess.run(["qemu-img", "convert", "-f", "raw"] + make + [source, image], check=True)
            os.sync()
        r = best_of(args.repeat, job(label, [rehost, "convert", image, "-o", disk, "-q", "--no-digest",
                                             "--skip", "bootloader"], disk))
        r["input_bytes"] = os.stat(image).st_size
        check = subprocess.run(["e2fsck", "-fn", f"{disk}?offset=1048576"], capture_output=True, text=True)
        r["output_clean"] = check.returncode == 0
        rows.append(r)
    base = rows[0]
    print(f"inputs benchmark ({args.size}): one guest converted from each input, best of {args.repeat}; "
          f"goal: qcow2 at most 1.1x raw")
    print(f"{'input':<22}{'input MiB':>10}{'wall s':>9}{'cpu s':>9}{'RSS MiB':>9}{'wall/raw':>10}{'e2fsck':>8}")
    for r in rows:
        print(f"{r['tool']:<22}{r['input_bytes'] / 2**20:>10.1f}{r['wall']:>9.2f}{r['cpu']:>9.2f}"
              f"{r['maxrss_kib'] / 1024:>9.1f}{r['wall'] / base['wall']:>10.2f}{'clean' if r['output_clean'] else 'NOT':>8}")
    ok = all(r["output_clean"] for r in rows)
    return ok, {"suite": "inputs", "results": rows}


# label, rehost export options, file extension, qemu-img -O format and options, qemu-img -f to read it back
FORMATS = [
    ("raw", [], "raw", ["-O", "raw"], "raw"),
    ("qcow2", [], "qcow2", ["-O", "qcow2"], "qcow2"),
    ("qcow2 deflate", ["--compress", "deflate"], "qcow2", ["-O", "qcow2", "-c"], "qcow2"),
    ("vmdk streamOptimized", [], "vmdk", ["-O", "vmdk", "-o", "subformat=streamOptimized"], "vmdk"),
    ("vmdk monolithicSparse", ["--vmdk-subformat", "monolithicSparse"], "vmdk", ["-O", "vmdk"], "vmdk"),
    ("vdi", [], "vdi", ["-O", "vdi"], "vdi"),
    ("vhd dynamic", [], "vhd", ["-O", "vpc"], "vpc"),
    ("vhd fixed", ["--vhd-variant", "fixed"], "vhd", ["-O", "vpc", "-o", "subformat=fixed,force_size=on"], "vpc"),
    ("vhdx dynamic", [], "vhdx", ["-O", "vhdx", "-o", "block_size=32M"], "vhdx"),
    ("vhdx fixed", ["--vhdx-variant", "fixed"], "vhdx", ["-O", "vhdx", "-o", "subformat=fixed,block_size=32M"], "vhdx"),
]

# Compressed raw streams: label, output extension, the environment of the rehost run, the
# commands a user would run instead (label, shell command with {disk} and {out}), and the
# decompressor that must give back the disk.
STREAMS = [
    ("raw.gz", "raw.gz", {}, [("gzip -6", "gzip -6 -c {disk} > {out}"), ("pigz -6", "pigz -6 -c {disk} > {out}")],
     ["gzip", "-dc"]),
    ("raw.gz 1 thread", "raw.gz", {"REHOST_COMPRESSION_THREADS": "1"}, [("gzip -6", "gzip -6 -c {disk} > {out}")],
     ["gzip", "-dc"]),
    ("raw.xz", "raw.xz", {}, [("xz -6 -T0", "xz -6 -T0 -c {disk} > {out}")], ["xz", "-dc"]),
    ("raw.zst", "raw.zst", {}, [("zstd -3 -T0", "zstd -q -3 -T0 -c {disk} > {out}")], ["zstd", "-dcq"]),
]

# Reading: label, qemu-img options that make the input, file extension, qemu-img -f to read it.
READS = [
    ("read qcow2", ["-O", "qcow2"], "qcow2", "qcow2"),
    ("read qcow2 deflate", ["-O", "qcow2", "-c"], "qcow2", "qcow2"),
    ("read vmdk streamOptimized", ["-O", "vmdk", "-o", "subformat=streamOptimized"], "vmdk", "vmdk"),
    ("read vmdk monolithicSparse", ["-O", "vmdk"], "vmdk", "vmdk"),
    ("read vdi", ["-O", "vdi"], "vdi", "vdi"),
    ("read vhd dynamic", ["-O", "vpc", "-o", "force_size=on"], "vhd", "vpc"),
    ("read vhdx dynamic", ["-O", "vhdx"], "vhdx", "vhdx"),
]


def read_rows(args, rehost, work, disk, rows, failures):
    """Each input format, as qemu-img writes it, back to raw: rehost export against qemu-img convert."""
    for label, make, ext, qemu_format in READS:
        if args.only and label not in args.only:
            continue
        image = os.path.join(work, f"input.{ext}")
        if os.path.exists(image):
            os.unlink(image)
        subprocess.run(["qemu-img", "convert", "-f", "raw"] + make + [disk, image], check=True)
        os.sync()
        ours, theirs = os.path.join(work, "back-rehost.raw"), os.path.join(work, "back-qemu.raw")
        r = best_of(args.repeat, job("rehost", [rehost, "export", image, "-o", ours, "-q", "--no-digest"], ours))
        compare = subprocess.run(["qemu-img", "compare", "-f", "raw", "-F", "raw", disk, ours], capture_output=True, text=True)
        if compare.returncode != 0:
            failures.append(f"{label}: qemu-img compare: {compare.stdout.strip()} {compare.stderr.strip()}")
        q = best_of(args.repeat, job("qemu-img", ["qemu-img", "convert", "-f", qemu_format, "-O", "raw", image, theirs], theirs))
        w = best_of(args.repeat, job("qemu-img -m 8 -W", ["qemu-img", "convert", "-m", "8", "-W", "-f", qemu_format,
                                                          "-O", "raw", image, theirs], theirs))
        rows.append({"format": label, "rehost": r, "qemu_img": q, "qemu_img_m8W": w})
        for path in (image, ours, theirs):
            os.unlink(path)


def formats_suite(args, rehost, work, source):
    disk = os.path.join(work, "disk.raw")
    subprocess.run([rehost, "convert", source, "-o", disk, "--size", DISK_SIZE[args.size], "-q", "--no-digest",
                    "--skip", "bootloader"], check=True, stdout=subprocess.DEVNULL)
    disk_size = os.stat(disk).st_size
    os.sync()  # the new disk's own writeback must not land on the first timed job
    rows, failures = [], []
    for label, options, ext, qemu, qemu_format in FORMATS:
        if args.only and label not in args.only:
            continue
        ours = os.path.join(work, f"rehost.{ext}")
        theirs = os.path.join(work, f"qemu.{ext}")
        r = best_of(args.repeat, job("rehost", [rehost, "export", disk, "-o", ours, "-q", "--no-digest"] + options, ours))
        compare = subprocess.run(["qemu-img", "compare", "-f", "raw", "-F", qemu_format, disk, ours], capture_output=True, text=True)
        if compare.returncode != 0:
            failures.append(f"{label}: qemu-img compare: {compare.stdout.strip()} {compare.stderr.strip()}")
        q = best_of(args.repeat, job("qemu-img", ["qemu-img", "convert", "-f", "raw"] + qemu + [disk, theirs], theirs))
        w = best_of(args.repeat, job("qemu-img -m 8 -W", ["qemu-img", "convert", "-m", "8", "-W", "-f", "raw"] + qemu + [disk, theirs], theirs))
        rows.append({"format": label, "rehost": r, "qemu_img": q, "qemu_img_m8W": w})
    read_rows(args, rehost, work, disk, rows, failures)
    streams = stream_rows(args, rehost, work, disk, failures)
    if args.only:
        return report_formats(args, disk_size, rows, failures, None, None, streams)
    # OVA: rehost in one go, against qemu-img's streamOptimized VMDK plus a manifest and tar.
    ova = os.path.join(work, "rehost.ova")
    r = best_of(args.repeat, job("rehost", [rehost, "export", disk, "-o", ova, "-q", "--no-digest"], ova))
    script = (f"cd {work} && qemu-img convert -f raw -O vmdk -o subformat=streamOptimized {disk} vm-disk1.vmdk && "
              f"printf '<Envelope/>' > vm.ovf && sha256sum vm.ovf vm-disk1.vmdk > vm.mf && "
              f"tar --format=ustar -cf qemu.ova vm.ovf vm.mf vm-disk1.vmdk")
    q = best_of(args.repeat, job("qemu-img + tar", ["/bin/sh", "-c", script], os.path.join(work, "qemu.ova")))
    rows.append({"format": "ova", "rehost": r, "qemu_img": q, "qemu_img_m8W": None})
    # Every format in one pass, against the sum of the separate qemu-img runs.
    # Format options apply to every output of a run, so the one-pass run mixes the six formats at
    # their defaults; it is measured against the sum of the same six separate runs.
    defaults = ["raw", "qcow2", "vmdk streamOptimized", "vdi", "vhd dynamic", "ova"]
    everything = [os.path.join(work, f"all.{ext}") for ext in ("raw", "qcow2", "vmdk", "vdi", "vhd", "ova")]
    argv = [rehost, "export", disk, "-q", "--no-digest"] + [arg for path in everything for arg in ("-o", path)]
    together = best_of(args.repeat, job("rehost, all in one pass", argv, everything))
    separate = sum(row["qemu_img"]["wall"] for row in rows if row["format"] in defaults)
    return report_formats(args, disk_size, rows, failures, together, separate, streams)


def stream_rows(args, rehost, work, disk, failures):
    """Each compressed raw stream, rehost export against the compressors a user would run on the
    raw disk; rehost's output must decompress to the disk."""
    rows = []
    digest = file_sha256(disk)
    for label, ext, env, baselines, decompress in STREAMS:
        if args.only and label not in args.only:
            continue
        ours = os.path.join(work, f"rehost.{ext}")
        argv = ["env"] + [f"{k}={v}" for k, v in env.items()] + [rehost, "export", disk, "-o", ours, "-q", "--no-digest"]
        r = best_of(args.repeat, job("rehost", argv, ours))
        if stream_sha256(decompress + [ours]) != digest:
            failures.append(f"{label}: {' '.join(decompress)} does not give back the disk")
        theirs = []
        for name, command in baselines:
            out = os.path.join(work, f"theirs.{ext}")
            script = command.format(disk=shlex.quote(disk), out=shlex.quote(out))
            theirs.append(best_of(args.repeat, job(name, ["/bin/sh", "-c", script], out)))
        rows.append({"stream": label, "rehost": r, "baselines": theirs})
    return rows


def stream_sha256(argv):
    """The SHA-256 of what a command writes, read as it comes (a disk does not fit in memory)."""
    digest = hashlib.sha256()
    with subprocess.Popen(argv, stdout=subprocess.PIPE) as process:
        for chunk in iter(lambda: process.stdout.read(1 << 20), b""):
            digest.update(chunk)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed with status {process.returncode}")
    return digest.hexdigest()


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def report_formats(args, disk_size, rows, failures, together, separate, streams):
    print(f"formats benchmark ({args.size}): a {disk_size / 2**30:.1f} GiB bootable disk, best of {args.repeat}; "
          f"wall includes fsync")
    print(f"{'format':<28}{'rehost s':>9}{'qemu s':>9}{'-m8 -W s':>9}{'r/qemu':>8}{'r/-W':>7}{'size r/q':>9}"
          f"{'RSS MiB':>9}{'r cpu s':>8}")
    for row in rows:
        r, q, w = row["rehost"], row["qemu_img"], row["qemu_img_m8W"]
        wtext = f"{w['wall']:>9.2f}" if w else f"{'-':>9}"
        wratio = f"{r['wall'] / w['wall']:>7.2f}" if w else f"{'-':>7}"
        print(f"{row['format']:<28}{r['wall']:>9.2f}{q['wall']:>9.2f}{wtext}{r['wall'] / q['wall']:>8.2f}{wratio}"
              f"{r['size'] / max(q['size'], 1):>9.3f}{r['maxrss_kib'] / 1024:>9.1f}{r['cpu']:>8.2f}")
    if together:
        print(f"all six default formats in one rehost pass: {together['wall']:.2f} s, "
              f"peak RSS {together['maxrss_kib'] / 1024:.1f} MiB; separate qemu-img runs: {separate:.2f} s "
              f"(ratio {together['wall'] / separate:.2f})")
    if streams:
        print(f"{'compressed stream':<20}{'rehost s':>9}{'r cpu s':>8}  {'instead':<14}{'s':>7}{'cpu s':>7}{'r/it':>6}{'size r/it':>10}")
        for row in streams:
            r = row["rehost"]
            for b in row["baselines"]:
                print(f"{row['stream']:<20}{r['wall']:>9.2f}{r['cpu']:>8.2f}  {b['tool']:<14}{b['wall']:>7.2f}{b['cpu']:>7.2f}"
                      f"{r['wall'] / b['wall']:>6.2f}{r['size'] / max(b['size'], 1):>10.3f}")
    for failure in failures:
        print("MISMATCH " + failure)
    return not failures, {"suite": "formats", "disk_bytes": disk_size, "rows": rows, "streams": streams,
                          "one_pass": together, "separate_qemu_img_wall": separate, "failures": failures}


# The upload suite: the disk each size class uploads (disk bytes, data bytes, extents of data).
UPLOAD_SIZES = {"small": (256 << 20, 64 << 20, 8), "large": (4 << 30, 1 << 30, 16)}
CLOUD_SERVERS = os.path.join(ROOT, "Tests", "Tools", "cloud-servers.sh")
CLOUD_VENVS = os.environ.get("REHOST_CLOUD_VENVS", "/var/cache/rehost/cloud-venvs")
MIB = 1 << 20

# Baselines, run by the venvs' Python; each prints a JSON line with its own timing, taken after
# its imports (Python and boto3/openstacksdk start-up, about 0.5 s, is left out: a long-lived
# client would not pay it per upload).
SDK_GLANCE = r'''
import json, sys, time
import openstack
path, name = sys.argv[1], sys.argv[2]
start = time.monotonic()
conn = openstack.connect(cloud="test")
image = conn.image.create_image(name, filename=path, disk_format="qcow2", container_format="bare", wait=True)
seconds = time.monotonic() - start
status = conn.image.get_image(image.id).status
conn.image.delete_image(image)
print(json.dumps({"seconds": seconds, "status": status}))
'''

BOTO3_S3 = r'''
import json, os, sys, time
import boto3
from boto3.s3.transfer import TransferConfig
path, bucket = sys.argv[1], sys.argv[2]
s3 = boto3.client("s3", region_name=os.environ.get("AWS_REGION", "us-east-1"))
s3.create_bucket(Bucket=bucket)
config = TransferConfig(multipart_threshold=8 << 20, multipart_chunksize=8 << 20, max_concurrency=4)
start = time.monotonic()
s3.upload_file(path, bucket, os.path.basename(path), Config=config)
seconds = time.monotonic() - start
size = s3.head_object(Bucket=bucket, Key=os.path.basename(path))["ContentLength"]
print(json.dumps({"seconds": seconds, "size": size}))
'''

# coldsnap's way: StartSnapshot, PutSnapshotBlock of every 512 KiB block that is not all zeros
# (16 in flight, SHA-256 checksums), CompleteSnapshot. It finds the data with SEEK_DATA/SEEK_HOLE
# rather than reading the holes (coldsnap reads them), so the baseline is the quicker one.
# moto hashes an empty body differently from botocore: a before-sign hook sends the payload hash
# of CompleteSnapshot's empty body (as Tests/Tools/aws-readback.py does).
BOTO3_EBS = r'''
import base64, concurrent.futures, hashlib, json, os, sys, time
import boto3, botocore.config
path = sys.argv[1]
BLOCK = 512 << 10
EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
ebs = boto3.client("ebs", region_name=os.environ.get("AWS_REGION", "us-east-1"), config=botocore.config.Config(max_pool_connections=16))
def add_content_hash(request, **_):
    if "X-Amz-Content-SHA256" not in request.headers and not request.body:
        request.headers["X-Amz-Content-SHA256"] = EMPTY
ebs.meta.events.register("before-sign", add_content_hash)
start = time.monotonic()
fd = os.open(path, os.O_RDONLY)
size = os.fstat(fd).st_size
blocks, offset = [], 0
while offset < size:
    try:
        data = os.lseek(fd, offset, os.SEEK_DATA)
    except OSError:
        break
    hole = os.lseek(fd, data, os.SEEK_HOLE)
    blocks.extend(range(data // BLOCK, (hole + BLOCK - 1) // BLOCK))
    offset = (hole + BLOCK - 1) // BLOCK * BLOCK
blocks = sorted(set(blocks))
t = time.monotonic()
snapshot = ebs.start_snapshot(VolumeSize=(size + (1 << 30) - 1) >> 30, Timeout=60)["SnapshotId"]
start_seconds = time.monotonic() - t
zero = bytes(BLOCK)
def put(index):
    data = os.pread(fd, BLOCK, index * BLOCK).ljust(BLOCK, b"\0")
    if data == zero:
        return None
    t = time.monotonic()
    response = ebs.put_snapshot_block(SnapshotId=snapshot, BlockIndex=index, BlockData=data, DataLength=BLOCK,
                                      Checksum=base64.b64encode(hashlib.sha256(data).digest()).decode(),
                                      ChecksumAlgorithm="SHA256")
    return (1, response["ResponseMetadata"].get("RetryAttempts", 0), time.monotonic() - t)
with concurrent.futures.ThreadPoolExecutor(16) as pool:
    results = [r for r in pool.map(put, blocks) if r]
sent = len(results)
t = time.monotonic()
ebs.complete_snapshot(SnapshotId=snapshot, ChangedBlocksCount=sent)
seconds = time.monotonic() - start
complete_seconds = time.monotonic() - t
print(json.dumps({"seconds": seconds, "blocks": sent, "bytes": sent * BLOCK,
                  "retries": sum(r[1] for r in results), "slowest_put": max((r[2] for r in results), default=0),
                  "start_snapshot": start_seconds, "complete_snapshot": complete_seconds}))
'''


def make_upload_disk(path, size):
    """A converted guest's shape: random data in extents of unequal length at 4 KiB-aligned
    offsets, holes between them (so some 512 KiB blocks are partly data, most are holes)."""
    disk_bytes, data_bytes, extents = UPLOAD_SIZES[size]
    rng = random.Random(20261206)
    slot = disk_bytes // extents
    weights = [rng.uniform(0.5, 1.5) for _ in range(extents)]
    lengths = [int(data_bytes * w / sum(weights)) // 4096 * 4096 for w in weights]
    with open(path, "wb") as f:
        f.truncate(disk_bytes)
        for i, length in enumerate(lengths):
            length = min(length, slot - 4096)
            f.seek(i * slot + rng.randrange(0, (slot - length) // 4096) * 4096)
            for done in range(0, length, 8 * MIB):
                f.write(rng.randbytes(min(8 * MIB, length - done)))
    return sum(lengths)


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_env(path):
    with open(path) as f:
        return dict(line.strip().split("=", 1) for line in f if "=" in line)


def http_json(method, url, body=None, token=None):
    import urllib.request
    request = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body is not None else None)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("X-Auth-Token", token)
    with urllib.request.urlopen(request, timeout=120) as response:
        text = response.read()
        return response.headers, (json.loads(text) if text else None)


class CloudServers:
    """moto, Keystone and Glance (Keystone flavour) on free ports of 127.0.0.1, in DIR."""

    def __init__(self, directory):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self.started = False

    def start(self):
        moto, keystone, glance = free_port(), free_port(), free_port()
        self.glance = f"http://127.0.0.1:{glance}"
        self.keystone = f"http://127.0.0.1:{keystone}/v3"
        # A watchdog stops each server if this process dies without its finally clause.
        env = dict(os.environ, REHOST_CLOUD_OWNER_PID=str(os.getpid()))
        commands = [["start-moto", self.dir, str(moto)], ["start-keystone", self.dir, str(keystone), self.glance],
                    ["start-glance", self.dir, str(glance), self.keystone]]
        self.started = True
        # The three start together: Glance needs Keystone only when a request comes.
        starts = [subprocess.Popen([CLOUD_SERVERS] + c, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True) for c in commands]
        for command, process in zip(commands, starts):
            output = process.communicate()[0]
            if process.returncode != 0:
                raise SystemExit(f"cloud-servers.sh {command[0]} failed: {output.strip()}")
        self.moto_env = read_env(os.path.join(self.dir, "moto.env"))

    def moto_reset(self):
        subprocess.run([CLOUD_SERVERS, "moto-reset", self.dir], check=True, stdout=subprocess.DEVNULL)
        self.moto_env = read_env(os.path.join(self.dir, "moto.env"))

    def token(self):
        headers, _ = http_json("POST", self.keystone + "/auth/tokens", {"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": "admin", "domain": {"id": "default"}, "password": "password"}}},
            "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}})
        return headers["X-Subject-Token"]

    def glance_delete(self, image, token):
        http_json("DELETE", f"{self.glance}/v2/images/{image}", token=token)

    def stop(self):
        if self.started:
            subprocess.run([CLOUD_SERVERS, "stop", self.dir], stdout=subprocess.DEVNULL)


def timed(argv, env=None):
    """Runs argv; returns wall seconds and its stdout (which must be JSON for the baselines and
    `rehost --json`)."""
    start = time.monotonic()
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    wall = time.monotonic() - start
    if done.returncode != 0:
        shown = " ".join(arg if len(arg) < 80 else arg[:60].strip() + "..." for arg in argv)
        raise SystemExit(f"{shown} failed with status {done.returncode}: "
                         f"{(done.stderr or done.stdout).strip()[-2000:]}")
    return wall, done.stdout


def rehost_upload(rehost, argv, env):
    wall, out = timed([rehost, "upload"] + argv + ["--json"], env)
    report = json.loads(out)
    upload = report.get("upload", report)
    return {"wall": wall, "upload": upload}


def interleaved(repeat, *jobs):
    """The best run of each job, the jobs taking turns, so that a burst of load from elsewhere on
    the machine falls on all of them rather than on one job's every run."""
    runs = [[] for _ in jobs]
    for _ in range(repeat):
        for done, go in zip(runs, jobs):
            done.append(go())
    return [min(done, key=lambda r: r["wall"]) for done in runs]


def upload_suite(args, rehost, work):
    venv_python = {name: os.path.join(CLOUD_VENVS, name, "bin", "python") for name in ("moto", "openstack")}
    missing = [path for path in venv_python.values() if not os.access(path, os.X_OK)]
    if missing:
        message = f"upload benchmark: no cloud-server venvs ({', '.join(missing)}); run {CLOUD_SERVERS} install"
        print(message)
        return args.suite != "upload", {"suite": "upload", "skipped": message}
    raw = os.path.join(work, "upload.raw")
    data_bytes = make_upload_disk(raw, args.size)
    qcow2, vmdk = os.path.join(work, "upload.qcow2"), os.path.join(work, "upload.vmdk")
    subprocess.run([rehost, "export", raw, "-o", qcow2, "-o", vmdk, "-q", "--no-digest"], check=True,
                   stdout=subprocess.DEVNULL)
    os.sync()
    sizes = {path: os.stat(path).st_size for path in (raw, qcow2, vmdk)}
    servers = CloudServers(os.path.join(work, "servers"))
    rows = []
    try:
        started = time.monotonic()
        servers.start()
        start_seconds = time.monotonic() - started
        os_env = dict(os.environ, OS_CLIENT_CONFIG_FILE=os.path.join(servers.dir, "clouds.yaml"))
        os_env.pop("OS_CLOUD", None)
        counter = iter(range(1, 1 << 30))

        def aws_env():
            return dict(os.environ, **servers.moto_env, REHOST_AWS_POLL_SECONDS="0.1")

        # 1. Glance: curl's PUT of the file to an image made beforehand, openstacksdk's create_image
        # end to end, rehost upload end to end (auth, create, PUT, wait for active, checksum check).
        def curl_put():
            started = time.monotonic()
            token = servers.token()
            authenticated = time.monotonic()
            _, image = http_json("POST", f"{servers.glance}/v2/images", {
                "name": f"bench-curl-{next(counter)}", "disk_format": "qcow2", "container_format": "bare"}, token)
            created = time.monotonic()
            wall, _ = timed(["curl", "-s", "-f", "-T", qcow2, "-X", "PUT", "-H", "Content-Type: application/octet-stream",
                             "-H", f"X-Auth-Token: {token}", f"{servers.glance}/v2/images/{image['id']}/file"])
            _, after = http_json("GET", f"{servers.glance}/v2/images/{image['id']}", token=token)
            servers.glance_delete(image["id"], token)
            if after["status"] != "active" or after["size"] != sizes[qcow2]:
                raise SystemExit(f"curl PUT left image {image['id']} {after['status']}, size {after['size']}")
            return {"wall": wall, "token_seconds": authenticated - started, "create_seconds": created - authenticated}

        def sdk_create():
            _, out = timed([venv_python["openstack"], "-c", SDK_GLANCE, qcow2, f"bench-sdk-{next(counter)}"], os_env)
            result = json.loads(out.strip().splitlines()[-1])
            if result["status"] != "active":
                raise SystemExit(f"openstacksdk create_image left an image {result['status']}")
            return {"wall": result["seconds"]}

        def rehost_glance():
            r = rehost_upload(rehost, [qcow2, "--to", "glance", "--os-cloud", "test", "--disk-format", "qcow2",
                                       "--image-name", f"bench-rehost-{next(counter)}"], os_env)
            servers.glance_delete(r["upload"]["imageID"], servers.token())
            return r

        ours, curl, sdk = interleaved(args.repeat, rehost_glance, curl_put, sdk_create)
        for label, base in (("curl PUT (PUT only)", curl), ("openstacksdk create_image", sdk)):
            rows.append({"path": "Glance, qcow2", "baseline": label, "bytes": sizes[qcow2], "base": base, "rehost": ours})

        # 2. S3 multipart of the VMDK: boto3 upload_file (8 MiB parts, 4 in flight) against
        # rehost upload --aws-import none. moto keeps every object: a reset after each run.
        def boto3_s3():
            _, out = timed([venv_python["moto"], "-c", BOTO3_S3, vmdk, f"bench-boto3-{next(counter)}"], aws_env())
            result = json.loads(out.strip().splitlines()[-1])
            servers.moto_reset()
            if result["size"] != sizes[vmdk]:
                raise SystemExit(f"boto3 upload_file stored {result['size']} bytes of {sizes[vmdk]}")
            return {"wall": result["seconds"]}

        def rehost_s3():
            r = rehost_upload(rehost, [vmdk, "--to", "aws-s3", "--s3-bucket", f"bench-rehost-{next(counter)}",
                                       "--create-bucket", "--aws-import", "none"], aws_env())
            servers.moto_reset()
            return r

        base, ours = interleaved(args.repeat, boto3_s3, rehost_s3)
        rows.append({"path": "S3 multipart, vmdk", "baseline": "boto3 upload_file", "bytes": sizes[vmdk],
                     "base": base, "rehost": ours})

        # 3. EBS direct of the raw disk: a coldsnap-like boto3 script against rehost upload --to aws-ebs.
        def boto3_ebs():
            _, out = timed([venv_python["moto"], "-c", BOTO3_EBS, raw], aws_env())
            result = json.loads(out.strip().splitlines()[-1])
            servers.moto_reset()
            if result["retries"] or max(result["slowest_put"], result["start_snapshot"], result["complete_snapshot"]) > 5:
                print(f"note: a boto3 EBS run with a retry or a call over 5 s: {json.dumps(result)}")
            return dict(result, wall=result["seconds"])

        def rehost_ebs():
            r = rehost_upload(rehost, [raw, "--to", "aws-ebs", "--no-register", "--image-name",
                                       f"bench-rehost-{next(counter)}"], aws_env())
            servers.moto_reset()
            r["blocks"], r["bytes"] = r["upload"].get("blocksSent"), r["upload"]["bytesSent"]
            return r

        base, ours = interleaved(args.repeat, boto3_ebs, rehost_ebs)
        rows.append({"path": "EBS direct, raw", "baseline": "boto3, 16 threads (coldsnap-like)", "bytes": None,
                     "base": base, "rehost": ours})
    finally:
        servers.stop()

    def rate(row, result):
        sent = row["bytes"] if row["bytes"] is not None else result["bytes"]
        return sent / MIB / result["wall"]

    print(f"upload benchmark ({args.size}): a {sizes[raw] / 2**30:.2f} GiB raw disk holding {data_bytes / MIB:.0f} MiB "
          f"of random data; qcow2 {sizes[qcow2] / MIB:.1f} MiB, streamOptimized vmdk {sizes[vmdk] / MIB:.1f} MiB; "
          f"best of {args.repeat}; moto, Keystone and Glance on this host (started in {start_seconds:.1f} s); "
          f"MiB/s of the file sent (EBS: of the 512 KiB blocks sent)")
    print(f"{'path':<20}{'baseline':<36}{'base s':>8}{'MiB/s':>8}{'rehost s':>10}{'MiB/s':>8}{'r/base':>8}")
    for row in rows:
        b, r = row["base"], row["rehost"]
        row["base_mib_s"], row["rehost_mib_s"], row["ratio"] = rate(row, b), rate(row, r), r["wall"] / b["wall"]
        print(f"{row['path']:<20}{row['baseline']:<36}{b['wall']:>8.2f}{row['base_mib_s']:>8.1f}{r['wall']:>10.2f}"
              f"{row['rehost_mib_s']:>8.1f}{row['ratio']:>8.2f}")
    curl = rows[0]["base"]
    print(f"not in curl's time: the Keystone token ({curl['token_seconds']:.2f} s) and the image create "
          f"({curl['create_seconds']:.2f} s); rehost's includes them, the wait for active and its checksum check")
    ebs = rows[-1]
    ok = ebs["base"]["blocks"] == ebs["rehost"]["blocks"]
    print(f"EBS blocks sent: boto3 {ebs['base']['blocks']}, rehost {ebs['rehost']['blocks']}"
          + ("" if ok else "  MISMATCH"))
    return ok, {"suite": "upload", "raw_bytes": sizes[raw], "data_bytes": data_bytes, "qcow2_bytes": sizes[qcow2],
                "vmdk_bytes": sizes[vmdk], "server_start_seconds": start_seconds, "rows": rows}



# The batch suite: how many copies of the Xen instance make the fleet.
BATCH_COPIES = {"small": 4, "large": 16}
FIXTURE_SCRIPT = os.path.join(ROOT, "Fixtures", "make-xen-instance.sh")


def xen_fixture(work):
    """The Xen instance the tests build: theirs if it is there (Tests/TestSupport/Fixture.swift's
    directory), else one made by the script in the scratch directory."""
    image = os.path.join(f"/tmp/rehost-fixture-{os.getuid()}", "xen-instance.img")
    if os.path.exists(image):
        return image
    directory = os.path.join(work, "fixture")
    subprocess.run(["/bin/bash", FIXTURE_SCRIPT, directory], check=True, stdout=subprocess.DEVNULL)
    return os.path.join(directory, "xen-instance.img")


def fleet_run(label, argv, outputs, clear):
    """Runs argv under GNU time (see run) with the directories in clear emptied first; fsyncs every
    output inside the wall clock, as job does."""
    for directory in clear:
        shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(clear[0], exist_ok=True)
    wall, cpu, rss = run(argv)
    start = time.monotonic()
    for path in outputs:
        fd = os.open(path, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
    wall += time.monotonic() - start
    return {"tool": label, "wall": wall, "cpu": cpu, "maxrss_kib": rss,
            "allocated": sum(allocated(p) for p in outputs)}


def batch_suite(args, rehost, work):
    import shlex
    fixture = xen_fixture(work)
    count = BATCH_COPIES[args.size]
    fleet = os.path.join(work, "fleet")
    inputs = os.path.join(fleet, "in")
    os.makedirs(inputs, exist_ok=True)
    ids = [f"img{i:02d}" for i in range(count)]
    for name in ids:  # distinct files (sharing extents where the filesystem can)
        subprocess.run(["cp", "--reflink=auto", fixture, os.path.join(inputs, f"{name}.img")], check=True)
    os.sync()
    input_bytes = count * os.stat(fixture).st_size
    manifest = os.path.join(fleet, "fleet.jsonl")
    with open(manifest, "w") as f:
        f.write(json.dumps({"defaults": {"outputs": ["out/{id}.qcow2"]}}) + "\n")
        for name in ids:
            f.write(json.dumps({"id": name, "input": f"in/{name}.img"}) + "\n")
    results_dir = manifest + ".results"
    summary_file = os.path.join(work, "batch-summary.json")
    q = shlex.quote

    def outputs(directory):
        return [os.path.join(fleet, directory, f"{name}.qcow2") for name in ids]

    def summary():
        with open(summary_file) as f:
            return json.load(f)

    state = {}

    def batch():
        # `rehost batch run` with its default --jobs, then the same manifest again (all skipped).
        command = f"{q(rehost)} batch run {q(manifest)} --json > {q(summary_file)}"
        r = fleet_run("rehost batch run", ["/bin/sh", "-c", command], outputs("out"),
                      [os.path.join(fleet, "out"), results_dir])
        first = summary()
        state["jobs"], state["jobs_reason"] = first["jobs"], first["jobsReason"]
        rerun_wall, rerun_cpu, _ = run(["/bin/sh", "-c", command])
        second = summary()
        r.update(jobs=first["jobs"], jobs_reason=first["jobsReason"], counts=first["counts"],
                 own_seconds=first["seconds"], own_images_per_minute=first["imagesPerMinute"],
                 own_gib_per_minute=first["gibPerMinute"],
                 rerun={"wall": rerun_wall, "cpu": rerun_cpu, "counts": second["counts"],
                        "own_seconds": second["seconds"]})
        return r

    def loop():
        out = os.path.join(fleet, "out-loop")
        command = (f'for f in {q(inputs)}/*.img; do {q(rehost)} convert "$f" -o {q(out)}/$(basename "$f" .img).qcow2; '
                   f'done > /dev/null')
        return fleet_run("shell loop of rehost convert", ["/bin/sh", "-c", command], outputs("out-loop"), [out])

    def xargs():
        out = os.path.join(fleet, "out-xargs")
        convert = f'{q(rehost)} convert "$1" -o {q(out)}/$(basename "$1" .img).qcow2 > /dev/null'
        command = f"printf '%s\\n' {q(inputs)}/*.img | xargs -P {state['jobs']} -n 1 sh -c {q(convert)} sh"
        return fleet_run(f"xargs -P {state['jobs']} rehost convert", ["/bin/sh", "-c", command],
                         outputs("out-xargs"), [out])

    # batch first in each round: xargs runs with the jobs it chose.
    ours, base, parallel = interleaved(args.repeat, batch, loop, xargs)
    checks = [subprocess.run(["qemu-img", "check", "-q", path], capture_output=True, text=True)
              for path in outputs("out")]
    bad = [f"{path}: {c.stdout.strip()} {c.stderr.strip()}" for path, c in zip(outputs("out"), checks) if c.returncode]
    converted = ours["counts"].get("converted", 0)
    rerun_converted = ours["rerun"]["counts"].get("converted", 0)
    rerun_skipped = ours["rerun"]["counts"].get("skipped", 0)
    rows = [base, parallel, ours]
    for r in rows:
        r["images_per_minute"] = count / r["wall"] * 60
        r["gib_per_minute"] = input_bytes / 2**30 / r["wall"] * 60
    print(f"batch benchmark ({args.size}): {count} copies of the Xen instance ({os.stat(fixture).st_size / MIB:.0f} MiB "
          f"each, {input_bytes / 2**30:.2f} GiB in all) to qcow2, best of {args.repeat}; wall includes fsync; "
          f"batch chose --jobs {ours['jobs']} ({ours['jobs_reason']})")
    print(f"{'run':<34}{'wall s':>9}{'cpu s':>9}{'images/min':>12}{'GiB/min':>9}{'wall/batch':>12}")
    for r in rows:
        print(f"{r['tool']:<34}{r['wall']:>9.2f}{r['cpu']:>9.2f}{r['images_per_minute']:>12.2f}"
              f"{r['gib_per_minute']:>9.3f}{r['wall'] / ours['wall']:>12.2f}")
    print(f"ratios: loop/batch {base['wall'] / ours['wall']:.2f}, xargs/batch {parallel['wall'] / ours['wall']:.2f}; "
          f"batch's own summary: {ours['own_seconds']:.2f} s, {ours['own_images_per_minute']:.2f} images/min, "
          f"{ours['own_gib_per_minute']:.3f} GiB/min")
    print(f"rerun of the same manifest: {ours['rerun']['wall']:.2f} s ({ours['rerun']['own_seconds']:.3f} s by its summary), "
          f"{rerun_converted} converted, {rerun_skipped} skipped"
          + ("" if rerun_converted == 0 and rerun_skipped == count else "  UNEXPECTED"))
    print("batch's conversions run at its default priority (nice +10, the lowest best-effort I/O level), the "
          "baselines' at the shell's: on a busy machine that alone makes batch slower")
    print(f"qemu-img check of the {count} batch outputs: " + ("clean" if not bad else "NOT CLEAN"))
    for line in bad:
        print("NOT CLEAN " + line)
    ok = not bad and converted == count and rerun_converted == 0 and rerun_skipped == count
    return ok, {"suite": "batch", "images": count, "input_bytes": input_bytes, "jobs": ours["jobs"],
                "jobs_reason": ours["jobs_reason"], "loop": base, "xargs": parallel, "batch": ours,
                "loop_ratio": base["wall"] / ours["wall"], "xargs_ratio": parallel["wall"] / ours["wall"],
                "rerun": ours["rerun"], "outputs_clean": not bad}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--suite", choices=["convert", "formats", "digests", "inputs", "upload", "batch", "all"], default="all")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--rehost", default=None, help="the rehost binary (default: a release build)")
    parser.add_argument("--work", default=None, help="scratch directory (default: a new one in /tmp)")
    parser.add_argument("--only", type=lambda text: text.split(","), default=None,
                        help="formats suite: only these comma-separated rows, e.g. 'qcow2,vdi' (for profiling)")
    args = parser.parse_args()

    rehost = args.rehost
    if rehost is None:
        subprocess.run(["swift", "build", "-c", "release", "--product", "rehost"], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)
        bindir = subprocess.run(["swift", "build", "-c", "release", "--show-bin-path"], cwd=ROOT, check=True,
                                capture_output=True, text=True).stdout.strip()
        rehost = os.path.join(bindir, "rehost")

    work = args.work or tempfile.mkdtemp(prefix="rehost-bench-")
    try:
        ok, results = True, {"size": args.size, "repeat": args.repeat}
        if args.suite not in ("upload", "batch"):  # these suites make their own inputs
            tree = os.path.join(work, "tree")
            make_tree(tree, args.size)
            source = os.path.join(work, "source.img")
            used_mib = int(subprocess.run(["du", "-sm", tree], capture_output=True, text=True).stdout.split()[0])
            fs_mib = max(256, used_mib * 2)
            subprocess.run(["mke2fs", "-q", "-F", "-t", "ext3", "-b", "4096", "-I", "128", "-L", "/", "-d", tree,
                            source, f"{fs_mib}M"], check=True, stderr=subprocess.DEVNULL)
        if args.suite in ("convert", "all"):
            passed, results["convert"] = convert_suite(args, rehost, work, tree, source, used_mib, fs_mib)
            ok = ok and passed
        if args.suite in ("inputs", "all"):
            passed, results["inputs"] = inputs_suite(args, rehost, work, source)
            ok = ok and passed
        if args.suite in ("formats", "all"):
            passed, results["formats"] = formats_suite(args, rehost, work, source)
            ok = ok and passed
        if args.suite in ("digests", "all"):
            passed, results["digests"] = digests_suite(args, rehost, work, source)
            ok = ok and passed
        if args.suite in ("upload", "all"):
            passed, results["upload"] = upload_suite(args, rehost, work)
            ok = ok and passed
        if args.suite in ("batch", "all"):
            passed, results["batch"] = batch_suite(args, rehost, work)
            ok = ok and passed
        if args.json:
            with open(args.json, "w") as f:
                json.dump(results, f, indent=2)
        return 0 if ok else 1
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
