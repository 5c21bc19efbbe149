#!/usr/bin/env python3
"""Rehost benchmarks, side by side with the tools a user would pick instead, in one run.

Suite `formats`: a bootable disk made by `rehost convert` from the same kind of tree (most of the
disk empty), written to every output format by `rehost export`, next to `qemu-img convert` with its
default options and with `-m 8 -W`; then every format in one `rehost export` against the sum of
the separate qemu-img runs. OVA has no qemu-img equivalent: its alternative is qemu-img's
streamOptimized VMDK plus sha256sum and tar.

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

    Benchmarks/bench.py --size small          # what the test command runs (seconds)
    Benchmarks/bench.py --size large --suite formats --json out.json

No timing is asserted: the numbers are for people.
"""
import argparse
import json
import os
import random
import resource
import shutil
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
]

# Reading: label, qemu-img options that make the input, file extension, qemu-img -f to read it.
READS = [
    ("read qcow2", ["-O", "qcow2"], "qcow2", "qcow2"),
    ("read qcow2 deflate", ["-O", "qcow2", "-c"], "qcow2", "qcow2"),
    ("read vmdk streamOptimized", ["-O", "vmdk", "-o", "subformat=streamOptimized"], "vmdk", "vmdk"),
    ("read vmdk monolithicSparse", ["-O", "vmdk"], "vmdk", "vmdk"),
    ("read vdi", ["-O", "vdi"], "vdi", "vdi"),
    ("read vhd dynamic", ["-O", "vpc", "-o", "force_size=on"], "vhd", "vpc"),
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
    if args.only:
        return report_formats(args, disk_size, rows, failures, None, None)
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
    return report_formats(args, disk_size, rows, failures, together, separate)


def report_formats(args, disk_size, rows, failures, together, separate):
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
    for failure in failures:
        print("MISMATCH " + failure)
    return not failures, {"suite": "formats", "disk_bytes": disk_size, "rows": rows,
                          "one_pass": together, "separate_qemu_img_wall": separate, "failures": failures}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--suite", choices=["convert", "formats", "digests", "inputs", "all"], default="all")
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
        tree = os.path.join(work, "tree")
        make_tree(tree, args.size)
        source = os.path.join(work, "source.img")
        used_mib = int(subprocess.run(["du", "-sm", tree], capture_output=True, text=True).stdout.split()[0])
        fs_mib = max(256, used_mib * 2)
        subprocess.run(["mke2fs", "-q", "-F", "-t", "ext3", "-b", "4096", "-I", "128", "-L", "/", "-d", tree,
                        source, f"{fs_mib}M"], check=True, stderr=subprocess.DEVNULL)
        ok, results = True, {"size": args.size, "repeat": args.repeat}
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
        if args.json:
            with open(args.json, "w") as f:
                json.dump(results, f, indent=2)
        return 0 if ok else 1
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
