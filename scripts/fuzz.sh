#!/usr/bin/env bash
# libFuzzer runs of every reader Rehost points at untrusted bytes (Fuzz/, README "Fuzzing").
#
#   scripts/fuzz.sh [build]              build .build/fuzz/debug/rehost-fuzz (-sanitize=fuzzer,address)
#                                        and the seed corpora (Fuzz/make-seeds.sh)
#   scripts/fuzz.sh list                 the targets
#   scripts/fuzz.sh run TARGET SECONDS [libFuzzer options...]
#                                        fuzz one target; new inputs go to .build/fuzz/corpus/TARGET,
#                                        a crash to .build/fuzz/artifacts/TARGET/
#   scripts/fuzz.sh ci [SECONDS]         every target for SECONDS (default 15) each, one line of
#                                        numbers per target; fails if any target found something
#   scripts/fuzz.sh repro TARGET FILE... run inputs once in the fuzzing build (with its sanitizer)
#
# Environment: FUZZ_JOBS=N runs N libFuzzer workers per target (default 1; the build machine has
# two cores and others use them). Everything runs under `nice`.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=$ROOT/.build/fuzz
BIN=$BUILD/debug/rehost-fuzz
die() { echo "fuzz.sh: error: $*" >&2; exit 1; }

build() {
    mkdir -p "$BUILD"
    # ld.gold warns about every ASan symbol it cannot export; the log keeps only the rest.
    if ! nice swift build --scratch-path "$BUILD" --product rehost-fuzz \
            -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING >"$BUILD/build.log" 2>&1; then
        grep -v "ld.gold: warning: Cannot export local symbol" "$BUILD/build.log" | tail -n 40 >&2
        die "the fuzzing build failed"
    fi
    if [ ! -d "$BUILD/seeds" ] || [ Fuzz/make-seeds.sh -nt "$BUILD/seeds" ]; then
        nice Fuzz/make-seeds.sh "$BUILD/seeds" >/dev/null
        touch "$BUILD/seeds"
    fi
}

max_len() {
    "$BIN" names | awk -v t="$1" '$1 == t { print $2 }'
}

# Fuzzing runs never start Swift's backtracer (it would hold libFuzzer's crash report), and
# leak checks are off: the Swift runtime keeps metadata caches for the life of the process.
run_env() {
    SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:symbolize=1 \
        REHOST_FUZZ_SCRATCH="$SCRATCH" "$@"
}

# run TARGET SECONDS [options]: prints "TARGET seconds execs exec/s corpus crashes" on stdout at
# the end; libFuzzer's own output goes to .build/fuzz/logs/TARGET.log.
run() {
    local target=$1 seconds=$2; shift 2
    local len; len=$(max_len "$target")
    [ -n "$len" ] || die "no target $target (scripts/fuzz.sh list)"
    local corpus=$BUILD/corpus/$target artifacts=$BUILD/artifacts/$target log=$BUILD/logs/$target.log
    mkdir -p "$corpus" "$artifacts" "$BUILD/logs"
    local dirs=("$corpus")
    for extra in "$ROOT/Fuzz/Seeds/$target" "$BUILD/seeds/$target" "$ROOT/Fuzz/Regressions/$target"; do
        [ -d "$extra" ] && dirs+=("$extra")
    done
    SCRATCH=$(mktemp -d "${FUZZ_SCRATCH_BASE:-/dev/shm}/rehost-fuzz.XXXXXX")
    local status=0 start=$SECONDS
    # From the log directory: with FUZZ_JOBS, libFuzzer writes each worker's fuzz-N.log there.
    (cd "$BUILD/logs" && run_env nice "$BIN" "$target" -max_total_time="$seconds" -timeout=10 \
        -rss_limit_mb=2048 -max_len="$len" -print_final_stats=1 -artifact_prefix="$artifacts/" \
        ${FUZZ_JOBS:+-jobs="$FUZZ_JOBS" -workers="$FUZZ_JOBS"} "$@" "${dirs[@]}") >"$log" 2>&1 || status=$?
    rm -rf "$SCRATCH"
    local execs rate corpus_size crashes
    execs=$(awk '/stat::number_of_executed_units/ { print $2 }' "$log" | tail -n 1)
    rate=$(awk '/stat::average_exec_per_sec/ { print $2 }' "$log" | tail -n 1)
    corpus_size=$(find "$corpus" -type f | wc -l)
    crashes=$(grep -cE "^artifact_prefix=.*Test unit written to" "$log" || true)
    printf '%-16s %4ss %9s execs %6s exec/s corpus %5s crashes %s\n' \
        "$target" "$((SECONDS - start))" "${execs:-?}" "${rate:-?}" "$corpus_size" "$crashes"
    if [ "$status" -ne 0 ]; then
        echo "  -> $target stopped with status $status; see $log" >&2
        grep -E "^(==[0-9]+==ERROR|SUMMARY|.*Fatal error|.*Test unit written)|Swift runtime failure|#[0-9]+ .* in .*/(Sources|Fuzz)/" "$log" | head -n 8 | sed 's/^/     /' >&2
        return 1
    fi
}

case "${1:-build}" in
    build)
        build ;;
    list)
        [ -x "$BIN" ] || build
        "$BIN" list ;;
    run)
        [ $# -ge 3 ] || die "usage: scripts/fuzz.sh run TARGET SECONDS [libFuzzer options...]"
        build
        target=$2 seconds=$3; shift 3
        run "$target" "$seconds" "$@" ;;
    ci)
        seconds=${2:-15}
        build
        failed=()
        for target in $("$BIN" names | awk '{ print $1 }'); do
            run "$target" "$seconds" || failed+=("$target")
        done
        [ ${#failed[@]} -eq 0 ] || die "findings in: ${failed[*]} (inputs in $BUILD/artifacts/)" ;;
    repro)
        [ $# -ge 3 ] || die "usage: scripts/fuzz.sh repro TARGET FILE..."
        [ -x "$BIN" ] || build
        target=$2; shift 2
        SCRATCH=$(mktemp -d /dev/shm/rehost-fuzz.XXXXXX)
        trap 'rm -rf "$SCRATCH"' EXIT
        run_env "$BIN" "$target" -runs=1 "$@" ;;
    *)
        sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' >&2
        exit 2 ;;
esac
