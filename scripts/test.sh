#!/usr/bin/env bash
# Installs what the tests need, builds Rehost, and runs every test: unit tests, the conversion of
# the Xen fixture as an unprivileged user, e2fsck/debugfs read-back, and qemu boots on IDE and virtio;
# then the benchmarks at their small size and a short fuzz run of every reader.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
swift build --build-tests
swift test --skip-build
# Every benchmark suite at its small size, against the debug build: they exercise the benchmark code
# and check the outputs (e2fsck, qemu-img compare); the numbers are printed, never asserted. The
# upload suite starts moto, Keystone and Glance from the venvs install-deps.sh made (about 20 s).
python3 Benchmarks/bench.py --suite all --size small --repeat 1 --rehost "$(swift build --show-bin-path)/rehost"
# Every fuzz target for 8 s, from the seeds, the regressions and the corpus earlier runs left in
# .build/fuzz (README "Fuzzing"): about 3 minutes on 2 cores (22 targets since VHDX's; 21 at 10 s each measured
# 3m37s), plus the sanitizer build the first time (1.5 to 2 minutes; seconds after).
# REHOST_SKIP_FUZZ=1 leaves it out.
if [ "${REHOST_SKIP_FUZZ:-0}" != 1 ]; then
    scripts/fuzz.sh ci 8
fi
