#!/usr/bin/env bash
# Installs what the tests need, builds Rehost, and runs every test: unit tests, the conversion of
# the Xen fixture as an unprivileged user, e2fsck/debugfs read-back, and qemu boots on IDE and virtio.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
swift build --build-tests
swift test --skip-build
# Both benchmarks at their small size, against the debug build: they exercise the benchmark code
# and check the outputs (e2fsck, qemu-img compare); the numbers are printed, never asserted.
python3 Benchmarks/bench.py --suite all --size small --repeat 1 --rehost "$(swift build --show-bin-path)/rehost"
