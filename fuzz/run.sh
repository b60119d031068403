#!/bin/sh
# Runs each fuzz target named on the command line for $FUZZ_SECONDS seconds.
#
# The committed corpus fuzz/corpus/<target>/ is read but never written: new
# inputs go to a temporary directory that is removed afterwards, so a CI run
# leaves the tree as it was. Inputs under fuzz/regressions/<target>/ (saved
# reproducers of bugs found so far) are replayed first, so a fixed bug stays
# fixed. A crash, a sanitizer report, a leak or a timeout fails the run; its
# input is kept in $FUZZ_BUILD/artifacts/<target>/.
set -eu
cd "$(dirname "$0")/.."
FUZZ_BUILD=${FUZZ_BUILD:-build/fuzz}
FUZZ_SECONDS=${FUZZ_SECONDS:-15}

# Longest input per target: enough for every structure the target parses,
# small enough to keep the executions per second high.
max_len() {
    case "$1" in
    fuzz_jwt) echo 3072 ;;          # past PC_JWT_MAX (2048)
    fuzz_runlog_redact) echo 4096 ;; # records repeat up to 128x
    fuzz_sdk_line) echo 16384 ;;     # several requests per input
    *) echo 8192 ;;
    esac
}

work=$(mktemp -d "${TMPDIR:-/tmp}/pc-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
export TMPDIR="$work"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:allocator_may_return_null=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

failed=""
printf '%-22s %10s %10s %8s  %s\n' target runs exec/s cov result
for t in "$@"; do
    bin="$FUZZ_BUILD/$t"
    corpus="fuzz/corpus/$t"
    art="$FUZZ_BUILD/artifacts/$t"
    mkdir -p "$art" "$work/$t"
    [ -d "$corpus" ] || { echo "fuzz: $corpus is missing" >&2; exit 1; }
    dict=""
    [ -f "fuzz/dict/$t.dict" ] && dict="-dict=fuzz/dict/$t.dict"
    log="$FUZZ_BUILD/$t.log"
    result=ok
    if [ -d "fuzz/regressions/$t" ] && [ -n "$(ls -A "fuzz/regressions/$t")" ]; then
        if ! "$bin" -runs=1 fuzz/regressions/$t/* >"$log" 2>&1; then
            result="FAILED (a saved reproducer in fuzz/regressions/$t still fails; see $log)"
        fi
    fi
    if [ "$result" = ok ]; then
        if ! "$bin" -max_total_time="$FUZZ_SECONDS" -max_len="$(max_len "$t")" -timeout=10 \
            -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$art/" $dict \
            "$work/$t" "$corpus" >"$log" 2>&1; then
            result="FAILED (see $log; input in $art/)"
        fi
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | sed 's/cov: //')
    printf '%-22s %10s %10s %8s  %s\n' "$t" "${runs:--}" "${speed:--}" "${cov:--}" "$result"
    [ "$result" = ok ] || failed="$failed $t"
done
if [ -n "$failed" ]; then
    echo "fuzz: failed:$failed" >&2
    for t in $failed; do
        grep -E 'ERROR|SUMMARY|property violated|runtime error' "$FUZZ_BUILD/$t.log" | head -n 5 >&2 || true
    done
    exit 1
fi
